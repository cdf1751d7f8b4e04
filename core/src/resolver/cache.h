// The resolver client's cache: the resolutions this process asked for, by OXID
// (core/schema/resolver.capnp). An entry lives until a connection to one of its bindings cannot
// be opened or is lost (the exporter may be gone, or moved), until no binding of it can be
// opened for an import, or until it is the least recently used of more than `capacity` entries.
// Any thread.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "resolution.h"

namespace ferry::detail {

class ResolverCache {
public:
  explicit ResolverCache(size_t capacity = 1024) : _capacity(capacity == 0 ? 1 : capacity) {}

  std::optional<Resolution> find(Oxid oxid);
  void store(const Resolution& resolution);
  void invalidate(Oxid oxid);
  // Drops every resolution that lists `binding`; returns how many.
  size_t invalidateBinding(const StringBindingData& binding);
  size_t size() const;

private:
  using Order = std::list<Resolution>;  // most recently used first
  const size_t _capacity;
  mutable std::mutex _mutex;
  Order _order;
  std::unordered_map<Oxid, Order::iterator> _byOxid;
};

}  // namespace ferry::detail
