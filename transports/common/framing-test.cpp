#define BOOST_TEST_MODULE transport framing
#include <boost/test/unit_test.hpp>

#include <uv.h>

#include <cstring>
#include <string>
#include <vector>

#include "framing.h"

namespace ferry::transports {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes frame(const std::string& payload) {
  Bytes out(kFrameHeaderSize + payload.size());
  encodeFrameHeader(out.data(), payload.size());
  std::copy(payload.begin(), payload.end(), out.begin() + kFrameHeaderSize);
  return out;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

// Collects what a FrameReader delivers; stops after `stopAfter` messages when set.
struct Sink {
  std::vector<std::string> messages;
  size_t stopAfter = SIZE_MAX;

  static bool deliver(void* context, const uint8_t* data, size_t size) {
    auto* self = static_cast<Sink*>(context);
    self->messages.emplace_back(reinterpret_cast<const char*>(data), size);
    return self->messages.size() < self->stopAfter;
  }

  int feed(FrameReader& reader, const Bytes& bytes, size_t from, size_t to) {
    return reader.feed(bytes.data() + from, to - from, &deliver, this);
  }
};

BOOST_AUTO_TEST_CASE(the_header_is_the_payload_length_in_little_endian) {
  uint8_t header[kFrameHeaderSize];
  encodeFrameHeader(header, 0x01020304);
  BOOST_TEST(header[0] == 0x04);
  BOOST_TEST(header[1] == 0x03);
  BOOST_TEST(header[2] == 0x02);
  BOOST_TEST(header[3] == 0x01);
}

BOOST_AUTO_TEST_CASE(messages_split_at_any_two_points_arrive_whole_and_in_order) {
  const Bytes stream = concat({frame("first"), frame(""), frame("the third one"), frame("")});
  for (size_t a = 0; a <= stream.size(); ++a) {
    for (size_t b = a; b <= stream.size(); ++b) {
      FrameReader reader(64);
      Sink sink;
      BOOST_REQUIRE(sink.feed(reader, stream, 0, a) == 0);
      BOOST_REQUIRE(sink.feed(reader, stream, a, b) == 0);
      BOOST_REQUIRE(sink.feed(reader, stream, b, stream.size()) == 0);
      BOOST_TEST_CONTEXT("split at " << a << " and " << b) {
        BOOST_TEST(sink.messages == (std::vector<std::string>{"first", "", "the third one", ""}),
                   boost::test_tools::per_element());
        BOOST_TEST(!reader.midFrame());
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_partial_header_or_payload_leaves_the_reader_mid_frame) {
  const Bytes bytes = frame("abc");
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    FrameReader reader(64);
    Sink sink;
    BOOST_REQUIRE(sink.feed(reader, bytes, 0, cut) == 0);
    BOOST_TEST(reader.midFrame());
    BOOST_TEST(sink.messages.empty());
  }
}

BOOST_AUTO_TEST_CASE(a_message_of_exactly_the_maximum_is_accepted) {
  FrameReader reader(8);
  Sink sink;
  BOOST_TEST(sink.feed(reader, frame("12345678"), 0, 12) == 0);
  BOOST_TEST(sink.messages.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_length_above_the_maximum_breaks_the_reader_for_good) {
  FrameReader reader(8);
  Sink sink;
  const Bytes huge = {0xff, 0xff, 0xff, 0xff, 'x'};
  BOOST_TEST(sink.feed(reader, huge, 0, huge.size()) == UV_EMSGSIZE);
  BOOST_TEST(reader.midFrame());
  const Bytes good = frame("ok");
  BOOST_TEST(sink.feed(reader, good, 0, good.size()) == UV_EMSGSIZE);
  BOOST_TEST(sink.messages.empty());
}

BOOST_AUTO_TEST_CASE(a_deliver_that_returns_false_stops_the_feed) {
  FrameReader reader(64);
  Sink sink;
  sink.stopAfter = 1;
  const Bytes stream = concat({frame("one"), frame("two")});
  BOOST_TEST(sink.feed(reader, stream, 0, stream.size()) == 0);
  BOOST_TEST(sink.messages.size() == 1u);
}

// A 100000-byte message and a budget for it.
struct LargeMessage {
  ReceiveBudget budget{1 << 20};
  std::string payload = std::string(100000, 'x');
  Bytes stream = frame(payload);
};

BOOST_FIXTURE_TEST_CASE(a_split_message_holds_what_arrived_of_it_and_gives_it_back_once_whole,
                        LargeMessage) {
  {
    FrameReader reader(1 << 20, &budget);
    Sink sink;
    // The prefix declares 100000 bytes: nothing is reserved for them yet.
    BOOST_REQUIRE(sink.feed(reader, stream, 0, kFrameHeaderSize) == 0);
    BOOST_TEST(budget.used() == 0u);
    BOOST_REQUIRE(sink.feed(reader, stream, kFrameHeaderSize, kFrameHeaderSize + 10) == 0);
    BOOST_TEST(budget.used() == 4096u);
    BOOST_REQUIRE(sink.feed(reader, stream, kFrameHeaderSize + 10, 30000) == 0);
    BOOST_TEST(budget.used() >= 30000u - kFrameHeaderSize);
    BOOST_TEST(budget.used() <= 2 * 30000u);
    BOOST_TEST(budget.used() == reader.buffered());
    BOOST_REQUIRE(sink.feed(reader, stream, 30000, stream.size()) == 0);
    BOOST_REQUIRE(sink.messages.size() == 1u);
    BOOST_TEST(sink.messages[0] == payload);
    BOOST_TEST(budget.used() == 0u);
    // A reader destroyed mid-message gives its bytes back too.
    BOOST_REQUIRE(sink.feed(reader, stream, 0, 20000) == 0);
    BOOST_TEST(budget.used() > 0u);
  }
  BOOST_TEST(budget.used() == 0u);
}

BOOST_FIXTURE_TEST_CASE(a_message_half_of_which_came_at_once_gets_one_buffer_at_its_size,
                        LargeMessage) {
  FrameReader reader(1 << 20, &budget);
  Sink sink;
  BOOST_REQUIRE(sink.feed(reader, stream, 0, 60000) == 0);
  BOOST_TEST(budget.used() == payload.size());
  std::span<uint8_t> target = reader.readTarget();
  BOOST_TEST(target.size() == stream.size() - 60000);
  BOOST_TEST(budget.used() == payload.size());
  BOOST_REQUIRE(sink.feed(reader, stream, 60000, stream.size()) == 0);
  BOOST_REQUIRE(sink.messages.size() == 1u);
  BOOST_TEST(sink.messages[0] == payload);
  BOOST_TEST(budget.used() == 0u);
}

BOOST_AUTO_TEST_CASE(the_rest_of_a_split_message_is_read_into_its_own_buffer_and_none_of_the_next) {
  ReceiveBudget budget(4 << 20);
  const std::string first(300005, 'a');
  Bytes stream = concat({frame(first), frame("next")});
  FrameReader reader(4 << 20, &budget);
  Sink sink;
  BOOST_TEST(reader.readTarget().empty());  // nothing split yet
  size_t at = 1000;
  BOOST_REQUIRE(sink.feed(reader, stream, 0, at) == 0);
  // What a stream transport does with each read: straight into the message while it is split.
  int targets = 0;
  for (std::span<uint8_t> target = reader.readTarget(); !target.empty();
       target = reader.readTarget()) {
    ++targets;
    BOOST_REQUIRE(at + target.size() <= kFrameHeaderSize + first.size());
    BOOST_TEST(budget.used() == reader.buffered());
    std::memcpy(target.data(), stream.data() + at, target.size());
    at += target.size();
    BOOST_REQUIRE(reader.filled(target.size(), &Sink::deliver, &sink) == 0);
  }
  BOOST_TEST(targets > 1);  // it grew as the bytes came
  BOOST_REQUIRE(sink.messages.size() == 1u);
  BOOST_TEST(sink.messages[0] == first);
  BOOST_TEST(at == kFrameHeaderSize + first.size());
  BOOST_TEST(budget.used() == 0u);
  BOOST_REQUIRE(sink.feed(reader, stream, at, stream.size()) == 0);
  BOOST_TEST(sink.messages.size() == 2u);
  BOOST_TEST(sink.messages.back() == "next");
}

BOOST_AUTO_TEST_CASE(a_large_message_split_at_the_end_of_a_read_buffer_takes_it_uncopied) {
  ReceiveBudget budget(1 << 20);
  const size_t capacity = 256 * 1024;
  const std::string payload(65536 + 40, 'z');
  Bytes stream = concat({frame("small"), frame(payload)});
  const size_t inFirstRead = stream.size() - 1000;  // most of the large one, not all
  ByteBuffer readBuffer = allocateBytes(capacity);
  uint8_t* original = readBuffer.get();
  std::memcpy(original, stream.data(), inFirstRead);
  FrameReader reader(1 << 20, &budget);
  Sink sink;
  const uint8_t* deliveredAt = nullptr;
  auto record = [](void* context, const uint8_t* data, size_t size) {
    auto* at = static_cast<const uint8_t**>(context);
    if (size > 1000) *at = data;
    return true;
  };
  BOOST_REQUIRE(reader.feed(original, inFirstRead, record, &deliveredAt, &readBuffer, capacity) ==
                0);
  BOOST_TEST(!readBuffer);  // taken by the large message
  BOOST_TEST(budget.used() == payload.size());
  std::span<uint8_t> rest = reader.readTarget();
  BOOST_REQUIRE(rest.size() == 1000u);
  BOOST_TEST(rest.data() == original + inFirstRead);  // right after what came, in place
  std::memcpy(rest.data(), stream.data() + inFirstRead, rest.size());
  BOOST_REQUIRE(reader.filled(rest.size(), record, &deliveredAt) == 0);
  BOOST_TEST(deliveredAt == original + frame("small").size() + kFrameHeaderSize);
  BOOST_TEST(budget.used() == 0u);
  BOOST_TEST(!reader.midFrame());
}

BOOST_AUTO_TEST_CASE(a_read_buffer_stays_with_its_owner_for_a_small_or_barely_begun_message) {
  ReceiveBudget budget(1 << 20);
  const size_t capacity = 256 * 1024;
  for (size_t size : {FrameReader::kAdoptFrom - 1, size_t{200000}}) {
    Bytes stream = frame(std::string(size, 'q'));
    const size_t inFirstRead = size < FrameReader::kAdoptFrom ? stream.size() - 10 : 50000;
    ByteBuffer readBuffer = allocateBytes(capacity);
    std::memcpy(readBuffer.get(), stream.data(), inFirstRead);
    FrameReader reader(1 << 20, &budget);
    Sink sink;
    BOOST_REQUIRE(reader.feed(readBuffer.get(), inFirstRead, &Sink::deliver, &sink, &readBuffer,
                              capacity) == 0);
    BOOST_TEST(static_cast<bool>(readBuffer), "message of " << size);
    BOOST_TEST(budget.used() <= 2 * inFirstRead);
    BOOST_REQUIRE(sink.feed(reader, stream, inFirstRead, stream.size()) == 0);
    BOOST_TEST(sink.messages.size() == 1u);
  }
  BOOST_TEST(budget.used() == 0u);
}

BOOST_AUTO_TEST_CASE(a_message_past_the_budget_breaks_the_reader_and_takes_nothing) {
  ReceiveBudget budget(10000);
  Bytes stream = frame(std::string(50000, 'y'));
  FrameReader reader(1 << 20, &budget);
  Sink sink;
  // Short of budget for its whole size, the message holds what arrived.
  BOOST_TEST(sink.feed(reader, stream, 0, 9000) == 0);
  BOOST_TEST(budget.used() == 9000u - kFrameHeaderSize);
  int err = sink.feed(reader, stream, 9000, 30000);
  BOOST_TEST(err == UV_ENOBUFS);
  BOOST_TEST(budget.used() <= 10000u);
  BOOST_TEST(sink.feed(reader, stream, 30000, stream.size()) == UV_ENOBUFS);
  BOOST_TEST(reader.midFrame());
  BOOST_TEST(reader.readTarget().empty());
  BOOST_TEST(sink.messages.empty());
}

}  // namespace
}  // namespace ferry::transports
