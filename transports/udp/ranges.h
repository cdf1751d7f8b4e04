// A set of 64-bit numbers kept as disjoint, non-adjacent half-open intervals [lo, hi). The udp
// plugin uses it for packet numbers received (ACK ranges), bytes of a message received
// (reassembly), and bytes of a message acknowledged or lost (retransmission).
//
// Operations are O(log n) in the number of intervals; callers that take input from peers cap
// that number (intervals()) so a hostile pattern cannot grow it without bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>

namespace ferry::transports::udp {

class RangeSet {
public:
  using Map = std::map<uint64_t, uint64_t>;  // lo -> hi

  // Adds [lo, hi); returns how many numbers were not in the set before. Empty ranges are ignored.
  uint64_t add(uint64_t lo, uint64_t hi);
  // Removes [lo, hi).
  void subtract(uint64_t lo, uint64_t hi);
  // Removes every number below `floor`.
  void removeBelow(uint64_t floor);
  void clear() noexcept { _map.clear(); }

  bool contains(uint64_t value) const;
  // True when every number of [lo, hi) is in the set (an empty range is always covered).
  bool covers(uint64_t lo, uint64_t hi) const;
  // The end of the interval that contains `from`, or `from` when the set does not contain it:
  // [from, prefixEnd(from)) is the run of present numbers starting at `from`.
  uint64_t runEnd(uint64_t from) const;
  // Calls gap(lo, hi) for each maximal sub-range of [lo, hi) not in the set, in order.
  template <typename Gap>
  void forEachGap(uint64_t lo, uint64_t hi, Gap&& gap) const;

  bool empty() const noexcept { return _map.empty(); }
  size_t intervals() const noexcept { return _map.size(); }
  // Smallest member, and one past the largest; only when not empty.
  uint64_t min() const { return _map.begin()->first; }
  uint64_t max() const { return _map.rbegin()->second; }

  // Intervals in ascending order.
  Map::const_iterator begin() const noexcept { return _map.begin(); }
  Map::const_iterator end() const noexcept { return _map.end(); }
  Map::const_reverse_iterator rbegin() const noexcept { return _map.rbegin(); }
  Map::const_reverse_iterator rend() const noexcept { return _map.rend(); }

private:
  Map _map;
};

template <typename Gap>
void RangeSet::forEachGap(uint64_t lo, uint64_t hi, Gap&& gap) const {
  if (lo >= hi) return;
  auto it = _map.upper_bound(lo);
  if (it != _map.begin()) {
    auto before = std::prev(it);
    if (before->second > lo) lo = before->second;
  }
  while (lo < hi) {
    if (it == _map.end() || it->first >= hi) {
      gap(lo, hi);
      return;
    }
    if (it->first > lo) gap(lo, it->first);
    lo = it->second;
    ++it;
  }
}

}  // namespace ferry::transports::udp
