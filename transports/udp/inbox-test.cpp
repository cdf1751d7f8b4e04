#define BOOST_TEST_MODULE udp inbox
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <vector>

#include "inbox.h"

namespace ferry::transports::udp {
namespace {

using Bytes = std::vector<uint8_t>;

InboxLimits limits() {
  InboxLimits l;
  l.maxMessageSize = 1 << 20;
  l.unscheduledBytes = 4096;
  l.messageWindow = 8192;
  l.maxOpenMessages = 8;
  l.sessionWindow = 2 << 20;
  return l;
}

Bytes content(size_t size, uint8_t seed) {
  Bytes out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(seed + i * 31);
  return out;
}

DataFrame frame(uint64_t msgId, const Bytes& message, uint32_t offset, uint32_t length) {
  DataFrame f;
  f.msgId = msgId;
  f.total = static_cast<uint32_t>(message.size());
  f.offset = offset;
  f.length = static_cast<uint16_t>(length);
  f.bytes = message.data() + offset;
  return f;
}

// Takes every deliverable message, in order.
std::vector<Bytes> drain(Inbox& inbox) {
  std::vector<Bytes> out;
  const uint8_t* data = nullptr;
  size_t size = 0;
  while (inbox.front(data, size)) {
    out.emplace_back(data, data + size);
    inbox.popFront();
  }
  inbox.adoptViews();
  return out;
}

BOOST_AUTO_TEST_CASE(fragments_in_any_order_make_one_message_delivered_once) {
  MemoryBudget budget{1 << 30, 0};
  Inbox inbox(limits(), budget);
  Bytes m = content(3000, 1);
  BOOST_TEST((inbox.onData(frame(0, m, 2000, 1000)) == Inbox::Verdict::accepted));
  BOOST_TEST(budget.used == 3000u, "one buffer of total_len, at the first fragment");
  BOOST_TEST(drain(inbox).empty());
  BOOST_TEST((inbox.onData(frame(0, m, 0, 1500)) == Inbox::Verdict::accepted));
  BOOST_TEST((inbox.onData(frame(0, m, 0, 1500)) == Inbox::Verdict::duplicate));
  BOOST_TEST((inbox.onData(frame(0, m, 1000, 1500)) == Inbox::Verdict::accepted));
  std::vector<Bytes> got = drain(inbox);
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_TEST((got[0] == m));
  BOOST_TEST(budget.used == 0u);
  // Late copies of a delivered message are duplicates, not a second delivery.
  BOOST_TEST((inbox.onData(frame(0, m, 0, 1500)) == Inbox::Verdict::duplicate));
  BOOST_TEST(drain(inbox).empty());
}

BOOST_AUTO_TEST_CASE(messages_are_delivered_in_order_whatever_order_they_complete_in) {
  MemoryBudget budget{1 << 30, 0};
  Inbox inbox(limits(), budget);
  Bytes a = content(10, 1), b = content(20, 2), c = content(0, 3);
  BOOST_TEST((inbox.onData(frame(2, c, 0, 0)) == Inbox::Verdict::accepted));
  BOOST_TEST((inbox.onData(frame(1, b, 0, 20)) == Inbox::Verdict::accepted));
  BOOST_TEST(drain(inbox).empty());
  BOOST_TEST((inbox.onData(frame(0, a, 0, 10)) == Inbox::Verdict::accepted));
  std::vector<Bytes> got = drain(inbox);
  BOOST_REQUIRE_EQUAL(got.size(), 3u);
  BOOST_TEST((got[0] == a));
  BOOST_TEST((got[1] == b));
  BOOST_TEST(got[2].empty());
  BOOST_TEST(inbox.nextDeliver() == 3u);
}

BOOST_AUTO_TEST_CASE(a_whole_message_next_in_line_is_delivered_from_the_packet_without_a_copy) {
  MemoryBudget budget{1 << 30, 0};
  Inbox inbox(limits(), budget);
  Bytes m = content(500, 4);
  BOOST_TEST((inbox.onData(frame(0, m, 0, 500)) == Inbox::Verdict::accepted));
  const uint8_t* data = nullptr;
  size_t size = 0;
  BOOST_REQUIRE(inbox.front(data, size));
  BOOST_TEST(data == m.data());
  BOOST_TEST(budget.used == 0u);
  inbox.popFront();
  // One that cannot be delivered yet is copied before the packet goes away.
  Bytes later = content(100, 5);
  BOOST_TEST((inbox.onData(frame(2, later, 0, 100)) == Inbox::Verdict::accepted));
  inbox.adoptViews();
  later.assign(later.size(), 0);
  Bytes middle = content(10, 6);
  inbox.onData(frame(1, middle, 0, 10));
  std::vector<Bytes> got = drain(inbox);
  BOOST_REQUIRE_EQUAL(got.size(), 2u);
  BOOST_TEST((got[1] == content(100, 5)));
}

BOOST_AUTO_TEST_CASE(frames_outside_their_limits_are_violations_and_allocate_nothing) {
  MemoryBudget budget{1 << 30, 0};
  Inbox inbox(limits(), budget);
  Bytes m = content(100, 1);
  DataFrame tooBig = frame(0, m, 0, 100);
  tooBig.total = (1 << 20) + 1;
  BOOST_TEST((inbox.onData(tooBig) == Inbox::Verdict::violation));
  DataFrame pastEnd = frame(0, m, 0, 100);
  pastEnd.offset = 50;
  BOOST_TEST((inbox.onData(pastEnd) == Inbox::Verdict::violation));
  DataFrame overflow = frame(0, m, 0, 100);
  overflow.total = 0xffffffffu;
  overflow.offset = 0xffffffc0u;  // offset + length wraps in 32 bits
  BOOST_TEST((inbox.onData(overflow) == Inbox::Verdict::violation));
  DataFrame empty = frame(0, m, 0, 0);
  BOOST_TEST((inbox.onData(empty) == Inbox::Verdict::violation));
  DataFrame beyondWindow = frame(8, m, 0, 100);  // ids 0..7 granted
  BOOST_TEST((inbox.onData(beyondWindow) == Inbox::Verdict::violation));
  Bytes big = content(100000, 2);
  BOOST_TEST((inbox.onData(frame(0, big, 5000, 100)) == Inbox::Verdict::violation),
             "beyond the unscheduled bytes before any credit");
  BOOST_TEST(budget.used == 0u);
  BOOST_TEST(inbox.bytesHeld() == 0u);
  BOOST_TEST(inbox.openMessages() == 0u);
}

BOOST_AUTO_TEST_CASE(a_total_that_changes_within_a_message_is_a_violation) {
  MemoryBudget budget{1 << 30, 0};
  Inbox inbox(limits(), budget);
  Bytes m = content(1000, 1);
  BOOST_TEST((inbox.onData(frame(0, m, 0, 100)) == Inbox::Verdict::accepted));
  DataFrame other = frame(0, m, 100, 100);
  other.total = 2000;
  BOOST_TEST((inbox.onData(other) == Inbox::Verdict::violation));
  BOOST_TEST(budget.used == 1000u);
}

BOOST_AUTO_TEST_CASE(credit_is_granted_ahead_of_the_received_prefix_and_enforced) {
  MemoryBudget budget{1 << 30, 0};
  Inbox inbox(limits(), budget);
  Bytes m = content(50000, 1);
  BOOST_TEST((inbox.onData(frame(0, m, 0, 4096)) == Inbox::Verdict::accepted));
  std::vector<std::pair<uint64_t, uint64_t>> credits;
  inbox.forEachCreditDue([&](uint64_t id, uint64_t max) { credits.emplace_back(id, max); });
  BOOST_REQUIRE_EQUAL(credits.size(), 1u);
  BOOST_TEST(credits[0].first == 0u);
  BOOST_TEST(credits[0].second == 4096u + 8192u);
  BOOST_TEST((inbox.onData(frame(0, m, 12288, 100)) == Inbox::Verdict::violation),
             "beyond the credit");
  BOOST_TEST((inbox.onData(frame(0, m, 4096, 8192)) == Inbox::Verdict::accepted));
  credits.clear();
  inbox.forEachCreditDue([&](uint64_t id, uint64_t max) { credits.emplace_back(id, max); });
  BOOST_REQUIRE_EQUAL(credits.size(), 1u);
  BOOST_TEST(credits[0].second == 12288u + 8192u);
}

BOOST_AUTO_TEST_CASE(a_new_message_beyond_the_session_promise_is_a_violation) {
  MemoryBudget budget{1 << 30, 0};
  InboxLimits l = limits();
  l.sessionWindow = 10000;
  l.maxMessageSize = 10000;
  Inbox inbox(l, budget);
  Bytes a = content(6000, 1);
  Bytes b = content(5000, 2);
  BOOST_TEST((inbox.onData(frame(0, a, 0, 1000)) == Inbox::Verdict::accepted));
  BOOST_TEST((inbox.onData(frame(1, b, 0, 1000)) == Inbox::Verdict::violation),
             "6000 + 5000 undelivered bytes exceed the 10000 promised");
  BOOST_TEST(inbox.maxOpenBytes() == 10000u);
  BOOST_TEST((inbox.onData(frame(0, a, 1000, 4096 - 1000)) == Inbox::Verdict::accepted));
}

BOOST_AUTO_TEST_CASE(session_credit_grows_as_messages_are_delivered) {
  MemoryBudget budget{1 << 30, 0};
  Inbox inbox(limits(), budget);
  BOOST_TEST(inbox.maxMsgId() == 8u);
  BOOST_TEST(!inbox.sessionCreditDue());
  for (uint64_t id = 0; id < 2; ++id) {
    Bytes m = content(10, static_cast<uint8_t>(id));
    inbox.onData(frame(id, m, 0, 10));
    drain(inbox);
  }
  BOOST_TEST(inbox.maxMsgId() == 10u);
  BOOST_TEST(inbox.sessionCreditDue());
  inbox.sessionCreditSent();
  BOOST_TEST(!inbox.sessionCreditDue());
}

BOOST_AUTO_TEST_CASE(a_full_memory_budget_refuses_new_messages_without_calling_it_a_violation) {
  MemoryBudget budget{5000, 0};
  Inbox inbox(limits(), budget);
  Bytes a = content(4000, 1);
  Bytes b = content(4000, 2);
  BOOST_TEST((inbox.onData(frame(0, a, 0, 100)) == Inbox::Verdict::accepted));
  BOOST_TEST((inbox.onData(frame(1, b, 0, 100)) == Inbox::Verdict::overBudget));
  BOOST_TEST(budget.used == 4000u);
  {
    Inbox other(limits(), budget);
    BOOST_TEST((other.onData(frame(0, b, 0, 100)) == Inbox::Verdict::overBudget));
  }
  BOOST_TEST(budget.used == 4000u);
}

BOOST_AUTO_TEST_CASE(an_inbox_gives_back_its_memory_when_it_goes) {
  MemoryBudget budget{1 << 30, 0};
  {
    Inbox inbox(limits(), budget);
    Bytes m = content(3000, 1);
    inbox.onData(frame(0, m, 0, 100));
    BOOST_TEST(budget.used == 3000u);
  }
  BOOST_TEST(budget.used == 0u);
}

}  // namespace
}  // namespace ferry::transports::udp
