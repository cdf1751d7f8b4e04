#include "cache.h"

#include <algorithm>

namespace ferry::detail {

std::optional<Resolution> ResolverCache::find(Oxid oxid) {
  std::lock_guard lock(_mutex);
  auto it = _byOxid.find(oxid);
  if (it == _byOxid.end()) return std::nullopt;
  _order.splice(_order.begin(), _order, it->second);
  return *it->second;
}

void ResolverCache::store(const Resolution& resolution) {
  std::lock_guard lock(_mutex);
  auto it = _byOxid.find(resolution.oxid);
  if (it != _byOxid.end()) {
    *it->second = resolution;
    _order.splice(_order.begin(), _order, it->second);
    return;
  }
  _order.push_front(resolution);
  _byOxid[resolution.oxid] = _order.begin();
  if (_order.size() > _capacity) {
    _byOxid.erase(_order.back().oxid);
    _order.pop_back();
  }
}

void ResolverCache::invalidate(Oxid oxid) {
  std::lock_guard lock(_mutex);
  auto it = _byOxid.find(oxid);
  if (it == _byOxid.end()) return;
  _order.erase(it->second);
  _byOxid.erase(it);
}

size_t ResolverCache::invalidateBinding(const StringBindingData& binding) {
  std::lock_guard lock(_mutex);
  size_t dropped = 0;
  for (auto it = _order.begin(); it != _order.end();) {
    if (std::find(it->bindings.begin(), it->bindings.end(), binding) != it->bindings.end()) {
      _byOxid.erase(it->oxid);
      it = _order.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

size_t ResolverCache::size() const {
  std::lock_guard lock(_mutex);
  return _order.size();
}

}  // namespace ferry::detail
