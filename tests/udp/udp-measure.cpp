// Loopback figures for the udp plugin: 64-byte message round trips and 16 MiB transfers, between
// two instances on one loop (so every figure includes both sides' work, done one after the
// other). A meson benchmark, not a test: it prints numbers and asserts only that the transfers
// complete and arrive intact (`meson test --benchmark --suite udp`).
#define BOOST_TEST_MODULE udp loopback measurements
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "udp-harness.h"

namespace ferry::udptest {
namespace {

using Clock = std::chrono::steady_clock;

double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

BOOST_AUTO_TEST_CASE(round_trips_of_a_64_byte_message) {
  Harness harness;
  Instance& server = harness.instance();
  Instance& client = harness.instance();
  Link link = connectPair(harness, server, client, server.listen());
  server.keepDigestsOnly = client.keepDigestsOnly = true;
  Bytes ping = pattern(64, 1);
  server.onReceived = [&](ferry_conn_id conn, const uint8_t* data, size_t size) {
    Bytes pong(data, data + size);
    server.send(conn, pong);
  };
  constexpr int kWarmup = 2000;
  constexpr int kRounds = 20000;
  std::vector<double> samples;
  samples.reserve(kRounds);
  for (int i = 0; i < kWarmup + kRounds; ++i) {
    size_t before = client.receivedCount(link.client);
    auto start = Clock::now();
    BOOST_REQUIRE_EQUAL(client.send(link.client, ping), 0);
    harness.runUntil([&] { return client.receivedCount(link.client) != before; },
                     std::chrono::milliseconds(10000), "the echo");
    if (i >= kWarmup) samples.push_back(micros(Clock::now() - start));
  }
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[static_cast<size_t>(q * (samples.size() - 1))]; };
  double sum = 0;
  for (double s : samples) sum += s;
  std::printf("udp 64-byte round trip, one loop, %d rounds: p50 %.1f us, p90 %.1f us, p99 %.1f us, "
              "p99.9 %.1f us, mean %.1f us\n",
              kRounds, at(0.5), at(0.9), at(0.99), at(0.999), sum / samples.size());
}

void transfer(const std::string& fault, int repeats) {
  for (int r = 0; r < repeats; ++r) {
    Harness harness;
    Instance& server = harness.instance("", fault);
    Instance& client = harness.instance("", fault);
    server.keepDigestsOnly = client.keepDigestsOnly = true;
    Link link = connectPair(harness, server, client, server.listen());
    // Warm the path (PMTU probing) with a small exchange first.
    BOOST_REQUIRE_EQUAL(client.send(link.client, pattern(1000, 1)), 0);
    harness.runUntil([&] { return server.receivedCount(link.server) == 1; },
                     std::chrono::milliseconds(20000), "warm-up");
    harness.runFor(std::chrono::milliseconds(50));
    Bytes big = pattern(16 << 20, 9);
    auto start = Clock::now();
    BOOST_REQUIRE_EQUAL(client.send(link.client, big), 0);
    harness.runUntil([&] { return server.receivedCount(link.server) == 2; },
                     std::chrono::milliseconds(120000), "16 MiB");
    BOOST_REQUIRE_EQUAL(server.send(link.server, pattern(16, 2)), 0);
    harness.runUntil([&] { return client.receivedCount(link.client) == 1; },
                     std::chrono::milliseconds(20000), "the 16-byte reply");
    double seconds = micros(Clock::now() - start) / 1e6;
    BOOST_TEST((server.digests[link.server][1] == std::make_pair(big.size(), digest(big.data(), big.size()))));
    UdpCounters c = client.counters();
    std::printf("udp 16 MiB request + 16-byte reply%s: %.0f ms, %.2f Gbit/s (datagrams %llu, "
                "lost %llu, PTOs %llu, max datagram %llu)\n",
                fault.empty() ? "" : (", fault " + fault).c_str(), seconds * 1000,
                16.0 * 8 * 1.048576 / 1000 / seconds,
                static_cast<unsigned long long>(c.datagrams_sent),
                static_cast<unsigned long long>(c.packets_lost),
                static_cast<unsigned long long>(c.pto_expirations),
                static_cast<unsigned long long>(c.now_max_datagram_size));
  }
}

BOOST_AUTO_TEST_CASE(sixteen_mebibytes_without_loss) { transfer("", 3); }

BOOST_AUTO_TEST_CASE(sixteen_mebibytes_with_five_percent_loss_both_ways) {
  transfer("seed=5,dir=tx,drop=0.05", 3);
}

}  // namespace
}  // namespace ferry::udptest
