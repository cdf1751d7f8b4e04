#include "cache.h"

#include <algorithm>

namespace ferry::detail {

ResolverCache::Order::iterator ResolverCache::locate(const Origin& origin) {
  return std::find_if(_order.begin(), _order.end(),
                      [&](const Entry& e) { return e.origin == origin; });
}

std::optional<Resolution> ResolverCache::find(const Origin& origin) {
  std::lock_guard lock(_mutex);
  auto it = locate(origin);
  if (it == _order.end()) return std::nullopt;
  _order.splice(_order.begin(), _order, it);
  return it->resolution;
}

void ResolverCache::store(const Origin& origin, const Resolution& resolution) {
  std::lock_guard lock(_mutex);
  auto it = locate(origin);
  if (it != _order.end()) {
    it->resolution = resolution;
    _order.splice(_order.begin(), _order, it);
    return;
  }
  _order.push_front(Entry{origin, resolution});
  if (_order.size() > _capacity) _order.pop_back();
}

void ResolverCache::invalidate(Oxid oxid) {
  std::lock_guard lock(_mutex);
  _order.remove_if([&](const Entry& e) { return e.origin.oxid == oxid; });
}

size_t ResolverCache::invalidateBinding(const StringBindingData& binding) {
  std::lock_guard lock(_mutex);
  return _order.remove_if([&](const Entry& e) {
    const auto& b = e.resolution.bindings;
    return std::find(b.begin(), b.end(), binding) != b.end();
  });
}

size_t ResolverCache::size() const {
  std::lock_guard lock(_mutex);
  return _order.size();
}

}  // namespace ferry::detail
