#define BOOST_TEST_MODULE udp fault layer and options
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "fault.h"
#include "options.h"

namespace ferry::transports::udp {
namespace {

BOOST_AUTO_TEST_CASE(options_are_read_and_each_bad_one_is_reported_by_its_key) {
  Options options;
  std::vector<std::string> problems;
  parseOptions("idle_timeout_ms=2000,initial_rtt_ms=10,max_ack_delay_ms=5,bogus=1,pmtu=x",
               options, problems);
  BOOST_TEST(options.idleTimeoutMs == 2000u);
  BOOST_TEST(options.initialRttMs == 10u);
  BOOST_TEST(options.maxAckDelayMs == 5u);
  BOOST_TEST(options.pmtu == 1u, "a malformed value leaves the default");
  BOOST_TEST(problems.size() == 2u);
  BOOST_REQUIRE(problems.size() == 2u);
  BOOST_TEST(problems[0].find("'bogus' is no udp setting (they are idle_timeout_ms,") == 0u,
             problems[0]);
  BOOST_TEST(problems[1].find("pmtu=x") == 0u, problems[1]);
  Options defaults;
  problems.clear();
  parseOptions(nullptr, defaults, problems);
  BOOST_TEST(problems.empty());
  BOOST_TEST(defaults.idleTimeoutMs == 30000u);
  BOOST_TEST(defaults.initialRttMs == 333u);
}

BOOST_AUTO_TEST_CASE(fault_keys_apply_to_the_directions_dir_names) {
  FaultConfig fault;
  std::vector<std::string> problems;
  parseFault("seed=7,dir=tx,drop=0.1,dup=0.5,rx.corrupt=0.01,delay_ms=5", fault, problems);
  BOOST_TEST(problems.empty());
  BOOST_TEST(fault.seed == 7u);
  BOOST_TEST(fault.tx.drop == 0.1);
  BOOST_TEST(fault.tx.dup == 0.5);
  BOOST_TEST(fault.tx.delayMs == 5u);
  BOOST_TEST(fault.rx.drop == 0.0);
  BOOST_TEST(fault.rx.corrupt == 0.01);
  FaultConfig hole;
  parseFault("blackhole=1", hole, problems);
  BOOST_TEST(hole.tx.drop == 1.0);
  BOOST_TEST(hole.rx.drop == 1.0);
  FaultConfig bad;
  parseFault("drop=2,dir=sideways,nothing=1", bad, problems);
  BOOST_TEST(problems.size() == 3u);
  BOOST_TEST(!bad.active());
}

BOOST_AUTO_TEST_CASE(one_seed_gives_one_sequence_of_decisions) {
  FaultDirection config;
  config.drop = 0.2;
  config.dup = 0.3;
  config.reorder = 0.25;
  config.truncate = 0.1;
  config.corrupt = 0.1;
  FaultInjector a(config, 7);
  FaultInjector b(config, 7);
  FaultInjector c(config, 8);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    FaultCopy x[2], y[2], z[2];
    size_t n = a.decide(1200, x);
    BOOST_REQUIRE_EQUAL(n, b.decide(1200, y));
    for (size_t k = 0; k < n; ++k) {
      BOOST_REQUIRE_EQUAL(x[k].delayNs, y[k].delayNs);
      BOOST_REQUIRE_EQUAL(x[k].length, y[k].length);
      BOOST_REQUIRE_EQUAL(x[k].flipBit, y[k].flipBit);
    }
    differs = differs || c.decide(1200, z) != n;
  }
  BOOST_TEST(differs, "another seed, another sequence");
}

BOOST_AUTO_TEST_CASE(rates_come_out_near_what_was_asked_and_are_counted) {
  FaultDirection config;
  config.drop = 0.1;
  config.dup = 0.5;
  FaultInjector injector(config, 3);
  size_t delivered = 0;
  for (int i = 0; i < 20000; ++i) {
    FaultCopy copies[2];
    delivered += injector.decide(100, copies);
  }
  const FaultCounts& counts = injector.counts();
  BOOST_TEST(counts.dropped > 1700u);
  BOOST_TEST(counts.dropped < 2300u);
  BOOST_TEST(counts.duplicated > 8000u);
  BOOST_TEST(counts.duplicated < 10000u);
  BOOST_TEST(delivered == 20000u - counts.dropped + counts.duplicated);
}

BOOST_AUTO_TEST_CASE(truncation_shortens_and_corruption_flips_a_bit_inside_the_datagram) {
  FaultDirection config;
  config.truncate = 1.0;
  config.corrupt = 1.0;
  FaultInjector injector(config, 5);
  for (int i = 0; i < 1000; ++i) {
    FaultCopy copies[2];
    BOOST_REQUIRE_EQUAL(injector.decide(500, copies), 1u);
    BOOST_REQUIRE_LT(copies[0].length, 500u);
    if (copies[0].length > 0) {
      BOOST_REQUIRE_GE(copies[0].flipBit, 0);
      BOOST_REQUIRE_LT(static_cast<size_t>(copies[0].flipBit), copies[0].length * 8);
    }
  }
}

BOOST_AUTO_TEST_CASE(truncate_max_bounds_the_cut_and_zero_cuts_every_datagram_to_nothing) {
  FaultConfig fault;
  std::vector<std::string> problems;
  parseFault("seed=3,dir=tx,truncate=1,truncate_max=0,rx.truncate_max=x", fault, problems);
  BOOST_TEST(problems.size() == 1u);
  BOOST_TEST(fault.tx.truncateMax == 0u);
  BOOST_TEST(fault.rx.truncateMax == FaultDirection().truncateMax,
             "a malformed value leaves the default");
  FaultInjector empty(fault.tx, fault.seed);
  for (size_t size : {1u, 2u, 37u, 1200u}) {
    FaultCopy copies[2];
    BOOST_REQUIRE_EQUAL(empty.decide(size, copies), 1u);
    BOOST_TEST(copies[0].length == 0u);
  }
  BOOST_TEST(empty.counts().truncated == 4u);
  FaultDirection bounded;
  bounded.truncate = 1.0;
  bounded.truncateMax = 10;
  FaultInjector cut(bounded, 5);
  for (int i = 0; i < 1000; ++i) {
    FaultCopy copies[2];
    cut.decide(500, copies);
    BOOST_REQUIRE_LE(copies[0].length, 10u);
  }
}

BOOST_AUTO_TEST_CASE(a_size_limit_drops_only_larger_datagrams) {
  FaultDirection config;
  config.maxSize = 1300;
  FaultInjector injector(config, 1);
  FaultCopy copies[2];
  BOOST_TEST(injector.decide(1300, copies) == 1u);
  BOOST_TEST(injector.decide(1301, copies) == 0u);
  BOOST_TEST(injector.counts().oversized == 1u);
}

}  // namespace
}  // namespace ferry::transports::udp
