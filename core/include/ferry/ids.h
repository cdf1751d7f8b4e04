// Strong identifier types: an Oid can never be passed where an Ipid is expected.
//
//   Iid  64-bit  an interface: the Cap'n Proto type id of its `interface` declaration.
//   Oxid 64-bit  an object exporter, i.e. one apartment. Random; never reused in a host's lifetime.
//   Oid  64-bit  one object identity inside an exporter.
//   Ipid 128-bit one (object, interface) pair; unguessable (drawn from the kernel's CSPRNG).
//   CausalityId 128-bit  a logical call chain; nested calls carry their parent's id.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include <ferry/api.h>

namespace ferry {

namespace detail {

template <typename Tag>
struct Id64 {
  uint64_t value = 0;

  constexpr Id64() = default;
  constexpr explicit Id64(uint64_t v) : value(v) {}
  constexpr explicit operator bool() const { return value != 0; }
  friend constexpr auto operator<=>(Id64, Id64) = default;
};

template <typename Tag>
struct Id128 {
  uint64_t hi = 0;
  uint64_t lo = 0;

  constexpr Id128() = default;
  constexpr Id128(uint64_t h, uint64_t l) : hi(h), lo(l) {}
  constexpr explicit operator bool() const { return (hi | lo) != 0; }
  friend constexpr auto operator<=>(Id128, Id128) = default;
};

struct IidTag;
struct OxidTag;
struct OidTag;
struct IpidTag;
struct CausalityTag;

}  // namespace detail

using Iid = detail::Id64<detail::IidTag>;
using Oxid = detail::Id64<detail::OxidTag>;
using Oid = detail::Id64<detail::OidTag>;
using Ipid = detail::Id128<detail::IpidTag>;
using CausalityId = detail::Id128<detail::CausalityTag>;

// Fresh random ids. Never zero: zero means "none" on the wire.
FERRY_API Oxid newOxid();
FERRY_API Oid newOid();
FERRY_API Ipid newIpid();
// Unique rather than random (a random prefix per process, then a counter): no system call.
FERRY_API CausalityId newCausalityId();

// Lower-case hex: 16 digits for 64-bit ids, 32 for 128-bit ones.
FERRY_API std::string toString(Iid id);
FERRY_API std::string toString(Oxid id);
FERRY_API std::string toString(Oid id);
FERRY_API std::string toString(Ipid id);
FERRY_API std::string toString(CausalityId id);

FERRY_API std::ostream& operator<<(std::ostream& out, Iid id);
FERRY_API std::ostream& operator<<(std::ostream& out, Oxid id);
FERRY_API std::ostream& operator<<(std::ostream& out, Oid id);
FERRY_API std::ostream& operator<<(std::ostream& out, Ipid id);
FERRY_API std::ostream& operator<<(std::ostream& out, CausalityId id);

}  // namespace ferry

template <typename Tag>
struct std::hash<ferry::detail::Id64<Tag>> {
  size_t operator()(ferry::detail::Id64<Tag> id) const noexcept {
    return std::hash<uint64_t>{}(id.value);
  }
};

template <typename Tag>
struct std::hash<ferry::detail::Id128<Tag>> {
  size_t operator()(ferry::detail::Id128<Tag> id) const noexcept {
    // The ids are random; folding the halves is enough.
    return std::hash<uint64_t>{}(id.hi ^ (id.lo * 0x9e3779b97f4a7c15ull));
  }
};
