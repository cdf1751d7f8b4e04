#define BOOST_TEST_MODULE udp congestion control
#include <boost/test/unit_test.hpp>

#include "congestion.h"

namespace ferry::transports::udp {
namespace {

constexpr uint64_t kMs = 1000000;

BOOST_AUTO_TEST_CASE(the_initial_window_follows_rfc_9002) {
  BOOST_TEST(CongestionController::initialWindow(1200) == 12000u);
  BOOST_TEST(CongestionController::initialWindow(1452) == 14520u);
  BOOST_TEST(CongestionController::initialWindow(8952) == 17904u);
  CongestionController cc(1200);
  BOOST_TEST(cc.window() == 12000u);
  BOOST_TEST(cc.canSend(12000));
  cc.onSent(11000, 0);
  BOOST_TEST(!cc.canSend(1200));
}

BOOST_AUTO_TEST_CASE(slow_start_grows_by_what_is_acknowledged) {
  CongestionController cc(1200);
  for (int i = 0; i < 10; ++i) cc.onSent(1200, 0);
  for (int i = 0; i < 10; ++i) cc.onAcked(1200, 0, 10 * kMs);
  BOOST_TEST(cc.window() == 24000u);
  BOOST_TEST(cc.bytesInFlight() == 0u);
}

BOOST_AUTO_TEST_CASE(a_loss_halves_the_window_once_per_recovery_period) {
  CongestionController cc(1200);
  for (int i = 0; i < 10; ++i) cc.onSent(1200, i * kMs);
  cc.onLost(1200, 2 * kMs, 20 * kMs);
  BOOST_TEST(cc.window() == 6000u);
  BOOST_TEST(cc.slowStartThreshold() == 6000u);
  // Another packet sent before the recovery began: the same congestion event.
  cc.onLost(1200, 3 * kMs, 21 * kMs);
  BOOST_TEST(cc.window() == 6000u);
  // Acknowledgements of packets sent before recovery do not grow the window.
  cc.onAcked(1200, 5 * kMs, 22 * kMs);
  BOOST_TEST(cc.window() == 6000u);
  // A loss of a packet sent after the recovery began is a new event.
  cc.onSent(1200, 30 * kMs);
  cc.onLost(1200, 30 * kMs, 40 * kMs);
  BOOST_TEST(cc.window() == 3000u);
  cc.onLost(0, 50 * kMs, 60 * kMs);
  cc.onLost(0, 70 * kMs, 80 * kMs);
  BOOST_TEST(cc.window() == 2400u, "never below two datagrams");
}

BOOST_AUTO_TEST_CASE(congestion_avoidance_adds_one_datagram_per_window_acknowledged) {
  CongestionController cc(1200);
  cc.onSent(12000, 0);
  cc.onLost(1200, 0, kMs);  // window 6000, ssthresh 6000
  uint64_t before = cc.window();
  for (int i = 0; i < 5; ++i) cc.onSent(1200, 2 * kMs);
  for (int i = 0; i < 5; ++i) cc.onAcked(1200, 2 * kMs, 3 * kMs);
  BOOST_TEST(cc.window() == before + 1200);
}

BOOST_AUTO_TEST_CASE(persistent_congestion_collapses_to_the_minimum_window) {
  CongestionController cc(1200);
  cc.onPersistentCongestion();
  BOOST_TEST(cc.window() == 2400u);
}

BOOST_AUTO_TEST_CASE(an_application_limited_sender_does_not_grow_its_window) {
  CongestionController cc(1200);
  for (int i = 0; i < 100; ++i) {
    cc.onSent(100, i * kMs);
    cc.onAcked(100, i * kMs, i * kMs + kMs);
  }
  BOOST_TEST(cc.window() == 12000u);
}

BOOST_AUTO_TEST_CASE(the_pacer_spreads_a_window_over_the_rtt_after_an_initial_burst) {
  CongestionController cc(1200);
  cc.onRttSample(100 * kMs);  // 1.25 * 12000 B per 100 ms: 150 B/ms
  uint64_t now = 1 * kMs;
  // The bucket starts with a burst of ten datagrams.
  int sent = 0;
  while (cc.pacedUntil(1200, now) == 0 && sent < 100) {
    cc.consumePacing(1200, now);
    ++sent;
  }
  BOOST_TEST(sent == 10);
  uint64_t next = cc.pacedUntil(1200, now);
  BOOST_TEST(next > now);
  // 1200 bytes at 150 B/ms take 8 ms.
  BOOST_TEST(next - now <= 8 * kMs + 1);
  BOOST_TEST(next - now >= 7 * kMs);
  BOOST_TEST(cc.pacedUntil(1200, next) == 0u);
}

BOOST_AUTO_TEST_CASE(discarded_bytes_leave_flight_without_changing_the_window) {
  CongestionController cc(1200);
  cc.onSent(5000, 0);
  cc.onDiscarded(5000);
  BOOST_TEST(cc.bytesInFlight() == 0u);
  BOOST_TEST(cc.window() == 12000u);
}

}  // namespace
}  // namespace ferry::transports::udp
