#define BOOST_TEST_MODULE udp outbox
#include <boost/test/unit_test.hpp>

#include <vector>

#include "outbox.h"

namespace ferry::transports::udp {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes content(size_t size) {
  Bytes out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(i * 7);
  return out;
}

std::vector<Outbox::Chunk> takeAll(Outbox& outbox, size_t room) {
  std::vector<Outbox::Chunk> chunks;
  Outbox::Chunk chunk;
  while (outbox.next(room, chunk)) chunks.push_back(chunk);
  return chunks;
}

BOOST_AUTO_TEST_CASE(a_message_is_cut_by_byte_offset_to_fit_the_room_given) {
  Outbox outbox;
  outbox.setPeerLimits(1 << 20, 100, 1 << 30);
  Bytes m = content(2500);
  outbox.push(m.data(), m.size());
  std::vector<Outbox::Chunk> chunks = takeAll(outbox, 1000 + dataFrameOverhead(0));
  BOOST_REQUIRE_EQUAL(chunks.size(), 3u);
  BOOST_TEST(chunks[0].offset == 0u);
  BOOST_TEST(chunks[0].length == 1000u);
  BOOST_TEST(chunks[2].offset == 2000u);
  BOOST_TEST(chunks[2].length == 500u);
  BOOST_TEST(chunks[1].total == 2500u);
  BOOST_TEST(!outbox.hasSendable());
  BOOST_TEST(outbox.bytesQueued() == 2500u);
  for (const auto& c : chunks) outbox.onAcked(c.msgId, c.offset, c.length);
  BOOST_TEST(outbox.empty());
  BOOST_TEST(outbox.bytesQueued() == 0u);
}

BOOST_AUTO_TEST_CASE(lost_bytes_go_first_and_only_what_is_not_acknowledged) {
  Outbox outbox;
  outbox.setPeerLimits(1 << 20, 100, 1 << 30);
  Bytes a = content(3000);
  Bytes b = content(100);
  outbox.push(a.data(), a.size());
  std::vector<Outbox::Chunk> first = takeAll(outbox, 1000 + dataFrameOverhead(0));
  BOOST_REQUIRE_EQUAL(first.size(), 3u);
  outbox.push(b.data(), b.size());
  outbox.onAcked(0, 1000, 1000);
  // Bytes 0..2999 declared lost; 1000..1999 were acknowledged meanwhile.
  outbox.onLost(0, 0, 3000);
  std::vector<Outbox::Chunk> again = takeAll(outbox, 5000);
  BOOST_REQUIRE_EQUAL(again.size(), 3u);
  BOOST_TEST(again[0].msgId == 0u);
  BOOST_TEST(again[0].offset == 0u);
  BOOST_TEST(again[0].length == 1000u);
  BOOST_TEST(again[1].offset == 2000u);
  BOOST_TEST(again[1].length == 1000u);
  BOOST_TEST(again[2].msgId == 1u, "new bytes after the lost ones");
}

BOOST_AUTO_TEST_CASE(bytes_beyond_the_unscheduled_amount_wait_for_credit) {
  Outbox outbox;
  outbox.setPeerLimits(4096, 100, 1 << 30);
  Bytes m = content(10000);
  outbox.push(m.data(), m.size());
  std::vector<Outbox::Chunk> chunks = takeAll(outbox, 60000);
  BOOST_REQUIRE_EQUAL(chunks.size(), 1u);
  BOOST_TEST(chunks[0].length == 4096u);
  BOOST_TEST(!outbox.hasSendable());
  outbox.onCredit(0, 8000);
  chunks = takeAll(outbox, 60000);
  BOOST_REQUIRE_EQUAL(chunks.size(), 1u);
  BOOST_TEST(chunks[0].offset == 4096u);
  BOOST_TEST(chunks[0].length == 8000u - 4096u);
  outbox.onCredit(0, 1 << 30);  // capped at the total
  chunks = takeAll(outbox, 60000);
  BOOST_REQUIRE_EQUAL(chunks.size(), 1u);
  BOOST_TEST(chunks[0].offset + chunks[0].length == 10000u);
}

BOOST_AUTO_TEST_CASE(a_credit_blocked_message_lets_the_next_ones_go) {
  Outbox outbox;
  outbox.setPeerLimits(4096, 100, 1 << 30);
  Bytes big = content(10000);
  Bytes small = content(10);
  outbox.push(big.data(), big.size());
  outbox.push(small.data(), small.size());
  std::vector<Outbox::Chunk> chunks = takeAll(outbox, 60000);
  BOOST_REQUIRE_EQUAL(chunks.size(), 2u);
  BOOST_TEST(chunks[1].msgId == 1u);
}

BOOST_AUTO_TEST_CASE(messages_open_in_order_within_the_session_credit) {
  Outbox outbox;
  outbox.setPeerLimits(1 << 20, 2, 905);
  Bytes a = content(600), b = content(300), c = content(10);
  outbox.push(a.data(), a.size());
  outbox.push(b.data(), b.size());
  outbox.push(c.data(), c.size());
  // 600 + 300 fit 905 bytes, but message id 2 is not granted.
  std::vector<Outbox::Chunk> chunks = takeAll(outbox, 60000);
  BOOST_REQUIRE_EQUAL(chunks.size(), 2u);
  outbox.onSessionCredit(3, 900);  // ids grow; bytes never shrink
  BOOST_TEST(!outbox.hasSendable(), "600 + 300 + 10 > 905");
  outbox.onSessionCredit(3, 910);
  chunks = takeAll(outbox, 60000);
  BOOST_REQUIRE_EQUAL(chunks.size(), 1u);
  BOOST_TEST(chunks[0].msgId == 2u);
}

BOOST_AUTO_TEST_CASE(an_empty_message_is_one_frame_and_is_repeated_until_acknowledged) {
  Outbox outbox;
  outbox.setPeerLimits(1 << 20, 100, 1 << 30);
  outbox.push(nullptr, 0);
  std::vector<Outbox::Chunk> chunks = takeAll(outbox, 100);
  BOOST_REQUIRE_EQUAL(chunks.size(), 1u);
  BOOST_TEST(chunks[0].total == 0u);
  BOOST_TEST(chunks[0].length == 0u);
  outbox.onLost(0, 0, 0);
  chunks = takeAll(outbox, 100);
  BOOST_REQUIRE_EQUAL(chunks.size(), 1u);
  outbox.onAcked(0, 0, 0);
  BOOST_TEST(outbox.empty());
}

BOOST_AUTO_TEST_CASE(a_room_too_small_for_a_frame_header_yields_nothing) {
  Outbox outbox;
  outbox.setPeerLimits(1 << 20, 100, 1 << 30);
  Bytes m = content(100);
  outbox.push(m.data(), m.size());
  Outbox::Chunk chunk;
  BOOST_TEST(!outbox.next(dataFrameOverhead(0), chunk));
  BOOST_TEST(outbox.next(dataFrameOverhead(0) + 1, chunk));
  BOOST_TEST(chunk.length == 1u);
}

}  // namespace
}  // namespace ferry::transports::udp
