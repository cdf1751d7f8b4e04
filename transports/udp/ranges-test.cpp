#define BOOST_TEST_MODULE udp range sets
#include <boost/test/unit_test.hpp>

#include <set>
#include <vector>

#include "ranges.h"

namespace ferry::transports::udp {
namespace {

std::vector<std::pair<uint64_t, uint64_t>> intervals(const RangeSet& set) {
  return {set.begin(), set.end()};
}

using Intervals = std::vector<std::pair<uint64_t, uint64_t>>;

BOOST_AUTO_TEST_CASE(adding_merges_overlapping_and_adjacent_ranges_and_counts_what_is_new) {
  RangeSet set;
  BOOST_TEST(set.add(10, 20) == 10u);
  BOOST_TEST(set.add(30, 40) == 10u);
  BOOST_TEST(set.add(20, 30) == 10u);  // adjacent on both sides: one interval
  BOOST_TEST((intervals(set) == Intervals{{10, 40}}));
  BOOST_TEST(set.add(5, 45) == 10u);
  BOOST_TEST(set.add(5, 45) == 0u);
  BOOST_TEST(set.add(7, 7) == 0u);
  BOOST_TEST((intervals(set) == Intervals{{5, 45}}));
}

BOOST_AUTO_TEST_CASE(subtracting_splits_and_trims) {
  RangeSet set;
  set.add(0, 100);
  set.subtract(10, 20);
  set.subtract(90, 200);
  set.subtract(0, 5);
  BOOST_TEST((intervals(set) == Intervals{{5, 10}, {20, 90}}));
  set.removeBelow(50);
  BOOST_TEST((intervals(set) == Intervals{{50, 90}}));
}

BOOST_AUTO_TEST_CASE(queries_agree_with_a_plain_set_of_numbers) {
  RangeSet set;
  std::set<uint64_t> model;
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1103515245u + 12345u;
    return (state >> 8) % 200;
  };
  for (int step = 0; step < 2000; ++step) {
    uint64_t lo = next();
    uint64_t hi = lo + next() % 15;
    if (step % 3 == 0) {
      set.subtract(lo, hi);
      for (uint64_t v = lo; v < hi; ++v) model.erase(v);
    } else {
      uint64_t fresh = 0;
      for (uint64_t v = lo; v < hi; ++v) fresh += model.insert(v).second ? 1 : 0;
      BOOST_REQUIRE_EQUAL(set.add(lo, hi), fresh);
    }
    uint64_t probe = next();
    BOOST_REQUIRE_EQUAL(set.contains(probe), model.count(probe) == 1);
    uint64_t end = probe;
    while (model.count(end) != 0) ++end;
    BOOST_REQUIRE_EQUAL(set.runEnd(probe), end);
    uint64_t a = next();
    uint64_t b = a + next() % 20;
    bool covered = true;
    for (uint64_t v = a; v < b; ++v) covered = covered && model.count(v) != 0;
    BOOST_REQUIRE_EQUAL(set.covers(a, b), covered);
    uint64_t gaps = 0;
    set.forEachGap(a, b, [&](uint64_t lo2, uint64_t hi2) {
      BOOST_REQUIRE(lo2 < hi2);
      for (uint64_t v = lo2; v < hi2; ++v) BOOST_REQUIRE(model.count(v) == 0);
      gaps += hi2 - lo2;
    });
    uint64_t missing = 0;
    for (uint64_t v = a; v < b; ++v) missing += model.count(v) == 0 ? 1 : 0;
    BOOST_REQUIRE_EQUAL(gaps, missing);
  }
  // Intervals stay disjoint and never adjacent.
  uint64_t previousEnd = 0;
  bool first = true;
  for (auto [lo, hi] : set) {
    BOOST_TEST(lo < hi);
    if (!first) BOOST_TEST(lo > previousEnd);
    previousEnd = hi;
    first = false;
  }
}

}  // namespace
}  // namespace ferry::transports::udp
