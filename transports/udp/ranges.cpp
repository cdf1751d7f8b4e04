#include "ranges.h"

#include <iterator>

namespace ferry::transports::udp {

uint64_t RangeSet::add(uint64_t lo, uint64_t hi) {
  if (lo >= hi) return 0;
  uint64_t added = hi - lo;
  // The first interval that could touch [lo, hi): the one starting at or before lo, if it
  // reaches lo, else the first starting after lo.
  auto it = _map.upper_bound(lo);
  if (it != _map.begin()) {
    auto before = std::prev(it);
    if (before->second >= lo) it = before;
  }
  uint64_t newLo = lo;
  uint64_t newHi = hi;
  while (it != _map.end() && it->first <= hi) {
    // Overlap with [lo, hi) is not new.
    uint64_t overlapLo = it->first > lo ? it->first : lo;
    uint64_t overlapHi = it->second < hi ? it->second : hi;
    if (overlapHi > overlapLo) added -= overlapHi - overlapLo;
    if (it->first < newLo) newLo = it->first;
    if (it->second > newHi) newHi = it->second;
    it = _map.erase(it);
  }
  _map.emplace_hint(it, newLo, newHi);
  return added;
}

void RangeSet::subtract(uint64_t lo, uint64_t hi) {
  if (lo >= hi) return;
  auto it = _map.upper_bound(lo);
  if (it != _map.begin()) {
    auto before = std::prev(it);
    if (before->second > lo) it = before;
  }
  while (it != _map.end() && it->first < hi) {
    uint64_t first = it->first;
    uint64_t last = it->second;
    it = _map.erase(it);
    if (first < lo) _map.emplace(first, lo);
    if (last > hi) {
      _map.emplace(hi, last);
      break;
    }
  }
}

void RangeSet::removeBelow(uint64_t floor) {
  while (!_map.empty() && _map.begin()->first < floor) {
    auto first = _map.begin();
    uint64_t hi = first->second;
    _map.erase(first);
    if (hi > floor) {
      _map.emplace(floor, hi);
      break;
    }
  }
}

bool RangeSet::contains(uint64_t value) const {
  auto it = _map.upper_bound(value);
  if (it == _map.begin()) return false;
  return std::prev(it)->second > value;
}

bool RangeSet::covers(uint64_t lo, uint64_t hi) const {
  if (lo >= hi) return true;
  auto it = _map.upper_bound(lo);
  if (it == _map.begin()) return false;
  return std::prev(it)->second >= hi;
}

uint64_t RangeSet::runEnd(uint64_t from) const {
  auto it = _map.upper_bound(from);
  if (it == _map.begin()) return from;
  auto before = std::prev(it);
  return before->second > from ? before->second : from;
}

}  // namespace ferry::transports::udp
