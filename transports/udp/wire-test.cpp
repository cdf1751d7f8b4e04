#define BOOST_TEST_MODULE udp wire format
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <vector>

#include "wire.h"

namespace ferry::transports::udp {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes bytesOf(const char* text) {
  return Bytes(reinterpret_cast<const uint8_t*>(text),
               reinterpret_cast<const uint8_t*>(text) + std::strlen(text));
}

BOOST_AUTO_TEST_CASE(crc32c_matches_the_published_check_values) {
  // RFC 3720 B.4 and the CRC catalogue's check value for "123456789".
  Bytes digits = bytesOf("123456789");
  BOOST_TEST(crc32c(digits.data(), digits.size()) == 0xE3069283u);
  Bytes zeros(32, 0);
  BOOST_TEST(crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);
  Bytes ones(32, 0xff);
  BOOST_TEST(crc32c(ones.data(), ones.size()) == 0x62A8AB43u);
  Bytes ascending(32);
  for (size_t i = 0; i < 32; ++i) ascending[i] = static_cast<uint8_t>(i);
  BOOST_TEST(crc32c(ascending.data(), ascending.size()) == 0x46DD794Eu);
}

// The CRC one bit at a time, straight from the definition: what every faster form must equal.
uint32_t crc32cBitwise(const uint8_t* data, size_t size) {
  uint32_t crc = ~0u;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) != 0 ? 0x82F63B78u : 0);
  }
  return ~crc;
}

BOOST_AUTO_TEST_CASE(crc32c_equals_the_bitwise_definition_at_every_block_boundary_and_alignment) {
  // Lengths around the sizes where the fast CRC changes how it splits its input (three blocks of
  // 256 and of 8192 bytes), up to the largest datagram, at several start offsets.
  Bytes data(65507 + 8);
  uint32_t state = 0x9E3779B9u;
  for (uint8_t& byte : data) {
    state = state * 1664525u + 1013904223u;
    byte = static_cast<uint8_t>(state >> 24);
  }
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 800; ++n) lengths.push_back(n);
  for (size_t base : {3 * 8192, 2 * 3 * 8192, 3 * 8192 + 3 * 256}) {
    for (size_t n = base - 9; n <= base + 9; ++n) lengths.push_back(n);
  }
  lengths.push_back(1200);
  lengths.push_back(8952);
  lengths.push_back(65507);
  for (size_t offset : {0, 1, 3, 7}) {
    for (size_t length : lengths) {
      BOOST_TEST_CONTEXT("offset " << offset << ", length " << length) {
        BOOST_TEST(crc32c(data.data() + offset, length) ==
                   crc32cBitwise(data.data() + offset, length));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_crc_taken_piece_by_piece_equals_the_crc_of_the_whole) {
  Bytes data(70000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31 + (i >> 9));
  uint32_t whole = crc32c(data.data(), data.size());
  for (size_t cut : {0, 1, 17, 1200, 24576, 65507, 70000}) {
    uint32_t first = crc32c(data.data(), cut);
    BOOST_TEST(crc32c(data.data() + cut, data.size() - cut, first) == whole);
  }
}

BOOST_AUTO_TEST_CASE(a_datagram_in_pieces_is_its_pieces_in_order_around_a_skipped_hole) {
  uint8_t buffer[16];
  Writer out(buffer, sizeof(buffer));
  out.u8(0xa1);
  size_t hole = out.size();
  out.skip(3);
  out.u8(0xb2);
  BOOST_TEST(out.size() == 5u);
  BOOST_TEST(out.remaining() == 11u);
  out.skip(12);
  BOOST_TEST(out.overflow());
  const uint8_t payload[3] = {1, 2, 3};
  DatagramPieces datagram;
  datagram.add(buffer, hole);
  datagram.add(payload, sizeof(payload));
  datagram.add(buffer + hole + 3, 0);  // empty: left out
  datagram.add(buffer + hole + 3, 1);
  BOOST_TEST(datagram.count == 3u);
  BOOST_TEST(datagram.total == 5u);
  Bytes whole(datagram.total);
  datagram.copyTo(whole.data());
  BOOST_TEST((whole == Bytes{0xa1, 1, 2, 3, 0xb2}));
  BOOST_TEST((datagram.joined() == whole));
}

BOOST_AUTO_TEST_CASE(varints_take_the_sizes_of_rfc_9000_and_read_back) {
  const std::pair<uint64_t, size_t> cases[] = {
      {0, 1}, {63, 1}, {64, 2}, {16383, 2}, {16384, 4}, {1073741823, 4}, {1073741824, 8},
      {kMaxVarint, 8}};
  for (auto [value, size] : cases) {
    uint8_t buffer[8];
    Writer out(buffer, sizeof(buffer));
    out.varint(value);
    BOOST_TEST(out.size() == size);
    BOOST_TEST(varintSize(value) == size);
    Reader in(buffer, out.size());
    BOOST_TEST(in.varint() == value);
    BOOST_TEST(in.atEnd());
  }
  // RFC 9000 §A.1's example: 0x9d7f3e7d is 494878333.
  const uint8_t example[] = {0x9d, 0x7f, 0x3e, 0x7d};
  Reader in(example, sizeof(example));
  BOOST_TEST(in.varint() == 494878333u);
  uint8_t buffer[8];
  Writer tooBig(buffer, sizeof(buffer));
  tooBig.varint(kMaxVarint + 1);
  BOOST_TEST(tooBig.overflow());
}

BOOST_AUTO_TEST_CASE(a_reader_never_reads_past_its_end) {
  const uint8_t data[] = {0x40};  // a two-byte varint cut after one byte
  Reader in(data, sizeof(data));
  BOOST_TEST(in.varint() == 0u);
  BOOST_TEST(in.failed());
  Reader r(data, 1);
  BOOST_TEST(r.bytes(2) == nullptr);
  BOOST_TEST(r.failed());
  BOOST_TEST(r.u64() == 0u);
}

BOOST_AUTO_TEST_CASE(a_short_header_packet_round_trips_and_any_flipped_bit_breaks_its_crc) {
  uint8_t buffer[64];
  Writer out(buffer, sizeof(buffer));
  writeShortHeader(out, 0x0102030405060708ull, 77);
  writePing(out);
  writeCrc(out);
  BOOST_TEST(out.size() == kShortHeaderSize + 1 + kCrcSize);
  Header header;
  const uint8_t* frames = nullptr;
  size_t size = 0;
  BOOST_REQUIRE(decodePacket(buffer, out.size(), header, frames, size) == DecodeError::none);
  BOOST_TEST(static_cast<int>(header.type) == static_cast<int>(PacketType::shortHeader));
  BOOST_TEST(header.dst == 0x0102030405060708ull);
  BOOST_TEST(header.pn == 77u);
  BOOST_TEST(size == 1u);
  for (size_t bit = 0; bit < out.size() * 8; ++bit) {
    buffer[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    DecodeError error = decodePacket(buffer, out.size(), header, frames, size);
    BOOST_TEST((error != DecodeError::none), "bit " << bit);
    buffer[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  }
  for (size_t length = 0; length < out.size(); ++length) {
    BOOST_TEST((decodePacket(buffer, length, header, frames, size) != DecodeError::none));
  }
}

BOOST_AUTO_TEST_CASE(a_long_header_names_its_type_sessions_and_version) {
  uint8_t buffer[64];
  Writer out(buffer, sizeof(buffer));
  writeLongHeader(out, PacketType::handshake, 11, 22, 33);
  writeCrc(out);
  Header header;
  const uint8_t* frames = nullptr;
  size_t size = 0;
  BOOST_REQUIRE(decodePacket(buffer, out.size(), header, frames, size) == DecodeError::none);
  BOOST_TEST(static_cast<int>(header.type) == static_cast<int>(PacketType::handshake));
  BOOST_TEST(header.dst == 11u);
  BOOST_TEST(header.src == 22u);
  BOOST_TEST(header.pn == 33u);
  BOOST_TEST(size == 0u);
  // Another version, with a valid CRC: recognised and refused.
  uint8_t other[kLongHeaderSize + kCrcSize] = {0xC0, 2};
  uint32_t sum = crc32c(other, kLongHeaderSize);
  for (int i = 0; i < 4; ++i) other[kLongHeaderSize + i] = static_cast<uint8_t>(sum >> (24 - 8 * i));
  BOOST_TEST((decodePacket(other, sizeof(other), header, frames, size) == DecodeError::badVersion));
}

BOOST_AUTO_TEST_CASE(ack_ranges_encode_as_rfc_9000_gaps_and_decode_back) {
  AckFrame ack;
  ack.delayUs = 250;
  ack.rangeCount = 3;
  ack.high[0] = 100;
  ack.low[0] = 90;
  ack.high[1] = 80;  // gap: 90 - 80 - 2 = 8
  ack.low[1] = 80;
  ack.high[2] = 5;
  ack.low[2] = 0;
  uint8_t buffer[64];
  Writer out(buffer, sizeof(buffer));
  writeAck(out, ack);
  BOOST_TEST(out.size() == ackFrameSize(ack));
  Reader in(buffer, out.size());
  Frame frame;
  BOOST_REQUIRE(readFrame(in, frame));
  BOOST_TEST(static_cast<int>(frame.type) == static_cast<int>(FrameType::ack));
  BOOST_TEST(frame.ack.delayUs == 250u);
  BOOST_REQUIRE(frame.ack.rangeCount == 3u);
  for (size_t i = 0; i < 3; ++i) {
    BOOST_TEST(frame.ack.low[i] == ack.low[i]);
    BOOST_TEST(frame.ack.high[i] == ack.high[i]);
  }
}

BOOST_AUTO_TEST_CASE(ack_frames_that_underflow_or_list_too_many_ranges_are_malformed) {
  uint8_t buffer[600];
  {
    // first_range larger than largest.
    Writer out(buffer, sizeof(buffer));
    out.varint(static_cast<uint64_t>(FrameType::ack));
    out.varint(5);
    out.varint(0);
    out.varint(0);
    out.varint(6);
    Reader in(buffer, out.size());
    Frame frame;
    BOOST_TEST(!readFrame(in, frame));
    BOOST_TEST(in.failed());
  }
  {
    // A gap reaching below zero.
    Writer out(buffer, sizeof(buffer));
    out.varint(static_cast<uint64_t>(FrameType::ack));
    out.varint(10);
    out.varint(0);
    out.varint(1);
    out.varint(2);
    out.varint(7);  // next largest = 8 - 7 - 2 < 0
    out.varint(0);
    Reader in(buffer, out.size());
    Frame frame;
    BOOST_TEST(!readFrame(in, frame));
  }
  {
    Writer out(buffer, sizeof(buffer));
    out.varint(static_cast<uint64_t>(FrameType::ack));
    out.varint(100000);
    out.varint(0);
    out.varint(kMaxAckRanges);  // one more range than allowed
    out.varint(0);
    for (size_t i = 0; i < kMaxAckRanges; ++i) {
      out.varint(0);
      out.varint(0);
    }
    Reader in(buffer, out.size());
    Frame frame;
    BOOST_TEST(!readFrame(in, frame));
  }
}

BOOST_AUTO_TEST_CASE(data_frames_restate_their_total_and_carry_their_bytes) {
  Bytes payload = bytesOf("hello, world");
  uint8_t buffer[64];
  Writer out(buffer, sizeof(buffer));
  writeDataHeader(out, 300, 5000, 1000, static_cast<uint16_t>(payload.size()));
  out.bytes(payload.data(), payload.size());
  BOOST_TEST(out.size() == dataFrameOverhead(300) + payload.size());
  Reader in(buffer, out.size());
  Frame frame;
  BOOST_REQUIRE(readFrame(in, frame));
  BOOST_TEST(frame.data.msgId == 300u);
  BOOST_TEST(frame.data.total == 5000u);
  BOOST_TEST(frame.data.offset == 1000u);
  BOOST_TEST(frame.data.length == payload.size());
  BOOST_TEST(std::memcmp(frame.data.bytes, payload.data(), payload.size()) == 0);
  // A length running past the packet is malformed, not a read past the end.
  Reader cut(buffer, out.size() - 1);
  BOOST_TEST(!readFrame(cut, frame));
  BOOST_TEST(cut.failed());
}

BOOST_AUTO_TEST_CASE(padding_runs_decode_as_one_frame_and_unknown_types_stop_decoding) {
  uint8_t buffer[32] = {};
  buffer[20] = static_cast<uint8_t>(FrameType::ping);
  buffer[21] = 0x3f;  // an unknown frame type
  Reader in(buffer, 22);
  Frame frame;
  BOOST_REQUIRE(readFrame(in, frame));
  BOOST_TEST(static_cast<int>(frame.type) == static_cast<int>(FrameType::padding));
  BOOST_REQUIRE(readFrame(in, frame));
  BOOST_TEST(static_cast<int>(frame.type) == static_cast<int>(FrameType::ping));
  BOOST_TEST(!readFrame(in, frame));
  BOOST_TEST(in.failed());
}

BOOST_AUTO_TEST_CASE(handshake_parameters_round_trip_and_unknown_ones_are_skipped) {
  Params p;
  p.hasNonce = true;
  for (size_t i = 0; i < kNonceSize; ++i) p.nonce[i] = static_cast<uint8_t>(i);
  p.providerCount = 2;
  p.providers[0] = 3;
  p.providers[1] = kProviderNone;
  p.hasCookie = true;
  p.cookie[19] = 0xaa;
  p.hasEpoch = true;
  p.epoch = 0x1234567890abcdefull;
  p.maxMessageSize = (16u << 20) + (64u << 10);
  p.maxAckDelayUs = 25000;
  p.idleTimeoutMs = 30000;
  p.maxDatagramSize = 65507;
  p.maxOpenMessages = 1024;
  p.maxOpenBytes = 32u << 20;
  p.unscheduledBytes = 65536;
  uint8_t buffer[512];
  Writer out(buffer, sizeof(buffer));
  writeParams(out, FrameType::helloParams, p);
  Reader in(buffer, out.size());
  Frame frame;
  BOOST_REQUIRE(readFrame(in, frame));
  Params q;
  BOOST_REQUIRE(readParams(frame.params, frame.paramsSize, q));
  BOOST_TEST(q.hasNonce);
  BOOST_TEST(std::memcmp(q.nonce, p.nonce, kNonceSize) == 0);
  BOOST_TEST(q.providerCount == 2u);
  BOOST_TEST(q.providers[1] == kProviderNone);
  BOOST_TEST(q.hasCookie);
  BOOST_TEST(q.cookie[19] == 0xaa);
  BOOST_TEST(q.epoch == p.epoch);
  BOOST_TEST(q.maxMessageSize == p.maxMessageSize);
  BOOST_TEST(q.maxAckDelayUs == p.maxAckDelayUs);
  BOOST_TEST(q.idleTimeoutMs == p.idleTimeoutMs);
  BOOST_TEST(q.maxDatagramSize == p.maxDatagramSize);
  BOOST_TEST(q.maxOpenMessages == p.maxOpenMessages);
  BOOST_TEST(q.maxOpenBytes == p.maxOpenBytes);
  BOOST_TEST(q.unscheduledBytes == p.unscheduledBytes);
  BOOST_TEST(!q.hasLevel);

  // A later version's parameter (id 0x30) is skipped; a duplicated or mis-sized known one fails.
  const uint8_t unknown[] = {0x30, 0x02, 0xaa, 0xbb, 0x09, 0x01, 0x05};
  Params r;
  BOOST_TEST(readParams(unknown, sizeof(unknown), r));
  BOOST_TEST(r.idleTimeoutMs == 5u);
  const uint8_t twice[] = {0x09, 0x01, 0x05, 0x09, 0x01, 0x06};
  BOOST_TEST(!readParams(twice, sizeof(twice), r));
  const uint8_t shortNonce[] = {0x02, 0x03, 1, 2, 3};
  BOOST_TEST(!readParams(shortNonce, sizeof(shortNonce), r));
  const uint8_t overrun[] = {0x02, 0x10, 1};
  BOOST_TEST(!readParams(overrun, sizeof(overrun), r));
}

}  // namespace
}  // namespace ferry::transports::udp
