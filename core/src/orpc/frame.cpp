#include "frame.h"

#include <cstring>
#include <string>

#include <capnp/serialize.h>
#include <kj/exception.h>

#include "../error-impl.h"

namespace ferry::detail::orpc {

namespace {

constexpr uint8_t kMagic[4] = {'F', 'R', 'Y', '1'};

void putLe64(uint8_t* out, uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t getLe64(const uint8_t* in) noexcept {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(in[i]) << (8 * i);
  return v;
}

void writeHeader(uint8_t* out, FrameKind kind, uint64_t callId, Oxid oxid) noexcept {
  std::memcpy(out, kMagic, 4);
  out[4] = static_cast<uint8_t>(kind);
  putLe64(out + 8, callId);
  putLe64(out + 16, oxid.value);
}

bool knownKind(uint8_t kind) noexcept {
  switch (static_cast<FrameKind>(kind)) {
    case FrameKind::request:
    case FrameKind::response:
    case FrameKind::resolve:
    case FrameKind::resolveReply:
    case FrameKind::registration:
    case FrameKind::withdrawal:
    case FrameKind::cancel:
    case FrameKind::ping:
    case FrameKind::pingReply:
    case FrameKind::bind:
    case FrameKind::names:
    case FrameKind::namesReply:
    case FrameKind::nameWithdrawal:
    case FrameKind::classObject:
    case FrameKind::activation:
    case FrameKind::activationReply:
    case FrameKind::adminRegistration:
      return true;
  }
  return false;
}

}  // namespace

// GCC 12 warns, wrongly, that vector::insert into reserved room overflows it (a known false
// positive of -Wstringop-overflow at -O2).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
std::vector<uint8_t> encodeFrame(FrameKind kind, uint64_t callId, Oxid oxid,
                                 capnp::MessageBuilder& message) {
  // Cap'n Proto's stream format (capnp/serialize.h), appended segment by segment to a vector
  // reserved at the frame's size: every payload byte is written once, and none is zero-filled
  // first (as sizing the vector, or kj::ArrayOutputStream over it, would).
  kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments = message.getSegmentsForOutput();
  size_t tableWords = segments.size() / 2 + 1;  // a 32-bit count-1, a 32-bit size per segment, padded
  size_t payload = tableWords;
  for (auto segment : segments) payload += segment.size();
  payload *= sizeof(capnp::word);
  std::vector<uint8_t> frame;
  frame.reserve(kFrameHeader + payload);
  uint8_t header[kFrameHeader] = {};
  writeHeader(header, kind, callId, oxid);
  frame.insert(frame.end(), header, header + kFrameHeader);
  auto put32 = [&frame](uint32_t v) {
    for (int i = 0; i < 4; ++i) frame.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put32(static_cast<uint32_t>(segments.size() - 1));
  for (auto segment : segments) put32(static_cast<uint32_t>(segment.size()));
  if (segments.size() % 2 == 0) put32(0);
  for (auto segment : segments) {
    auto bytes = segment.asBytes();
    frame.insert(frame.end(), bytes.begin(), bytes.end());
  }
  return frame;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

std::vector<uint8_t> encodeBareFrame(FrameKind kind, uint64_t callId) {
  std::vector<uint8_t> frame(kFrameHeader);
  writeHeader(frame.data(), kind, callId, Oxid());
  return frame;
}

uint64_t frameCallId(const std::vector<uint8_t>& frame) noexcept {
  return frame.size() >= kFrameHeader ? getLe64(frame.data() + 8) : 0;
}

void markResent(std::vector<uint8_t>& frame) noexcept {
  if (frame.size() >= kFrameHeader) frame[5] |= kFrameFlagResent;
}

Frame decodeFrame(const uint8_t* data, size_t size) {
  // The length first: every byte of the header is read only once the message holds a header.
  FERRY_REQUIRE(size >= kFrameHeader, Errc::protocolError,
                "a {}-byte message is shorter than a frame header", size);
  uint8_t kind = data[4];
  uint8_t allowedFlags = kind == static_cast<uint8_t>(FrameKind::request) ? kFrameFlagResent : 0;
  FERRY_REQUIRE(std::memcmp(data, kMagic, 4) == 0 && (data[5] & ~allowedFlags) == 0 &&
                    data[6] == 0 && data[7] == 0,
                Errc::protocolError, "bad frame header");
  FERRY_REQUIRE(knownKind(kind), Errc::protocolError, "unknown frame kind {}", int(kind));
  Frame frame;
  frame.header = {static_cast<FrameKind>(kind), data[5], getLe64(data + 8), Oxid(getLe64(data + 16))};
  size_t payload = size - kFrameHeader;
  if (frame.header.kind == FrameKind::cancel) {
    FERRY_REQUIRE(payload == 0, Errc::protocolError, "a cancel frame carries a payload");
    return frame;
  }
  FERRY_REQUIRE(payload != 0 && payload % sizeof(capnp::word) == 0 &&
                    payload <= kMaxMessageBytes + 4096,
                Errc::protocolError, "bad payload length {}", payload);
  // Aligned words for the reader, in one allocation with it. The traversal limit is linear in the
  // payload, so a message cannot make the reader do much more work than its size (capnp counts
  // every pointer followed, and the call path reads the header fields several times).
  size_t words = payload / sizeof(capnp::word);
  capnp::ReaderOptions options;
  options.traversalLimitInWords = words * 64 + 8192;
  options.nestingLimit = 64;
  try {
    frame.message.emplace(ReceivedWords::copyOf(data + kFrameHeader, words, options));
  } catch (const kj::Exception& e) {
    FERRY_FAIL(Errc::protocolError, "bad message: {}", kjReason(e.getDescription().cStr()));
  }
  return frame;
}

}  // namespace ferry::detail::orpc
