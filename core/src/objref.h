// OBJREF encoding and validation (core/schema/objref.capnp is the specification).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ferry/ids.h>
#include <ferry/security.h>
#include <ferry/marshal.h>

#include "objref.capnp.h"

namespace ferry::detail {

struct StringBindingData {
  std::string protseq;
  std::string address;
  std::string endpoint;
  // Not part of an OBJREF: the least level a client asks of its connection to the binding (a
  // proxy's blanket, setProxyBlanket). Above none, the connection is another than the plain
  // binding's, and its text ends "+<level>".
  SecurityLevel level = SecurityLevel::none;
  friend bool operator==(const StringBindingData&, const StringBindingData&) = default;
};

// "tcp:127.0.0.1[5000]", for logs and errors.
std::string bindingText(const StringBindingData& binding);
// A string binding's text, "protseq:address[endpoint]", as its parts; nullopt when the text is
// not of that form (no protseq before the ':', no '[' after it, or no closing ']').
std::optional<StringBindingData> tryParseBinding(std::string_view text);

struct SecurityBindingData {
  std::string provider;
  std::string principal;
  friend bool operator==(const SecurityBindingData&, const SecurityBindingData&) = default;
};

// How a packet was marshaled: normal (its references travel with it) or into a table, strong
// or weak (objref.capnp, `table`).
enum class PacketKind : uint8_t { normal, tableStrong, tableWeak };

// An OBJREF as plain values. Produced only by readObjRef/decodeObjRef, which validate every field.
struct ObjRefData {
  enum class Kind : uint8_t { null, standard, custom, byValue };

  Iid iid;
  Kind kind = Kind::null;
  // standard
  Oxid oxid;
  Oid oid;
  Ipid ipid;
  uint32_t publicRefs = 0;
  PacketKind table = PacketKind::normal;
  bool noPing = false;
  uint64_t packetId = 0;
  std::array<uint8_t, 16> hostId{};
  uint64_t processId = 0;
  std::vector<StringBindingData> bindings;
  std::vector<SecurityBindingData> securityBindings;
  // custom, byValue
  std::string unmarshalerClass;
  std::vector<uint8_t> data;

  friend bool operator==(const ObjRefData&, const ObjRefData&) = default;
};

constexpr size_t kMaxObjRefBytes = 64 * 1024;
constexpr uint32_t kMaxPublicRefs = 1024;

// Validates and converts; throws invalidObjRef naming the offending field.
ObjRefData readObjRef(wire::ObjRef::Reader reader);
void writeObjRef(wire::ObjRef::Builder builder, const ObjRefData& data);

// The byte form (a single-segment Cap'n Proto message, unpacked). decodeObjRef is the one entry
// point for untrusted bytes; the fuzzer drives it.
ObjRefBytes encodeObjRef(const ObjRefData& data);
ObjRefData decodeObjRef(std::span<const uint8_t> bytes);

}  // namespace ferry::detail
