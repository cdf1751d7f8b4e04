// The ORPC layer's parts without sockets: frames (the bytes on the wire), the outbound call
// table, and the reply cache driven by a clock of the test's own.
#define BOOST_TEST_MODULE orpc
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <ferry/error.h>

#include "message.h"
#include "orpc/call-table.h"
#include "orpc/frame.h"
#include "orpc/reply-cache.h"
#include "resolver.capnp.h"

// The test counts the heap allocations of a piece of code on its thread: every operator new
// (array and sized forms go through this one) adds one while a counter is armed.
namespace {
thread_local size_t* armedAllocations = nullptr;
}  // namespace

void* operator new(size_t size) {
  if (armedAllocations != nullptr) ++*armedAllocations;
  if (void* block = std::malloc(size == 0 ? 1 : size)) return block;
  throw std::bad_alloc();
}
// GCC takes the free() of a replaced operator delete for a mismatch with operator new.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* block) noexcept { std::free(block); }
void operator delete(void* block, size_t) noexcept { std::free(block); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

using namespace ferry;
using namespace ferry::detail;
using namespace ferry::detail::orpc;

namespace {

// A call as the table sees it: records what reached it.
class RecordingCall final : public OutboundCall {
public:
  void deliver(OutgoingResponse) noexcept override { ++responses; }
  void deliverReceived(std::unique_ptr<IncomingResponse>) noexcept override { ++responses; }
  void fail(Errc code, std::string message) noexcept override {
    failures.push_back(code);
    lastMessage = std::move(message);
  }
  bool done() const noexcept override { return responses > 0 || !failures.empty(); }
  void setCancelHook(std::function<void()>) override {}
  void wakeWith(const LoopWake&) noexcept override {}

  int responses = 0;
  std::vector<Errc> failures;
  std::string lastMessage;
};

std::vector<uint8_t> resolveFrame(uint64_t callId, uint64_t oxid) {
  capnp::MallocMessageBuilder message(16);
  message.initRoot<wire::ResolveRequest>().setOxid(oxid);
  return encodeFrame(FrameKind::resolve, callId, Oxid(0x1122334455667788ull), message);
}

Errc decodeError(const std::vector<uint8_t>& bytes) {
  try {
    decodeFrame(bytes.data(), bytes.size());
  } catch (const Error& e) {
    return e.code();
  }
  return Errc::ok;
}

CallTable::Entry entryOn(std::shared_ptr<RecordingCall> call, LinkId link, bool resendable = true) {
  CallTable::Entry e;
  e.call = std::move(call);
  e.link = link;
  if (resendable) e.frame = std::make_shared<std::vector<uint8_t>>(encodeBareFrame(FrameKind::request, 1));
  e.binding = {"tcp", "127.0.0.1", "5000"};
  return e;
}

// A call's cancel flag, for the reply cache to keep while the call runs.
std::shared_ptr<std::atomic<bool>> newFlag() { return std::make_shared<std::atomic<bool>>(false); }

ReplyCache::Frame reply(size_t bytes) {
  return std::make_shared<const std::vector<uint8_t>>(bytes, uint8_t{0x5a});
}

using Kind = ReplyCache::Admission::Kind;
const LinkId linkA{0, 1};
const LinkId linkB{0, 2};
const ReplyCache::Clock::time_point t0{};

// The heap allocations `fn` makes on this thread.
template <typename Fn>
size_t allocationsOf(Fn&& fn) {
  size_t count = 0;
  armedAllocations = &count;
  try {
    fn();
  } catch (...) {
    armedAllocations = nullptr;
    throw;
  }
  armedAllocations = nullptr;
  return count;
}

// Where a built message's first segment begins.
const capnp::word* firstSegmentOf(OrpcMessage& message) {
  return message.builder().getSegmentsForOutput()[0].begin();
}

// A request with `bytes` bytes of params, each 0x5a: it writes well into its first segment.
std::unique_ptr<OutgoingRequest> filledRequest(size_t bytes) {
  auto request = std::make_unique<OutgoingRequest>();
  request->root.setInterfaceId(0x0123456789abcdefull);
  auto data = request->root.getParams().initAs<capnp::Data>(static_cast<unsigned>(bytes));
  std::memset(data.begin(), 0x5a, data.size());
  return request;
}

// The count of non-zero words among the first segment's kOrpcFirstSegmentWords.
size_t nonZeroWords(const capnp::word* segment) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(segment);
  size_t count = 0;
  for (size_t w = 0; w < kOrpcFirstSegmentWords; ++w) {
    count += std::any_of(bytes + 8 * w, bytes + 8 * w + 8, [](uint8_t b) { return b != 0; });
  }
  return count;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(messages)

BOOST_AUTO_TEST_CASE(a_message_built_after_another_on_its_thread_reuses_its_first_segment_zeroed) {
  auto first = filledRequest(1024);
  const capnp::word* segment = firstSegmentOf(first->message);
  BOOST_TEST(nonZeroWords(segment) > 128u);  // the 1 KiB of params lies in it
  first.reset();
  // A block of the segment's size taken meanwhile does not get it: the thread keeps it.
  std::vector<capnp::word> meanwhile(kOrpcFirstSegmentWords);
  BOOST_TEST(meanwhile.data() != segment);
  OutgoingRequest second;
  BOOST_TEST(firstSegmentOf(second.message) == segment);
  // Only the new root's pointer is set: everything the first message wrote was zeroed.
  BOOST_TEST(nonZeroWords(segment) == 1u);
  BOOST_TEST(second.root.getInterfaceId() == 0u);
  BOOST_TEST(!second.root.hasParams());
}

BOOST_AUTO_TEST_CASE(a_message_outgrowing_its_first_segment_still_gives_it_back_zeroed) {
  auto big = filledRequest(64 * 1024);
  const capnp::word* segment = firstSegmentOf(big->message);
  BOOST_TEST(big->message.builder().getSegmentsForOutput().size() > 1u);
  big.reset();
  OutgoingRequest next;
  BOOST_TEST(firstSegmentOf(next.message) == segment);
  BOOST_TEST(nonZeroWords(segment) == 1u);
}

BOOST_AUTO_TEST_CASE(a_message_built_on_one_thread_and_dropped_on_another_serves_the_dropping_one) {
  std::unique_ptr<OutgoingRequest> built;
  std::thread builder([&built] { built = filledRequest(1024); });
  builder.join();  // the building thread is gone, its spares with it
  const capnp::word* segment = firstSegmentOf(built->message);
  built.reset();
  OutgoingRequest here;
  BOOST_TEST(firstSegmentOf(here.message) == segment);
  BOOST_TEST(nonZeroWords(segment) == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(frames)

BOOST_AUTO_TEST_CASE(a_frame_header_is_magic_kind_flags_call_id_and_oxid_little_endian) {
  std::vector<uint8_t> frame = resolveFrame(0x0102030405060708ull, 42);
  BOOST_REQUIRE_GT(frame.size(), kFrameHeader);
  const uint8_t expected[kFrameHeader] = {'F', 'R', 'Y', '1', 3, 0, 0, 0,
                                          8, 7, 6, 5, 4, 3, 2, 1,
                                          0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
  BOOST_TEST(std::memcmp(frame.data(), expected, kFrameHeader) == 0);
  BOOST_TEST((frame.size() - kFrameHeader) % 8 == 0u);

  Frame decoded = decodeFrame(frame.data(), frame.size());
  BOOST_TEST(int(decoded.header.kind) == int(FrameKind::resolve));
  BOOST_TEST(decoded.header.callId == 0x0102030405060708ull);
  BOOST_TEST(decoded.header.oxid.value == 0x1122334455667788ull);
  BOOST_REQUIRE(decoded.message.has_value());
  BOOST_TEST(decoded.message->root<wire::ResolveRequest>().getOxid() == 42u);
}

BOOST_AUTO_TEST_CASE(a_frames_payload_is_the_message_in_capnp_stream_format_whatever_its_segments) {
  // One segment and several (an odd and an even count differ in the segment table's padding).
  std::set<size_t> counts;
  for (unsigned firstSegmentWords : {4096u, 40u, 30u, 20u, 8u, 2u}) {
    capnp::MallocMessageBuilder message(firstSegmentWords, capnp::AllocationStrategy::FIXED_SIZE);
    auto bindings = message.initRoot<wire::ResolveReply>().initResolution().initBindings(3);
    for (unsigned i = 0; i < 3; ++i) bindings[i].setAddress(std::string(100 + i, 'x'));
    kj::Array<capnp::word> expected = capnp::messageToFlatArray(message);
    std::vector<uint8_t> frame = encodeFrame(FrameKind::resolveReply, 5, Oxid(7), message);
    counts.insert(message.getSegmentsForOutput().size());
    BOOST_TEST_CONTEXT("segments: " << message.getSegmentsForOutput().size()) {
      BOOST_REQUIRE_EQUAL(frame.size(), kFrameHeader + expected.asBytes().size());
      BOOST_TEST(std::memcmp(frame.data() + kFrameHeader, expected.asBytes().begin(),
                             expected.asBytes().size()) == 0);
      Frame decoded = decodeFrame(frame.data(), frame.size());
      auto read = decoded.message->root<wire::ResolveReply>().getResolution().getBindings();
      BOOST_TEST(read[2].getAddress().size() == 102u);
    }
  }
  BOOST_TEST(counts.count(1) == 1u);
  BOOST_TEST(std::any_of(counts.begin(), counts.end(), [](size_t n) { return n > 1 && n % 2 == 0; }));
  BOOST_TEST(std::any_of(counts.begin(), counts.end(), [](size_t n) { return n > 1 && n % 2 == 1; }));
}

BOOST_AUTO_TEST_CASE(a_resent_request_carries_flag_bit_0_and_only_a_request_may) {
  capnp::MallocMessageBuilder message(16);
  message.initRoot<wire::ResolveRequest>().setOxid(1);
  std::vector<uint8_t> request = encodeFrame(FrameKind::request, 9, Oxid(1), message);
  markResent(request);
  BOOST_TEST(request[5] == kFrameFlagResent);
  BOOST_TEST(decodeFrame(request.data(), request.size()).header.flags == kFrameFlagResent);

  std::vector<uint8_t> resolve = resolveFrame(9, 1);
  resolve[5] = kFrameFlagResent;
  BOOST_TEST(int(decodeError(resolve)) == int(Errc::protocolError));
}

BOOST_AUTO_TEST_CASE(a_cancel_frame_is_a_bare_header_and_may_not_carry_a_payload) {
  std::vector<uint8_t> cancel = encodeBareFrame(FrameKind::cancel, 77);
  BOOST_TEST(cancel.size() == kFrameHeader);
  Frame decoded = decodeFrame(cancel.data(), cancel.size());
  BOOST_TEST(decoded.header.callId == 77u);
  BOOST_TEST(!decoded.message.has_value());
  cancel.resize(kFrameHeader + 8);
  BOOST_TEST(int(decodeError(cancel)) == int(Errc::protocolError));
}

// (A message of several segments adds the reader's table of them.)
BOOST_AUTO_TEST_CASE(a_received_one_segment_messages_words_and_their_reader_are_one_allocation) {
  for (size_t bytes : {size_t{0}, size_t{1024}}) {
    auto request = filledRequest(bytes);
    std::vector<uint8_t> frame =
        encodeFrame(FrameKind::request, 9, Oxid(5), request->message.builder());
    std::optional<Frame> decoded;
    size_t allocations =
        allocationsOf([&] { decoded.emplace(decodeFrame(frame.data(), frame.size())); });
    BOOST_TEST(allocations == 1u, bytes << " bytes of params");
    // The words are a copy: the frame's bytes may go, the message still reads.
    std::fill(frame.begin(), frame.end(), uint8_t{0});
    auto root = decoded->message->root<wire::Request>();
    BOOST_TEST(root.getInterfaceId() == 0x0123456789abcdefull);
    auto params = root.getParams().getAs<capnp::Data>();
    BOOST_TEST(params.size() == bytes);
    BOOST_TEST(std::all_of(params.begin(), params.end(), [](uint8_t b) { return b == 0x5a; }));
  }
}

BOOST_AUTO_TEST_CASE(malformed_frames_are_protocol_errors_that_say_what_is_wrong) {
  std::vector<uint8_t> good = resolveFrame(1, 1);
  std::vector<uint8_t> shortFrame(good.begin(), good.begin() + 10);
  std::vector<uint8_t> badMagic = good;
  badMagic[0] = 'X';
  std::vector<uint8_t> reserved = good;
  reserved[6] = 1;
  std::vector<uint8_t> unknownKind = good;
  unknownKind[4] = 99;
  std::vector<uint8_t> ragged = good;
  ragged.push_back(0);
  std::vector<uint8_t> empty(good.begin(), good.begin() + kFrameHeader);
  std::vector<uint8_t> garbage = good;
  std::memset(garbage.data() + kFrameHeader, 0xff, garbage.size() - kFrameHeader);
  for (const auto* bytes : {&shortFrame, &badMagic, &reserved, &unknownKind, &ragged, &empty, &garbage}) {
    BOOST_TEST(int(decodeError(*bytes)) == int(Errc::protocolError));
  }
  try {
    decodeFrame(shortFrame.data(), shortFrame.size());
  } catch (const Error& e) {
    BOOST_TEST(e.message() == "a 10-byte message is shorter than a frame header");
  }
  try {
    decodeFrame(unknownKind.data(), unknownKind.size());
  } catch (const Error& e) {
    BOOST_TEST(e.message() == "unknown frame kind 99");
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(call_table)

BOOST_AUTO_TEST_CASE(a_response_counts_only_on_the_link_its_request_went_out_on) {
  CallTable table;
  auto call = std::make_shared<RecordingCall>();
  uint64_t id = CallTable::nextCallId();
  table.add(id, entryOn(call, linkA));
  BOOST_TEST(table.answer(id, linkB) == nullptr);
  BOOST_TEST(table.size() == 1u);
  BOOST_TEST(table.answer(id, linkA) == call);
  BOOST_TEST(table.size() == 0u);
  BOOST_TEST(table.answer(id, linkA) == nullptr, "a second response for one call is dropped");
}

BOOST_AUTO_TEST_CASE(answered_calls_are_acknowledged_at_most_64_per_request_on_their_link) {
  CallTable table;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 100; ++i) {
    uint64_t id = CallTable::nextCallId();
    ids.push_back(id);
    table.add(id, entryOn(std::make_shared<RecordingCall>(), linkA));
    BOOST_REQUIRE(table.answer(id, linkA) != nullptr);
  }
  BOOST_TEST(table.acknowledgementsFor(linkB).empty());
  CallTable::Acknowledgements first = table.acknowledgementsFor(linkA);
  CallTable::Acknowledgements second = table.acknowledgementsFor(linkA);
  BOOST_TEST(first.size() == CallTable::kMaxAcksPerRequest);
  BOOST_TEST(second.size() == 100u - CallTable::kMaxAcksPerRequest);
  BOOST_TEST(table.acknowledgementsFor(linkA).empty());
  std::vector<uint64_t> all(first.begin(), first.end());
  all.insert(all.end(), second.begin(), second.end());
  std::sort(all.begin(), all.end());
  BOOST_TEST(all == ids, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_call_is_found_on_its_link_until_answered_and_the_next_call_keeps_nothing_of_it) {
  CallTable table;
  auto first = std::make_shared<RecordingCall>();
  uint64_t firstId = CallTable::nextCallId();
  table.add(firstId, entryOn(first, linkA));
  BOOST_TEST((table.linkOf(firstId) == linkA));
  BOOST_REQUIRE(table.answer(firstId, linkA) == first);
  BOOST_TEST(!table.linkOf(firstId).has_value(), "an answered call has nothing left to cancel");
  BOOST_TEST(first.use_count() == 1, "the table holds nothing of an answered call");
  // The next call takes the answered one's place in the table, under its own id and link.
  auto second = std::make_shared<RecordingCall>();
  uint64_t secondId = CallTable::nextCallId();
  table.add(secondId, entryOn(second, linkB, false));
  BOOST_TEST((table.linkOf(secondId) == linkB));
  BOOST_TEST(table.answer(firstId, linkA) == nullptr);
  BOOST_TEST(table.dropLink(linkB, Errc::unavailable, "gone", true).empty(),
             "the second call has no frame to be sent again, not the first one's");
  BOOST_TEST(second->failures.size() == 1u);
  BOOST_TEST(first->failures.empty());
}

BOOST_AUTO_TEST_CASE(a_lost_link_gives_back_its_resendable_calls_and_fails_the_others) {
  CallTable table;
  auto resendable = std::make_shared<RecordingCall>();
  auto oneShot = std::make_shared<RecordingCall>();
  auto elsewhere = std::make_shared<RecordingCall>();
  auto exhausted = std::make_shared<RecordingCall>();
  table.add(1, entryOn(resendable, linkA));
  table.add(2, entryOn(oneShot, linkA, false));
  table.add(3, entryOn(elsewhere, linkB));
  CallTable::Entry spent = entryOn(exhausted, linkA);
  spent.resends = CallTable::kMaxResends;
  table.add(4, std::move(spent));

  auto again = table.dropLink(linkA, Errc::outcomeUnknown, "the connection closed", true);
  BOOST_REQUIRE(again.size() == 1u);
  BOOST_TEST(again[0].first == 1u);
  BOOST_TEST(again[0].second.call == resendable);
  BOOST_TEST(resendable->failures.empty());
  BOOST_TEST(oneShot->failures.size() == 1u);
  BOOST_TEST(int(oneShot->failures[0]) == int(Errc::outcomeUnknown));
  BOOST_TEST(oneShot->lastMessage == "the connection closed");
  BOOST_TEST(int(exhausted->failures.at(0)) == int(Errc::outcomeUnknown));
  BOOST_TEST(elsewhere->failures.empty());
  BOOST_TEST(table.size() == 1u, "the call on the other link stays");
}

BOOST_AUTO_TEST_CASE(a_resent_call_that_cannot_reach_its_exporter_may_have_run) {
  CallTable table;
  auto fresh = std::make_shared<RecordingCall>();
  auto resent = std::make_shared<RecordingCall>();
  table.add(1, entryOn(fresh, linkA));
  CallTable::Entry copy = entryOn(resent, linkA);
  copy.resends = 1;
  table.add(2, std::move(copy));
  BOOST_TEST(table.dropLink(linkA, Errc::unavailable, "could not connect", false).empty());
  BOOST_TEST(int(fresh->failures.at(0)) == int(Errc::unavailable));
  BOOST_TEST(int(resent->failures.at(0)) == int(Errc::outcomeUnknown));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(reply_cache)

BOOST_AUTO_TEST_CASE(a_call_runs_once_and_a_later_copy_gets_the_kept_response_on_the_newest_link) {
  ReplyCache cache({});
  auto first = cache.admit(CallerKey{7, 1}, 100, linkA, {}, t0, newFlag());
  BOOST_TEST(int(first.kind) == int(Kind::run));
  BOOST_TEST(cache.entries() == 1u);

  // A copy resent over another link while the call runs: dropped, and the response goes there.
  BOOST_TEST(int(cache.admit(CallerKey{7, 1}, 100, linkB, {}, t0, newFlag()).kind) ==
             int(Kind::running));
  BOOST_TEST((cache.complete(CallerKey{7, 1}, 100, linkA, reply(40), t0) == linkB));
  BOOST_TEST(cache.bytes() == 40u);

  auto again = cache.admit(CallerKey{7, 1}, 100, linkA, {}, t0, newFlag());
  BOOST_TEST(int(again.kind) == int(Kind::replay));
  BOOST_REQUIRE(again.reply != nullptr);
  BOOST_TEST(again.reply->size() == 40u);
}

BOOST_AUTO_TEST_CASE(a_peer_naming_anothers_process_id_reaches_none_of_its_calls) {
  ReplyCache cache({});
  const CallerKey victim{7, 0x1111};
  const CallerKey impostor{7, 0x2222};
  BOOST_TEST(int(cache.admit(victim, 100, linkA, {}, t0, newFlag()).kind) == int(Kind::run));
  cache.complete(victim, 100, linkA, reply(40), t0);
  // The impostor's request with the victim's call id runs as its own call: it gets nothing of
  // the victim's response.
  auto stolen = cache.admit(impostor, 100, linkB, {}, t0, newFlag());
  BOOST_TEST(int(stolen.kind) == int(Kind::run));
  BOOST_TEST(stolen.reply == nullptr);
  // Its acknowledgements and a huge call id change nothing for the victim.
  const uint64_t acked[] = {100};
  cache.admit(impostor, uint64_t{1} << 40, linkB, acked, t0, newFlag());
  auto copy = cache.admit(victim, 100, linkA, {}, t0, newFlag());
  BOOST_TEST(int(copy.kind) == int(Kind::replay), "the victim's kept response is still there");
  BOOST_TEST(int(cache.admit(victim, 101, linkA, {}, t0, newFlag()).kind) == int(Kind::run),
             "the victim's next call runs");
  // Nor can the impostor cancel the victim's running call.
  auto runningCanceled = newFlag();
  auto running = cache.admit(victim, 102, linkA, {}, t0, runningCanceled);
  cache.cancel(impostor, 102, linkA);
  BOOST_TEST(!runningCanceled->load());
}

BOOST_AUTO_TEST_CASE(an_acknowledged_response_is_forgotten_at_once) {
  ReplyCache cache({});
  cache.admit(CallerKey{7, 1}, 1, linkA, {}, t0, newFlag());
  cache.complete(CallerKey{7, 1}, 1, linkA, reply(8), t0);
  const uint64_t acked[] = {1};
  BOOST_TEST(int(cache.admit(CallerKey{7, 1}, 2, linkA, acked, t0, newFlag()).kind) ==
             int(Kind::run));
  BOOST_TEST(cache.entries() == 1u, "call 1 went, call 2 is held");
  BOOST_TEST(cache.bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(a_call_admitted_while_an_acknowledged_one_is_forgotten_is_held_as_itself) {
  ReplyCache::Limits limits;
  limits.perLink = 1;
  ReplyCache cache(limits);
  const CallerKey caller{7, 1};
  auto firstCanceled = newFlag();
  auto first = cache.admit(caller, 1, linkA, {}, t0, firstCanceled);
  cache.complete(caller, 1, linkA, reply(8), t0);
  // The acknowledgement frees the link's one share before call 2 asks for it.
  const uint64_t ackFirst[] = {1};
  auto second = cache.admit(caller, 2, linkA, ackFirst, t0, newFlag());
  BOOST_REQUIRE(int(second.kind) == int(Kind::run));
  BOOST_TEST(firstCanceled.use_count() == 1, "nothing of the forgotten call is kept");
  BOOST_TEST(int(cache.admit(caller, 2, linkB, {}, t0, newFlag()).kind) == int(Kind::running),
             "call 2 runs, whatever call 1 was");
  auto third = cache.admit(caller, 3, linkA, {}, t0, newFlag());
  BOOST_TEST(int(third.code) == int(Errc::retryLater), "call 2 holds the link's share");
  BOOST_TEST((cache.complete(caller, 2, linkA, reply(16), t0) == linkB));
  auto copy = cache.admit(caller, 2, linkA, {}, t0, newFlag());
  BOOST_REQUIRE(int(copy.kind) == int(Kind::replay));
  BOOST_TEST(copy.reply->size() == 16u);
  // A share that fell to zero (kept until expire()) is taken again by the next call.
  const uint64_t ackSecond[] = {2};
  BOOST_TEST(int(cache.admit(caller, 3, linkA, ackSecond, t0, newFlag()).kind) == int(Kind::run));
  cache.expire(t0);
  BOOST_TEST(int(cache.admit(caller, 4, linkA, {}, t0, newFlag()).code) == int(Errc::retryLater),
             "call 3 still holds the share after the sweep");
}

BOOST_AUTO_TEST_CASE(a_response_kept_past_the_retention_is_forgotten_and_its_copy_may_have_run) {
  ReplyCache::Limits limits;
  limits.retention = std::chrono::seconds(10);
  ReplyCache cache(limits);
  cache.admit(CallerKey{7, 1}, 5, linkA, {}, t0, newFlag());
  cache.complete(CallerKey{7, 1}, 5, linkA, reply(8), t0);
  cache.expire(t0 + std::chrono::seconds(10));
  BOOST_TEST(cache.entries() == 1u, "kept for exactly the retention");
  cache.expire(t0 + std::chrono::seconds(11));
  BOOST_TEST(cache.entries() == 0u);
  for (uint64_t id : {uint64_t{5}, uint64_t{3}}) {
    auto late = cache.admit(CallerKey{7, 1}, id, linkA, {}, t0 + std::chrono::seconds(12),
                            newFlag());
    BOOST_TEST(int(late.kind) == int(Kind::refuse));
    BOOST_TEST(int(late.code) == int(Errc::outcomeUnknown));
  }
  auto next = cache.admit(CallerKey{7, 1}, 6, linkA, {}, t0 + std::chrono::seconds(12), newFlag());
  BOOST_TEST(int(next.kind) == int(Kind::run));
}

BOOST_AUTO_TEST_CASE(a_caller_past_its_share_or_a_full_cache_is_told_to_retry_later) {
  ReplyCache::Limits limits;
  limits.perCaller = 2;
  limits.maxEntries = 3;
  ReplyCache cache(limits);
  BOOST_TEST(int(cache.admit(CallerKey{1, 1}, 1, linkA, {}, t0, newFlag()).kind) == int(Kind::run));
  BOOST_TEST(int(cache.admit(CallerKey{1, 1}, 2, linkA, {}, t0, newFlag()).kind) == int(Kind::run));
  auto third = cache.admit(CallerKey{1, 1}, 3, linkA, {}, t0, newFlag());
  BOOST_TEST(int(third.kind) == int(Kind::refuse));
  BOOST_TEST(int(third.code) == int(Errc::retryLater));
  BOOST_TEST(int(cache.admit(CallerKey{2, 1}, 1, linkB, {}, t0, newFlag()).kind) == int(Kind::run));
  auto full = cache.admit(CallerKey{3, 1}, 1, linkB, {}, t0, newFlag());
  BOOST_TEST(int(full.code) == int(Errc::retryLater));
  BOOST_TEST(full.message == "the exporter's reply cache is full");
  BOOST_TEST(cache.entries() == 3u);
}

BOOST_AUTO_TEST_CASE(a_link_minting_fresh_caller_tokens_takes_its_share_and_other_links_still_run) {
  ReplyCache::Limits limits;
  limits.maxEntries = 1000;
  limits.perLink = 100;
  ReplyCache cache(limits);
  // The flood: every request under a token of its own, never acknowledged.
  int ran = 0;
  int refused = 0;
  for (uint64_t token = 1; token <= 5000; ++token) {
    auto admission = cache.admit(CallerKey{66, token}, 1, linkA, {}, t0, newFlag());
    if (admission.kind == Kind::run) {
      ++ran;
    } else {
      BOOST_TEST(int(admission.code) == int(Errc::retryLater));
      ++refused;
    }
  }
  BOOST_TEST(ran == 100);
  BOOST_TEST(refused == 4900);
  BOOST_TEST(cache.entries() == 100u);
  // The victim, on its own link: every call runs, and is answered.
  for (uint64_t call = 1; call <= 500; ++call) {
    std::vector<uint64_t> acknowledged;
    if (call > 1) acknowledged.push_back(call - 1);
    auto admission = cache.admit(CallerKey{7, 42}, call, linkB, acknowledged, t0, newFlag());
    BOOST_REQUIRE(int(admission.kind) == int(Kind::run));
    cache.complete(CallerKey{7, 42}, call, linkB, reply(10), t0);
  }
  BOOST_TEST(cache.entries() == 101u);
  // A clean close of the flooding link gives its share back.
  for (uint64_t token = 1; token <= 100; ++token) cache.dropLink(CallerKey{66, token}, linkA);
  BOOST_TEST(cache.entries() == 1u);
  BOOST_TEST(int(cache.admit(CallerKey{66, 9999}, 1, linkA, {}, t0, newFlag()).kind) ==
             int(Kind::run));
}

BOOST_AUTO_TEST_CASE(a_full_cache_forgets_its_largest_holders_oldest_answer_and_runs_the_newcomer) {
  ReplyCache::Limits limits;
  limits.maxEntries = 10;
  ReplyCache cache(limits);
  // One caller answered ten calls and acknowledges none: the cache is full.
  for (uint64_t call = 1; call <= 10; ++call) {
    BOOST_REQUIRE(int(cache.admit(CallerKey{66, 1}, call, linkA, {}, t0, newFlag()).kind) ==
                  int(Kind::run));
    cache.complete(CallerKey{66, 1}, call, linkA, reply(10), t0);
  }
  auto victim = cache.admit(CallerKey{7, 42}, 1, linkB, {}, t0, newFlag());
  BOOST_TEST(int(victim.kind) == int(Kind::run));
  BOOST_TEST(cache.entries() == 10u);
  // The hoarder's oldest answer went: a copy of it may have run.
  auto copy = cache.admit(CallerKey{66, 1}, 1, linkA, {}, t0, newFlag());
  BOOST_TEST(int(copy.code) == int(Errc::outcomeUnknown));
  BOOST_TEST(int(cache.admit(CallerKey{66, 1}, 2, linkA, {}, t0, newFlag()).kind) ==
             int(Kind::replay));
}

BOOST_AUTO_TEST_CASE(a_response_too_large_to_keep_makes_a_later_copy_outcome_unknown) {
  ReplyCache::Limits limits;
  limits.maxBytes = 100;
  ReplyCache cache(limits);
  cache.admit(CallerKey{1, 1}, 1, linkA, {}, t0, newFlag());
  cache.complete(CallerKey{1, 1}, 1, linkA, reply(101), t0);
  BOOST_TEST(cache.bytes() == 0u);
  auto copy = cache.admit(CallerKey{1, 1}, 1, linkA, {}, t0, newFlag());
  BOOST_TEST(int(copy.kind) == int(Kind::refuse));
  BOOST_TEST(int(copy.code) == int(Errc::outcomeUnknown));
}

BOOST_AUTO_TEST_CASE(only_the_link_the_response_goes_to_may_cancel) {
  ReplyCache cache({});
  auto canceled = newFlag();
  BOOST_TEST(int(cache.admit(CallerKey{1, 1}, 1, linkA, {}, t0, canceled).kind) == int(Kind::run));
  cache.cancel(CallerKey{1, 1}, 1, linkB);
  BOOST_TEST(!canceled->load());
  cache.cancel(CallerKey{1, 1}, 1, linkA);
  BOOST_TEST(canceled->load());
}

BOOST_AUTO_TEST_CASE(a_clean_close_cancels_the_callers_running_calls_and_keeps_nothing) {
  ReplyCache cache({});
  auto canceledOnA = newFlag();
  auto canceledOnB = newFlag();
  cache.admit(CallerKey{1, 1}, 1, linkA, {}, t0, canceledOnA);
  cache.admit(CallerKey{1, 1}, 2, linkB, {}, t0, canceledOnB);
  cache.admit(CallerKey{1, 1}, 3, linkA, {}, t0, newFlag());
  cache.complete(CallerKey{1, 1}, 3, linkA, reply(8), t0);
  cache.dropLink(CallerKey{1, 1}, linkA);
  BOOST_TEST(canceledOnA->load());
  BOOST_TEST(!canceledOnB->load());
  BOOST_TEST(cache.entries() == 1u);
  BOOST_TEST(cache.bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(a_done_call_lets_go_of_its_cancel_flag_and_a_late_cancel_sets_nothing) {
  ReplyCache cache({});
  auto canceled = newFlag();
  cache.admit(CallerKey{1, 1}, 1, linkA, {}, t0, canceled);
  BOOST_TEST(canceled.use_count() == 2);
  cache.complete(CallerKey{1, 1}, 1, linkA, reply(8), t0);
  BOOST_TEST(canceled.use_count() == 1);
  cache.cancel(CallerKey{1, 1}, 1, linkA);
  cache.dropLink(CallerKey{1, 1}, linkA);
  BOOST_TEST(!canceled->load());
  BOOST_TEST(cache.entries() == 0u);
}

// As the endpoint's reply sink holds both: the flag and the response in one allocation.
BOOST_AUTO_TEST_CASE(a_response_too_large_to_keep_goes_although_its_flag_shares_its_allocation) {
  struct FlagAndFrame {
    std::atomic<bool> canceled{false};
    std::vector<uint8_t> frame = std::vector<uint8_t>(101, uint8_t{0x5a});
  };
  ReplyCache::Limits limits;
  limits.maxBytes = 100;
  ReplyCache cache(limits);
  auto block = std::make_shared<FlagAndFrame>();
  std::weak_ptr<FlagAndFrame> watch = block;
  cache.admit(CallerKey{1, 1}, 1, linkA, {}, t0,
              std::shared_ptr<std::atomic<bool>>(block, &block->canceled));
  cache.complete(CallerKey{1, 1}, 1, linkA,
                 std::shared_ptr<const std::vector<uint8_t>>(block, &block->frame), t0);
  BOOST_TEST(cache.entries() == 1u);
  BOOST_TEST(cache.bytes() == 0u);
  block.reset();
  BOOST_TEST(watch.expired(), "the cache holds nothing of a response it does not keep");
}

BOOST_AUTO_TEST_SUITE_END()
