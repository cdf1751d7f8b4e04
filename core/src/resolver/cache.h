// The resolver client's cache: the resolutions this process asked for, by the OBJREF that asked
// (core/schema/resolver.capnp). An entry is found only for an OBJREF that names the same
// exporter (OXID, process and host) and the same resolvers to ask, so that a crafted OBJREF —
// one that names another's OXID with resolvers of its own — cannot decide where later imports
// of that exporter go. An entry lives until a connection to one of its bindings cannot be opened
// or is lost (the exporter may be gone, or moved), until no binding of it can be opened for an
// import, or until it is the least recently used of more than `capacity` entries. Any thread.
#pragma once

#include <array>
#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <vector>

#include "resolution.h"

namespace ferry::detail {

class ResolverCache {
public:
  // What an OBJREF says about its exporter: which one, and where to ask.
  struct Origin {
    Oxid oxid;
    uint64_t processId = 0;
    std::array<uint8_t, 16> hostId{};
    std::vector<StringBindingData> resolvers;
    friend bool operator==(const Origin&, const Origin&) = default;
  };

  explicit ResolverCache(size_t capacity = 1024) : _capacity(capacity == 0 ? 1 : capacity) {}

  std::optional<Resolution> find(const Origin& origin);
  void store(const Origin& origin, const Resolution& resolution);
  // Drops every resolution of exporter `oxid`.
  void invalidate(Oxid oxid);
  // Drops every resolution that lists `binding`; returns how many.
  size_t invalidateBinding(const StringBindingData& binding);
  size_t size() const;

private:
  struct Entry {
    Origin origin;
    Resolution resolution;
  };
  using Order = std::list<Entry>;  // most recently used first

  Order::iterator locate(const Origin& origin);

  const size_t _capacity;
  mutable std::mutex _mutex;
  Order _order;
};

}  // namespace ferry::detail
