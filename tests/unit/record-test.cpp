// The record layer (core/src/security/record.h): what a protected frame resists. Two ends share
// a secret as the two ends of a link would after their bind exchange.
#define BOOST_TEST_MODULE record
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "security/record.h"
#include "stats.h"

using ferry::SecurityLevel;
using ferry::detail::stats;
using ferry::detail::security::RecordLayer;
using ferry::detail::security::ReplayWindow;

namespace {

std::vector<uint8_t> secret(uint8_t seed) {
  std::vector<uint8_t> s(RecordLayer::kSecretSize);
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<uint8_t>(seed + 7 * i);
  return s;
}

std::vector<uint8_t> frame(const std::string& text) { return {text.begin(), text.end()}; }

bool contains(const std::vector<uint8_t>& bytes, const std::string& text) {
  return std::search(bytes.begin(), bytes.end(), text.begin(), text.end()) != bytes.end();
}

int64_t droppedNow() { return stats().sealedFramesDropped.load(); }
int64_t replaysNow() { return stats().replaysDropped.load(); }

struct Link {
  explicit Link(SecurityLevel level, uint8_t seed = 1)
      : client(secret(seed), true, level), server(secret(seed), false, level) {}
  RecordLayer client;
  RecordLayer server;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_frame_sealed_at_either_level_opens_at_the_other_end_both_ways) {
  for (SecurityLevel level : {SecurityLevel::integrity, SecurityLevel::privacy}) {
    Link link(level);
    auto request = frame("a request carrying the argument hello-there");
    auto opened = link.server.open(link.client.seal(request));
    BOOST_REQUIRE(opened.has_value());
    BOOST_CHECK(*opened == request);
    auto response = frame("its response");
    auto back = link.client.open(link.server.seal(response));
    BOOST_REQUIRE(back.has_value());
    BOOST_CHECK(*back == response);
    auto empty = link.server.open(link.client.seal({}));
    BOOST_REQUIRE(empty.has_value());
    BOOST_CHECK(empty->empty());
  }
}

BOOST_AUTO_TEST_CASE(integrity_leaves_the_frame_readable_and_privacy_never_does) {
  Link integrity(SecurityLevel::integrity);
  Link privacy(SecurityLevel::privacy);
  auto request = frame("the argument secret-argument-text");
  auto clear = integrity.client.seal(request);
  auto hidden = privacy.client.seal(request);
  BOOST_CHECK_EQUAL(clear.size(), request.size() + RecordLayer::kOverhead);
  BOOST_CHECK_EQUAL(hidden.size(), request.size() + RecordLayer::kOverhead);
  BOOST_CHECK(contains(clear, "secret-argument-text"));
  BOOST_CHECK(!contains(hidden, "secret-argument-text"));
}

BOOST_AUTO_TEST_CASE(flipping_any_one_bit_of_a_sealed_frame_makes_it_fail_and_is_counted) {
  for (SecurityLevel level : {SecurityLevel::integrity, SecurityLevel::privacy}) {
    Link link(level);
    auto sealed = link.client.seal(frame("twenty bytes of body"));
    int64_t before = droppedNow() + replaysNow();
    size_t bits = sealed.size() * 8;
    for (size_t bit = 0; bit < bits; ++bit) {
      auto copy = sealed;
      copy[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      BOOST_CHECK_MESSAGE(!link.server.open(copy).has_value(), "bit " << bit << " flipped opened");
    }
    BOOST_CHECK_EQUAL(droppedNow() + replaysNow() - before, static_cast<int64_t>(bits));
    // None of them moved the window: the untouched frame still opens.
    BOOST_CHECK(link.server.open(sealed).has_value());
  }
}

BOOST_AUTO_TEST_CASE(a_replayed_frame_is_dropped_inside_and_outside_the_window) {
  Link link(SecurityLevel::integrity);
  auto first = link.client.seal(frame("call 0"));
  BOOST_REQUIRE(link.server.open(first).has_value());
  int64_t before = replaysNow();
  BOOST_CHECK(!link.server.open(first).has_value());  // inside the window
  BOOST_CHECK_EQUAL(replaysNow() - before, 1);
  // Far ahead: frame 0 is then older than the window.
  std::vector<std::vector<uint8_t>> later;
  for (int i = 0; i < 3000; ++i) later.push_back(link.client.seal(frame("call")));
  BOOST_REQUIRE(link.server.open(later.back()).has_value());
  BOOST_CHECK(!link.server.open(first).has_value());
  BOOST_CHECK(!link.server.open(later.front()).has_value());  // number 1, now too old
  BOOST_CHECK_EQUAL(replaysNow() - before, 3);
  // Overtaken frames inside the window still open, once each.
  BOOST_CHECK(link.server.open(later[2990]).has_value());
  BOOST_CHECK(link.server.open(later[2000]).has_value());
  BOOST_CHECK(!link.server.open(later[2000]).has_value());
}

BOOST_AUTO_TEST_CASE(frames_arriving_out_of_order_within_the_window_all_open) {
  Link link(SecurityLevel::privacy);
  std::vector<std::vector<uint8_t>> sealed;
  for (int i = 0; i < 100; ++i) sealed.push_back(link.client.seal(frame(std::to_string(i))));
  std::reverse(sealed.begin(), sealed.end());
  for (auto& s : sealed) BOOST_CHECK(link.server.open(s).has_value());
}

BOOST_AUTO_TEST_CASE(a_forged_frame_numbered_far_ahead_does_not_move_the_window) {
  Link link(SecurityLevel::integrity);
  auto legitimate = link.client.seal(frame("frame 0"));
  auto forged = link.client.sealNumbered(frame("forged"), 3000);
  forged.back() ^= 0x01;  // a tag the attacker cannot compute
  int64_t before = droppedNow();
  BOOST_CHECK(!link.server.open(forged).has_value());
  BOOST_CHECK_EQUAL(droppedNow() - before, 1);
  // Had the window slid to 3000, frame 0 would now be too old.
  BOOST_CHECK(link.server.open(legitimate).has_value());
  // A forged number beyond the next key phase is dropped before any key is derived for it.
  auto farther = link.client.sealNumbered(frame("forged"), uint64_t{1} << 40);
  BOOST_CHECK(!link.server.open(farther).has_value());
  BOOST_CHECK(link.server.open(link.client.seal(frame("frame 1"))).has_value());
}

BOOST_AUTO_TEST_CASE(a_frame_reflected_to_its_sender_or_spliced_into_another_link_fails) {
  Link link(SecurityLevel::privacy, 1);
  Link other(SecurityLevel::privacy, 2);
  auto request = link.client.seal(frame("to the server"));
  int64_t before = droppedNow();
  // Reflected: the client's own c2s frame fed back to the client's receiver (s2c keys).
  BOOST_CHECK(!link.client.open(request).has_value());
  // Spliced: the same frame fed to another link's server.
  BOOST_CHECK(!other.server.open(request).has_value());
  BOOST_CHECK_EQUAL(droppedNow() - before, 2);
  BOOST_CHECK(link.server.open(request).has_value());
}

BOOST_AUTO_TEST_CASE(the_keys_change_every_key_phase_and_frames_across_the_boundary_open) {
  Link link(SecurityLevel::privacy);
  uint64_t boundary = uint64_t{1} << RecordLayer::kPhaseShift;
  auto before = link.client.sealNumbered(frame("last of phase 0"), boundary - 1);
  auto after = link.client.sealNumbered(frame("first of phase 1"), boundary);
  auto next = link.client.sealNumbered(frame("second of phase 1"), boundary + 1);
  auto late = link.client.sealNumbered(frame("overtaken, phase 0"), boundary - 2);
  BOOST_CHECK(link.server.open(after).has_value());
  BOOST_CHECK(link.server.open(before).has_value());
  BOOST_CHECK(link.server.open(next).has_value());
  BOOST_CHECK(link.server.open(late).has_value());
  // The two phases' keys differ: a phase-1 frame relabelled as phase 0 fails.
  auto relabelled = after;
  relabelled[8 + 2] ^= 0x40;  // number bit 22 cleared: boundary → 0
  BOOST_CHECK(!link.server.open(relabelled).has_value());
}

uint64_t numberOf(const std::vector<uint8_t>& sealed) {
  uint64_t number = 0;
  for (int i = 0; i < 8; ++i) number |= uint64_t{sealed[8 + i]} << (8 * i);
  return number;
}

BOOST_AUTO_TEST_CASE(a_sender_whose_key_outlived_its_lifetime_moves_to_the_next_phase_and_the_receiver_follows) {
  // A key lifetime of zero: every frame finds its key expired and starts the next phase.
  RecordLayer client(secret(3), true, SecurityLevel::privacy, std::chrono::seconds(0));
  RecordLayer server(secret(3), false, SecurityLevel::privacy);
  std::vector<std::vector<uint8_t>> sealed;
  for (int i = 0; i < 4; ++i) sealed.push_back(client.seal(frame("frame " + std::to_string(i))));
  for (uint64_t i = 0; i < sealed.size(); ++i) {
    BOOST_CHECK_EQUAL(numberOf(sealed[i]), (i + 1) << RecordLayer::kPhaseShift);
  }
  BOOST_CHECK(server.open(sealed[0]).has_value());
  BOOST_CHECK(server.open(sealed[1]).has_value());
  // Two phases ahead of the receiver: dropped, and nothing committed; in turn, it opens.
  BOOST_CHECK(!server.open(sealed[3]).has_value());
  BOOST_CHECK(server.open(sealed[2]).has_value());
  BOOST_CHECK(server.open(sealed[3]).has_value());
  // Within its lifetime a key seals consecutive numbers.
  RecordLayer steady(secret(3), true, SecurityLevel::privacy);
  BOOST_CHECK_EQUAL(numberOf(steady.seal(frame("a"))), 0u);
  BOOST_CHECK_EQUAL(numberOf(steady.seal(frame("b"))), 1u);
}

BOOST_AUTO_TEST_CASE(frames_overtaken_by_a_key_update_still_open_once_each) {
  Link link(SecurityLevel::integrity);
  std::vector<std::vector<uint8_t>> early;
  for (int i = 0; i < 10; ++i) early.push_back(link.client.seal(frame("early")));
  BOOST_REQUIRE(link.server.open(early[0]).has_value());
  // The next phase's first frame arrives, millions of numbers ahead (a time-based update skips
  // the rest of the phase).
  auto next = link.client.sealNumbered(frame("next phase"), uint64_t{1} << RecordLayer::kPhaseShift);
  BOOST_REQUIRE(link.server.open(next).has_value());
  for (size_t i = 1; i < early.size(); ++i) BOOST_CHECK(link.server.open(early[i]).has_value());
  int64_t before = replaysNow();
  bool replayed = false;
  BOOST_CHECK(!link.server.open(early[4], &replayed).has_value());
  BOOST_CHECK(replayed);
  BOOST_CHECK(!link.server.open(next, &replayed).has_value());
  BOOST_CHECK(replayed);
  BOOST_CHECK_EQUAL(replaysNow() - before, 2);
  // A forged frame is told apart from a replay.
  auto forged = link.client.seal(frame("forged"));
  forged.back() ^= 1;
  BOOST_CHECK(!link.server.open(forged, &replayed).has_value());
  BOOST_CHECK(!replayed);
}

BOOST_AUTO_TEST_CASE(opening_in_place_copies_nothing_at_integrity_and_reuses_one_buffer_at_privacy) {
  auto request = frame("a request carrying the argument hello-there");
  Link integrity(SecurityLevel::integrity);
  auto sealed = integrity.client.seal(request);
  auto opened = integrity.server.openInPlace(sealed);
  BOOST_REQUIRE(opened.has_value());
  BOOST_CHECK(std::equal(opened->begin(), opened->end(), request.begin(), request.end()));
  BOOST_CHECK(opened->data() == sealed.data() + RecordLayer::kHeaderSize);  // the body itself
  Link privacy(SecurityLevel::privacy);
  auto first = privacy.server.openInPlace(privacy.client.seal(request));
  BOOST_REQUIRE(first.has_value());
  BOOST_CHECK(std::equal(first->begin(), first->end(), request.begin(), request.end()));
  const uint8_t* buffer = first->data();
  auto second = privacy.server.openInPlace(privacy.client.seal(frame("shorter")));
  BOOST_REQUIRE(second.has_value());
  BOOST_CHECK(second->data() == buffer);
  BOOST_CHECK_EQUAL(std::string(second->begin(), second->end()), "shorter");
}

BOOST_AUTO_TEST_CASE(truncated_and_malformed_sealed_frames_are_dropped) {
  Link link(SecurityLevel::integrity);
  auto sealed = link.client.seal(frame("body"));
  int64_t before = droppedNow();
  for (size_t size = 0; size < sealed.size(); ++size) {
    BOOST_CHECK(!link.server.open({sealed.data(), size}).has_value());
  }
  BOOST_CHECK_EQUAL(droppedNow() - before, static_cast<int64_t>(sealed.size()));
  BOOST_CHECK(link.server.open(sealed).has_value());
}

BOOST_AUTO_TEST_CASE(the_replay_window_checks_without_committing) {
  ReplayWindow window;
  BOOST_CHECK(window.check(0));
  BOOST_CHECK(window.check(5000));
  BOOST_CHECK(window.check(0));  // a check alone moves nothing
  window.commit(5000);
  BOOST_CHECK(!window.check(5000));
  BOOST_CHECK(window.check(4999));
  BOOST_CHECK(!window.check(5000 - ReplayWindow::kBits));
  BOOST_CHECK(!window.check(UINT64_MAX));
}
