#include "wire.h"

#include <array>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace ferry::transports::udp {

// --- CRC32C. ---

namespace {

constexpr uint32_t kCrcPolynomial = 0x82F63B78u;  // Castagnoli, reflected

// Slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes.
constexpr std::array<std::array<uint32_t, 256>, 8> makeCrcTables() {
  std::array<std::array<uint32_t, 256>, 8> tables{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t crc = b;
    for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ ((crc & 1) ? kCrcPolynomial : 0);
    tables[0][b] = crc;
  }
  for (uint32_t b = 0; b < 256; ++b) {
    for (size_t k = 1; k < 8; ++k) {
      uint32_t previous = tables[k - 1][b];
      tables[k][b] = (previous >> 8) ^ tables[0][previous & 0xff];
    }
  }
  return tables;
}

constexpr auto kCrcTables = makeCrcTables();

uint32_t crc32cSoftware(uint32_t crc, const uint8_t* data, size_t size) noexcept {
  while (size >= 8) {
    uint32_t low = crc ^ (uint32_t{data[0]} | uint32_t{data[1]} << 8 | uint32_t{data[2]} << 16 |
                          uint32_t{data[3]} << 24);
    crc = kCrcTables[7][low & 0xff] ^ kCrcTables[6][(low >> 8) & 0xff] ^
          kCrcTables[5][(low >> 16) & 0xff] ^ kCrcTables[4][low >> 24] ^
          kCrcTables[3][data[4]] ^ kCrcTables[2][data[5]] ^ kCrcTables[1][data[6]] ^
          kCrcTables[0][data[7]];
    data += 8;
    size -= 8;
  }
  while (size-- > 0) crc = (crc >> 8) ^ kCrcTables[0][(crc ^ *data++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
// The crc32 instruction's latency is three times its issue interval, so one chain of it runs at a
// third of the speed the unit allows. Large inputs therefore run as three chains over three
// adjacent blocks, joined afterwards: the raw CRC of A||B is the raw CRC of A advanced over |B|
// zero bytes, xor the raw CRC of B from zero (the CRC is linear). kCrcLong and kCrcShort are the
// two block sizes, each with its table for advancing a CRC over that many zero bytes.
constexpr size_t kCrcLong = 8192;
constexpr size_t kCrcShort = 256;

using Gf2Matrix = std::array<uint32_t, 32>;  // column i: the image of bit i
using ZerosTable = std::array<std::array<uint32_t, 256>, 4>;

constexpr uint32_t gf2Times(const Gf2Matrix& matrix, uint32_t vector) {
  uint32_t sum = 0;
  for (size_t i = 0; vector != 0; ++i, vector >>= 1) {
    if ((vector & 1) != 0) sum ^= matrix[i];
  }
  return sum;
}

constexpr Gf2Matrix gf2Compose(const Gf2Matrix& outer, const Gf2Matrix& inner) {
  Gf2Matrix result{};
  for (size_t i = 0; i < 32; ++i) result[i] = gf2Times(outer, inner[i]);
  return result;
}

// table[k][b]: the raw CRC register b << 8k advanced over `bytes` zero bytes.
constexpr ZerosTable makeZerosTable(size_t bytes) {
  Gf2Matrix power{};  // one zero bit
  power[0] = kCrcPolynomial;
  for (size_t i = 1; i < 32; ++i) power[i] = 1u << (i - 1);
  for (int i = 0; i < 3; ++i) power = gf2Compose(power, power);  // one zero byte
  Gf2Matrix total{};
  for (size_t i = 0; i < 32; ++i) total[i] = 1u << i;
  for (size_t n = bytes; n != 0; n >>= 1) {
    if ((n & 1) != 0) total = gf2Compose(power, total);
    power = gf2Compose(power, power);
  }
  ZerosTable table{};
  for (size_t k = 0; k < 4; ++k) {
    for (uint32_t b = 0; b < 256; ++b) table[k][b] = gf2Times(total, b << (8 * k));
  }
  return table;
}

constexpr ZerosTable kCrcLongZeros = makeZerosTable(kCrcLong);
constexpr ZerosTable kCrcShortZeros = makeZerosTable(kCrcShort);

uint32_t advanceOverZeros(const ZerosTable& table, uint32_t crc) noexcept {
  return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^ table[2][(crc >> 16) & 0xff] ^
         table[3][crc >> 24];
}

uint64_t load64(const uint8_t* data) noexcept {
  uint64_t value;
  std::memcpy(&value, data, 8);
  return value;
}

// Consumes whole triples of `block` bytes from data/size.
__attribute__((target("sse4.2"))) uint32_t crc32cThreeWay(uint32_t crc, const uint8_t*& data,
                                                          size_t& size, size_t block,
                                                          const ZerosTable& zeros) noexcept {
  while (size >= 3 * block) {
    uint64_t crc0 = crc;
    uint64_t crc1 = 0;
    uint64_t crc2 = 0;
    for (size_t i = 0; i < block; i += 8) {
      crc0 = _mm_crc32_u64(crc0, load64(data + i));
      crc1 = _mm_crc32_u64(crc1, load64(data + block + i));
      crc2 = _mm_crc32_u64(crc2, load64(data + 2 * block + i));
    }
    crc = advanceOverZeros(zeros, static_cast<uint32_t>(crc0)) ^ static_cast<uint32_t>(crc1);
    crc = advanceOverZeros(zeros, crc) ^ static_cast<uint32_t>(crc2);
    data += 3 * block;
    size -= 3 * block;
  }
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t crc32cHardware(uint32_t crc, const uint8_t* data,
                                                          size_t size) noexcept {
  crc = crc32cThreeWay(crc, data, size, kCrcLong, kCrcLongZeros);
  crc = crc32cThreeWay(crc, data, size, kCrcShort, kCrcShortZeros);
  uint64_t wide = crc;
  while (size >= 8) {
    wide = _mm_crc32_u64(wide, load64(data));
    data += 8;
    size -= 8;
  }
  crc = static_cast<uint32_t>(wide);
  while (size-- > 0) crc = _mm_crc32_u8(crc, *data++);
  return crc;
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

uint32_t crc32c(const uint8_t* data, size_t size, uint32_t prior) noexcept {
#if defined(__x86_64__)
  if (kHaveSse42) return ~crc32cHardware(~prior, data, size);
#endif
  return ~crc32cSoftware(~prior, data, size);
}

void DatagramPieces::add(const uint8_t* bytes, size_t length) noexcept {
  if (length == 0) return;
  data[count] = bytes;
  size[count] = length;
  ++count;
  total += length;
}

void DatagramPieces::copyTo(uint8_t* out) const noexcept {
  for (size_t i = 0; i < count; ++i) {
    std::memcpy(out, data[i], size[i]);
    out += size[i];
  }
}

std::vector<uint8_t> DatagramPieces::joined() const {
  std::vector<uint8_t> out;
  out.reserve(total);
  for (size_t i = 0; i < count; ++i) out.insert(out.end(), data[i], data[i] + size[i]);
  return out;
}

// --- Names. ---

const char* packetTypeName(PacketType type) noexcept {
  switch (type) {
    case PacketType::hello:
      return "HELLO";
    case PacketType::cookie:
      return "COOKIE";
    case PacketType::handshake:
      return "HANDSHAKE";
    case PacketType::reject:
      return "REJECT";
    case PacketType::shortHeader:
      return "short";
  }
  return "?";
}

const char* decodeErrorName(DecodeError error) noexcept {
  switch (error) {
    case DecodeError::none:
      return "none";
    case DecodeError::tooShort:
      return "shorter than its header";
    case DecodeError::badFirstByte:
      return "not a ferry packet";
    case DecodeError::badCrc:
      return "CRC32C mismatch";
    case DecodeError::badVersion:
      return "unsupported version";
  }
  return "?";
}

// --- Writer. ---

bool Writer::room(size_t n) noexcept {
  if (_overflow || _capacity - _size < n) {
    _overflow = true;
    return false;
  }
  return true;
}

void Writer::u8(uint8_t value) noexcept {
  if (room(1)) _buffer[_size++] = value;
}

void Writer::u16(uint16_t value) noexcept {
  if (!room(2)) return;
  _buffer[_size++] = static_cast<uint8_t>(value >> 8);
  _buffer[_size++] = static_cast<uint8_t>(value);
}

void Writer::u32(uint32_t value) noexcept {
  if (!room(4)) return;
  for (int shift = 24; shift >= 0; shift -= 8) _buffer[_size++] = static_cast<uint8_t>(value >> shift);
}

void Writer::u64(uint64_t value) noexcept {
  if (!room(8)) return;
  for (int shift = 56; shift >= 0; shift -= 8) _buffer[_size++] = static_cast<uint8_t>(value >> shift);
}

size_t varintSize(uint64_t value) noexcept {
  if (value < (1u << 6)) return 1;
  if (value < (1u << 14)) return 2;
  if (value < (1u << 30)) return 4;
  return 8;
}

void Writer::varint(uint64_t value) noexcept {
  if (value > kMaxVarint) {
    _overflow = true;
    return;
  }
  switch (varintSize(value)) {
    case 1:
      u8(static_cast<uint8_t>(value));
      break;
    case 2:
      u16(static_cast<uint16_t>(value | 0x4000u));
      break;
    case 4:
      u32(static_cast<uint32_t>(value | 0x80000000u));
      break;
    default:
      u64(value | 0xC000000000000000ull);
      break;
  }
}

void Writer::bytes(const uint8_t* data, size_t size) noexcept {
  if (size == 0 || !room(size)) return;
  std::memcpy(_buffer + _size, data, size);
  _size += size;
}

void Writer::zeros(size_t size) noexcept {
  if (size == 0 || !room(size)) return;
  std::memset(_buffer + _size, 0, size);
  _size += size;
}

void Writer::skip(size_t size) noexcept {
  if (size == 0 || !room(size)) return;
  _size += size;
}

void writeLongHeader(Writer& out, PacketType type, uint64_t dst, uint64_t src,
                     uint64_t pn) noexcept {
  out.u8(static_cast<uint8_t>(0xC0 | static_cast<uint8_t>(type)));
  out.u8(kVersion);
  out.u16(0);
  out.u64(dst);
  out.u64(src);
  out.u64(pn);
}

void writeShortHeader(Writer& out, uint64_t dst, uint64_t pn) noexcept {
  out.u8(0x40);
  out.u64(dst);
  out.u64(pn);
}

void writeCrc(Writer& out) noexcept { out.u32(crc32c(out.data(), out.size())); }

// --- Reader. ---

bool Reader::need(size_t n) noexcept {
  if (_failed || _size - _position < n) {
    _failed = true;
    return false;
  }
  return true;
}

uint8_t Reader::u8() noexcept { return need(1) ? _data[_position++] : 0; }

uint16_t Reader::u16() noexcept {
  if (!need(2)) return 0;
  uint16_t value = static_cast<uint16_t>(_data[_position] << 8 | _data[_position + 1]);
  _position += 2;
  return value;
}

uint32_t Reader::u32() noexcept {
  if (!need(4)) return 0;
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value = value << 8 | _data[_position++];
  return value;
}

uint64_t Reader::u64() noexcept {
  if (!need(8)) return 0;
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = value << 8 | _data[_position++];
  return value;
}

uint64_t Reader::varint() noexcept {
  if (!need(1)) return 0;
  size_t length = size_t{1} << (_data[_position] >> 6);
  if (!need(length)) return 0;
  uint64_t value = _data[_position++] & 0x3f;
  for (size_t i = 1; i < length; ++i) value = value << 8 | _data[_position++];
  return value;
}

const uint8_t* Reader::bytes(size_t size) noexcept {
  if (!need(size)) return nullptr;
  const uint8_t* at = _data + _position;
  _position += size;
  return at;
}

// --- Packets. ---

DecodeError decodePacket(const uint8_t* data, size_t size, Header& header, const uint8_t*& frames,
                         size_t& framesSize) noexcept {
  if (size < 1 + kCrcSize) return DecodeError::tooShort;
  uint8_t first = data[0];
  bool isLong = (first & 0xFC) == 0xC0;
  bool isShort = (first & 0xFB) == 0x40;
  if (!isLong && !isShort) return DecodeError::badFirstByte;
  size_t headerSize = isLong ? kLongHeaderSize : kShortHeaderSize;
  if (size < headerSize + kCrcSize) return DecodeError::tooShort;
  size_t body = size - kCrcSize;
  uint32_t expected = uint32_t{data[body]} << 24 | uint32_t{data[body + 1]} << 16 |
                      uint32_t{data[body + 2]} << 8 | uint32_t{data[body + 3]};
  if (crc32c(data, body) != expected) return DecodeError::badCrc;
  Reader in(data, body);
  in.u8();
  if (isLong) {
    header.type = static_cast<PacketType>(first & 0x03);
    header.version = in.u8();
    header.flags = in.u16();
    header.dst = in.u64();
    header.src = in.u64();
    header.pn = in.u64();
    header.keyPhase = 0;
    if (header.version != kVersion) return DecodeError::badVersion;
  } else {
    header.type = PacketType::shortHeader;
    header.version = kVersion;
    header.flags = 0;
    header.keyPhase = (first >> 2) & 1;
    header.dst = in.u64();
    header.src = 0;
    header.pn = in.u64();
  }
  frames = data + headerSize;
  framesSize = body - headerSize;
  return DecodeError::none;
}

// --- Frames. ---

bool ackEliciting(FrameType type) noexcept {
  return type != FrameType::ack && type != FrameType::padding;
}

namespace {

bool readAck(Reader& in, AckFrame& ack) noexcept {
  uint64_t largest = in.varint();
  ack.delayUs = in.varint();
  uint64_t extra = in.varint();
  uint64_t first = in.varint();
  if (in.failed() || extra >= kMaxAckRanges || first > largest) return false;
  ack.rangeCount = 1;
  ack.high[0] = largest;
  ack.low[0] = largest - first;
  for (uint64_t i = 0; i < extra; ++i) {
    uint64_t gap = in.varint();
    uint64_t length = in.varint();
    if (in.failed()) return false;
    // RFC 9000 §19.3.1: the next range's largest is smallest - gap - 2.
    uint64_t previousLow = ack.low[ack.rangeCount - 1];
    if (previousLow < gap + 2) return false;
    uint64_t high = previousLow - gap - 2;
    if (length > high) return false;
    ack.high[ack.rangeCount] = high;
    ack.low[ack.rangeCount] = high - length;
    ++ack.rangeCount;
  }
  return true;
}

}  // namespace

bool readFrame(Reader& in, Frame& frame) noexcept {
  if (in.atEnd()) return false;
  uint64_t type = in.varint();
  if (in.failed()) return false;
  frame.type = static_cast<FrameType>(type);
  switch (frame.type) {
    case FrameType::padding:
      // Swallow the whole run: a 1200-byte HELLO is mostly padding.
      while (!in.atEnd()) {
        Reader peek = in;
        if (peek.u8() != 0) break;
        in.u8();
      }
      return true;
    case FrameType::ping:
    case FrameType::immediateAck:
      return true;
    case FrameType::ack:
      if (!readAck(in, frame.ack)) {
        in.bytes(in.remaining() + 1);  // marks the reader failed
        return false;
      }
      return true;
    case FrameType::crypto: {
      frame.crypto.offset = in.varint();
      frame.crypto.length = in.varint();
      if (in.failed() || frame.crypto.length > in.remaining()) {
        in.bytes(in.remaining() + 1);
        return false;
      }
      frame.crypto.bytes = in.bytes(frame.crypto.length);
      return !in.failed();
    }
    case FrameType::data: {
      DataFrame& d = frame.data;
      d.msgId = in.varint();
      d.flags = in.u8();
      d.total = in.u32();
      d.offset = in.u32();
      d.length = in.u16();
      d.bytes = in.bytes(d.length);
      return !in.failed();
    }
    case FrameType::credit:
      frame.msgId = in.varint();
      frame.maxOffset = in.varint();
      return !in.failed();
    case FrameType::sessionCredit:
      frame.maxMsgId = in.varint();
      frame.maxOpenBytes = in.varint();
      return !in.failed();
    case FrameType::close:
      frame.reason = in.varint();
      frame.token = in.u64();
      return !in.failed();
    case FrameType::helloParams:
    case FrameType::handshakeParams: {
      uint64_t length = in.varint();
      if (in.failed() || length > in.remaining()) {
        in.bytes(in.remaining() + 1);
        return false;
      }
      frame.paramsSize = static_cast<size_t>(length);
      frame.params = in.bytes(frame.paramsSize);
      return !in.failed();
    }
    case FrameType::cookie: {
      const uint8_t* cookie = in.bytes(kCookieSize);
      frame.epoch = in.u64();
      if (in.failed()) return false;
      std::memcpy(frame.cookie, cookie, kCookieSize);
      return true;
    }
    case FrameType::reject:
      frame.reason = in.varint();
      frame.epoch = in.u64();
      return !in.failed();
  }
  // An unknown frame type: its length is unknown, so nothing after it can be read.
  in.bytes(in.remaining() + 1);
  return false;
}

void writePing(Writer& out) noexcept { out.varint(static_cast<uint64_t>(FrameType::ping)); }

void writeImmediateAck(Writer& out) noexcept {
  out.varint(static_cast<uint64_t>(FrameType::immediateAck));
}

void writeAck(Writer& out, const AckFrame& ack) noexcept {
  out.varint(static_cast<uint64_t>(FrameType::ack));
  out.varint(ack.high[0]);
  out.varint(ack.delayUs);
  out.varint(ack.rangeCount - 1);
  out.varint(ack.high[0] - ack.low[0]);
  for (size_t i = 1; i < ack.rangeCount; ++i) {
    out.varint(ack.low[i - 1] - ack.high[i] - 2);
    out.varint(ack.high[i] - ack.low[i]);
  }
}

size_t ackFrameSize(const AckFrame& ack) noexcept {
  size_t size = 1 + varintSize(ack.high[0]) + varintSize(ack.delayUs) +
                varintSize(ack.rangeCount - 1) + varintSize(ack.high[0] - ack.low[0]);
  for (size_t i = 1; i < ack.rangeCount; ++i) {
    size += varintSize(ack.low[i - 1] - ack.high[i] - 2) + varintSize(ack.high[i] - ack.low[i]);
  }
  return size;
}

void writeDataHeader(Writer& out, uint64_t msgId, uint32_t total, uint32_t offset,
                     uint16_t length) noexcept {
  out.varint(static_cast<uint64_t>(FrameType::data));
  out.varint(msgId);
  out.u8(0);
  out.u32(total);
  out.u32(offset);
  out.u16(length);
}

void writeCredit(Writer& out, uint64_t msgId, uint64_t maxOffset) noexcept {
  out.varint(static_cast<uint64_t>(FrameType::credit));
  out.varint(msgId);
  out.varint(maxOffset);
}

void writeSessionCredit(Writer& out, uint64_t maxMsgId, uint64_t maxOpenBytes) noexcept {
  out.varint(static_cast<uint64_t>(FrameType::sessionCredit));
  out.varint(maxMsgId);
  out.varint(maxOpenBytes);
}

void writeClose(Writer& out, uint64_t reason, uint64_t token) noexcept {
  out.varint(static_cast<uint64_t>(FrameType::close));
  out.varint(reason);
  out.u64(token);
}

void writeCrypto(Writer& out, uint64_t offset, const uint8_t* bytes, size_t length) noexcept {
  out.varint(static_cast<uint64_t>(FrameType::crypto));
  out.varint(offset);
  out.varint(length);
  out.bytes(bytes, length);
}

void writeCookieFrame(Writer& out, const uint8_t* cookie, uint64_t epoch) noexcept {
  out.varint(static_cast<uint64_t>(FrameType::cookie));
  out.bytes(cookie, kCookieSize);
  out.u64(epoch);
}

void writeReject(Writer& out, uint64_t reason, uint64_t epoch) noexcept {
  out.varint(static_cast<uint64_t>(FrameType::reject));
  out.varint(reason);
  out.u64(epoch);
}

// --- Parameters. ---

namespace {

enum ParamId : uint64_t {
  kParamInstance = 0x01,
  kParamNonce = 0x02,
  kParamProviders = 0x03,
  kParamLevel = 0x04,
  kParamMaxMessageSize = 0x05,
  kParamCookie = 0x06,
  kParamResumeHint = 0x07,
  kParamMaxAckDelay = 0x08,
  kParamIdleTimeout = 0x09,
  kParamMaxDatagramSize = 0x0a,
  kParamMaxOpenMessages = 0x0b,
  kParamMaxOpenBytes = 0x0c,
  kParamUnscheduledBytes = 0x0d,
  kParamEpoch = 0x0e,
  kParamProvider = 0x0f,
  kParamCloseToken = 0x10,
};

void tlvBytes(Writer& out, uint64_t id, const uint8_t* bytes, size_t size) {
  out.varint(id);
  out.varint(size);
  out.bytes(bytes, size);
}

void tlvVarint(Writer& out, uint64_t id, uint64_t value) {
  if (value == 0) return;
  out.varint(id);
  out.varint(varintSize(value));
  out.varint(value);
}

void tlvU64(Writer& out, uint64_t id, uint64_t value) {
  out.varint(id);
  out.varint(8);
  out.u64(value);
}

// The TLVs of `params`; `out` may be a sizing writer with no room (see writeParams).
void writeTlvs(Writer& out, const Params& params) {
  if (params.hasInstance) tlvBytes(out, kParamInstance, params.instance, kInstanceIdSize);
  if (params.hasNonce) tlvBytes(out, kParamNonce, params.nonce, kNonceSize);
  if (params.providerCount > 0) {
    tlvBytes(out, kParamProviders, params.providers, params.providerCount);
  }
  if (params.hasLevel) tlvBytes(out, kParamLevel, &params.level, 1);
  if (params.hasCookie) tlvBytes(out, kParamCookie, params.cookie, kCookieSize);
  if (params.hasResumeHint) tlvU64(out, kParamResumeHint, params.resumeHint);
  if (params.hasEpoch) tlvU64(out, kParamEpoch, params.epoch);
  if (params.hasProvider) tlvBytes(out, kParamProvider, &params.provider, 1);
  if (params.hasCloseToken) tlvU64(out, kParamCloseToken, params.closeToken);
  tlvVarint(out, kParamMaxMessageSize, params.maxMessageSize);
  tlvVarint(out, kParamMaxAckDelay, params.maxAckDelayUs);
  tlvVarint(out, kParamIdleTimeout, params.idleTimeoutMs);
  tlvVarint(out, kParamMaxDatagramSize, params.maxDatagramSize);
  tlvVarint(out, kParamMaxOpenMessages, params.maxOpenMessages);
  tlvVarint(out, kParamMaxOpenBytes, params.maxOpenBytes);
  tlvVarint(out, kParamUnscheduledBytes, params.unscheduledBytes);
}

}  // namespace

void writeParams(Writer& out, FrameType type, const Params& params) noexcept {
  uint8_t scratch[512];
  Writer body(scratch, sizeof(scratch));
  writeTlvs(body, params);
  if (body.overflow()) {
    out.zeros(out.remaining() + 1);  // marks the writer overflowed
    return;
  }
  out.varint(static_cast<uint64_t>(type));
  out.varint(body.size());
  out.bytes(scratch, body.size());
}

bool readParams(const uint8_t* data, size_t size, Params& params) noexcept {
  Reader in(data, size);
  uint64_t seen = 0;  // bit i: parameter id i was present
  while (!in.atEnd()) {
    uint64_t id = in.varint();
    uint64_t length = in.varint();
    if (in.failed() || length > in.remaining()) return false;
    const uint8_t* value = in.bytes(static_cast<size_t>(length));
    if (id < 64) {
      if ((seen >> id) & 1) return false;
      seen |= uint64_t{1} << id;
    }
    Reader v(value, static_cast<size_t>(length));
    auto exact = [&](size_t n) { return length == n; };
    auto varintValue = [&](uint64_t& out) {
      out = v.varint();
      return !v.failed() && v.atEnd();
    };
    switch (id) {
      case kParamInstance:
        if (!exact(kInstanceIdSize)) return false;
        params.hasInstance = true;
        std::memcpy(params.instance, value, kInstanceIdSize);
        break;
      case kParamNonce:
        if (!exact(kNonceSize)) return false;
        params.hasNonce = true;
        std::memcpy(params.nonce, value, kNonceSize);
        break;
      case kParamProviders:
        if (length == 0 || length > kMaxProviders) return false;
        params.providerCount = static_cast<size_t>(length);
        std::memcpy(params.providers, value, params.providerCount);
        break;
      case kParamLevel:
        if (!exact(1)) return false;
        params.hasLevel = true;
        params.level = value[0];
        break;
      case kParamCookie:
        if (!exact(kCookieSize)) return false;
        params.hasCookie = true;
        std::memcpy(params.cookie, value, kCookieSize);
        break;
      case kParamResumeHint:
        if (!exact(8)) return false;
        params.hasResumeHint = true;
        params.resumeHint = v.u64();
        break;
      case kParamEpoch:
        if (!exact(8)) return false;
        params.hasEpoch = true;
        params.epoch = v.u64();
        break;
      case kParamProvider:
        if (!exact(1)) return false;
        params.hasProvider = true;
        params.provider = value[0];
        break;
      case kParamCloseToken:
        if (!exact(8)) return false;
        params.hasCloseToken = true;
        params.closeToken = v.u64();
        break;
      case kParamMaxMessageSize:
        if (!varintValue(params.maxMessageSize)) return false;
        break;
      case kParamMaxAckDelay:
        if (!varintValue(params.maxAckDelayUs)) return false;
        break;
      case kParamIdleTimeout:
        if (!varintValue(params.idleTimeoutMs)) return false;
        break;
      case kParamMaxDatagramSize:
        if (!varintValue(params.maxDatagramSize)) return false;
        break;
      case kParamMaxOpenMessages:
        if (!varintValue(params.maxOpenMessages)) return false;
        break;
      case kParamMaxOpenBytes:
        if (!varintValue(params.maxOpenBytes)) return false;
        break;
      case kParamUnscheduledBytes:
        if (!varintValue(params.unscheduledBytes)) return false;
        break;
      default:
        break;  // a later version's parameter
    }
  }
  return true;
}

}  // namespace ferry::transports::udp
