#define BOOST_TEST_MODULE udp loss recovery
#include <boost/test/unit_test.hpp>

#include "recovery.h"

namespace ferry::transports::udp {
namespace {

constexpr uint64_t kMs = 1000000;

SentPacket packet(uint64_t pn, uint32_t size = 1200) {
  SentPacket p;
  p.pn = pn;
  p.size = size;
  p.frames.push_back({SentFrame::Kind::data, 0, static_cast<uint32_t>(pn * 1000), 1000});
  return p;
}

AckFrame ackRange(uint64_t low, uint64_t high, uint64_t delayUs = 0) {
  AckFrame ack;
  ack.rangeCount = 1;
  ack.low[0] = low;
  ack.high[0] = high;
  ack.delayUs = delayUs;
  return ack;
}

BOOST_AUTO_TEST_CASE(the_first_rtt_sample_sets_srtt_and_later_ones_smooth_it) {
  RttEstimator rtt(333 * kMs);
  BOOST_TEST(rtt.pto(0) == 333 * kMs + 4 * (333 * kMs / 2));  // about 1 s (RFC 9002 §6.2.2)
  rtt.update(100 * kMs, 0);
  BOOST_TEST(rtt.smoothed() == 100 * kMs);
  BOOST_TEST(rtt.variance() == 50 * kMs);
  rtt.update(200 * kMs, 0);
  BOOST_TEST(rtt.smoothed() == (7 * 100 * kMs + 200 * kMs) / 8);
  BOOST_TEST(rtt.minRtt() == 100 * kMs);
  // The peer's ack delay is subtracted, but never below min_rtt.
  rtt.update(110 * kMs, 50 * kMs);
  BOOST_TEST(rtt.latest() == 110 * kMs);
  BOOST_TEST(rtt.smoothed() > 100 * kMs);
}

BOOST_AUTO_TEST_CASE(an_ack_acknowledges_its_ranges_and_samples_the_rtt_of_the_largest) {
  Recovery recovery(100 * kMs);
  for (uint64_t pn = 0; pn < 5; ++pn) recovery.onSent(packet(pn), pn * kMs);
  BOOST_TEST(recovery.outstanding() == 5u);
  BOOST_TEST(recovery.bytesInFlight() == 6000u);
  AckOutcome outcome;
  recovery.onAck(ackRange(0, 4), 24 * kMs, 0, outcome);
  BOOST_TEST(outcome.acked.size() == 5u);
  BOOST_TEST(outcome.lost.empty());
  BOOST_TEST(outcome.rttSampled);
  BOOST_TEST(recovery.rtt().latest() == 20 * kMs);  // packet 4 was sent at 4 ms
  BOOST_TEST(recovery.outstanding() == 0u);
  BOOST_TEST(recovery.bytesInFlight() == 0u);
  BOOST_TEST(recovery.deadline(0) == 0u);
}

BOOST_AUTO_TEST_CASE(packets_set_aside_leave_the_flight_but_are_still_acknowledged_or_lost) {
  Recovery recovery(10 * kMs);
  SentPacket probe = packet(0, 1500);
  probe.inFlight = false;  // a PMTU probe: never in flight, never set aside
  recovery.onSent(std::move(probe), 0);
  for (uint64_t pn = 1; pn < 8; ++pn) recovery.onSent(packet(pn), 0);
  BOOST_TEST(recovery.bytesInFlight() == 8400u);
  BOOST_TEST(recovery.setAsideFlight() == 8400u);
  BOOST_TEST(recovery.bytesInFlight() == 0u);
  BOOST_TEST(recovery.outstanding() == 8u, "setting aside is no acknowledgement");
  BOOST_TEST(recovery.setAsideFlight() == 0u, "set aside twice");
  AckOutcome outcome;
  recovery.onAck(ackRange(7, 7), 1 * kMs, 0, outcome);
  BOOST_REQUIRE(outcome.acked.size() == 1u);
  BOOST_TEST(outcome.acked[0].setAside);
  BOOST_TEST(!outcome.acked[0].inFlight);
  // Three behind the largest acknowledged: lost, and reported as set aside (a congestion signal
  // for the session), except the probe.
  BOOST_REQUIRE(outcome.lost.size() == 5u);
  BOOST_TEST(!outcome.lost[0].setAside, "the PMTU probe");
  for (size_t i = 1; i < 5; ++i) BOOST_TEST(outcome.lost[i].setAside);
  BOOST_TEST(recovery.outstanding() == 2u);
  BOOST_TEST(recovery.bytesInFlight() == 0u);
}

BOOST_AUTO_TEST_CASE(a_packet_three_behind_the_largest_acknowledged_is_lost) {
  Recovery recovery(10 * kMs);
  for (uint64_t pn = 0; pn < 5; ++pn) recovery.onSent(packet(pn), 0);
  AckOutcome outcome;
  AckFrame ack;
  ack.rangeCount = 2;
  ack.high[0] = 4;
  ack.low[0] = 2;
  ack.high[1] = 0;
  ack.low[1] = 0;
  recovery.onAck(ack, 1 * kMs, 0, outcome);
  // Packet 1 is 3 below the largest acknowledged (4): lost by the packet threshold.
  BOOST_REQUIRE_EQUAL(outcome.lost.size(), 1u);
  BOOST_TEST(outcome.lost[0].pn == 1u);
  BOOST_TEST(outcome.acked.size() == 4u);
}

BOOST_AUTO_TEST_CASE(a_packet_older_than_nine_eighths_of_the_rtt_is_lost_by_time) {
  Recovery recovery(10 * kMs);
  recovery.onSent(packet(0), 0);
  recovery.onSent(packet(1), 1 * kMs);
  AckOutcome outcome;
  recovery.onAck(ackRange(1, 1), 11 * kMs, 0, outcome);  // rtt 10 ms
  BOOST_TEST(outcome.lost.empty());
  // Loss time armed at 0 + 9/8 * 10 ms.
  BOOST_TEST(recovery.deadline(0) == 11250000u);
  AckOutcome timeout;
  BOOST_TEST(!recovery.onTimeout(11250000, 0, timeout));
  BOOST_REQUIRE_EQUAL(timeout.lost.size(), 1u);
  BOOST_TEST(timeout.lost[0].pn == 0u);
  BOOST_TEST(recovery.outstanding() == 0u);
}

BOOST_AUTO_TEST_CASE(the_probe_timeout_doubles_with_each_expiry_and_resets_on_an_ack) {
  Recovery recovery(10 * kMs);
  recovery.onSent(packet(0), 0);
  uint64_t pto = recovery.rtt().pto(5 * kMs);
  BOOST_TEST(recovery.deadline(5 * kMs) == pto);
  AckOutcome outcome;
  BOOST_TEST(recovery.onTimeout(pto, 5 * kMs, outcome));
  BOOST_TEST(recovery.ptoCount() == 1u);
  recovery.onSent(packet(1), pto);  // the probe
  BOOST_TEST(recovery.deadline(5 * kMs) == pto + 2 * pto);
  BOOST_TEST(recovery.onTimeout(3 * pto, 5 * kMs, outcome));
  recovery.onSent(packet(2), 3 * pto);
  BOOST_TEST(recovery.deadline(5 * kMs) == 3 * pto + 4 * pto);
  recovery.onAck(ackRange(2, 2), 3 * pto + kMs, 5 * kMs, outcome);
  BOOST_TEST(recovery.ptoCount() == 0u);
}

BOOST_AUTO_TEST_CASE(a_loss_that_turns_out_to_be_reordering_raises_the_thresholds) {
  Recovery recovery(10 * kMs);
  for (uint64_t pn = 0; pn < 10; ++pn) recovery.onSent(packet(pn), 0);
  AckOutcome first;
  recovery.onAck(ackRange(5, 9), 1 * kMs, 0, first);
  BOOST_TEST(first.lost.size() == 5u);  // 0..4 are 3 or more behind 9... by the packet threshold
  // Packet 1 was only late: 9 - 1 + 1 = 9 packets of reordering seen.
  AckOutcome late;
  recovery.onAck(ackRange(1, 1), 2 * kMs, 0, late);
  BOOST_TEST(late.spurious == 1u);
  BOOST_TEST(late.acked.empty(), "it left recovery when it was declared lost");
  BOOST_TEST(recovery.packetThreshold() == 9u);
  BOOST_TEST(recovery.timeThresholdEighths() == 2 * kInitialTimeThresholdEighths);
  // Now a packet 5 behind the largest acknowledged is not lost yet.
  for (uint64_t pn = 10; pn < 16; ++pn) recovery.onSent(packet(pn), 3 * kMs);
  AckOutcome next;
  recovery.onAck(ackRange(15, 15), 3 * kMs + 100, 0, next);
  BOOST_TEST(next.lost.empty());
}

BOOST_AUTO_TEST_CASE(the_backoff_stops_at_sixty_seconds) {
  Recovery recovery(10 * kMs);
  recovery.onSent(packet(0), 0);
  AckOutcome outcome;
  for (int i = 0; i < 40; ++i) recovery.onTimeout(0, 0, outcome);
  BOOST_TEST(recovery.deadline(0) == kMaxPtoBackoffNs);
}

BOOST_AUTO_TEST_CASE(losses_spanning_three_ptos_with_nothing_acknowledged_between_are_persistent) {
  Recovery recovery(10 * kMs);
  recovery.onSent(packet(0), 0);
  AckOutcome first;
  recovery.onAck(ackRange(0, 0), 10 * kMs, 0, first);  // an RTT sample of 10 ms
  uint64_t period = 3 * recovery.rtt().pto(0);
  recovery.onSent(packet(1), 20 * kMs);
  recovery.onSent(packet(2), 20 * kMs + period / 2);
  recovery.onSent(packet(3), 20 * kMs + period + kMs);
  for (uint64_t pn = 4; pn < 8; ++pn) recovery.onSent(packet(pn), 20 * kMs + period + 2 * kMs);
  AckOutcome outcome;
  recovery.onAck(ackRange(7, 7), 20 * kMs + period + 12 * kMs, 0, outcome);
  BOOST_TEST(outcome.lost.size() >= 3u);
  BOOST_TEST(outcome.persistentCongestion);
}

BOOST_AUTO_TEST_CASE(discarded_packets_leave_without_being_lost_or_acknowledged) {
  Recovery recovery(10 * kMs);
  SentPacket hello = packet(0);
  hello.frames = {{SentFrame::Kind::hello, 0, 0, 0}};
  recovery.onSent(hello, 0);
  recovery.onSent(packet(1), 0);
  std::vector<SentPacket> discarded;
  recovery.discardIf(
      [](const SentPacket& p) { return p.frames[0].kind == SentFrame::Kind::hello; }, discarded);
  BOOST_REQUIRE_EQUAL(discarded.size(), 1u);
  BOOST_TEST(recovery.outstanding() == 1u);
  BOOST_TEST(recovery.bytesInFlight() == 1200u);
  BOOST_TEST(recovery.oldestOutstanding()->pn == 1u);
}

}  // namespace
}  // namespace ferry::transports::udp
