// The udp protocol's wire format, version 1: packet headers, frames, handshake parameters and the
// CRC32C trailer. transports/udp/PROTOCOL.md is the specification; this is its one encoder and
// decoder. Everything here is pure (no sockets, no clocks), so it is tested byte by byte.
//
// Decoding never trusts a length: every read is bounds-checked, and a malformed packet makes the
// decoder report an error instead of reading past the datagram.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace ferry::transports::udp {

inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kLongHeaderSize = 28;
inline constexpr size_t kShortHeaderSize = 17;
inline constexpr size_t kCrcSize = 4;
// The UDP payload every path is assumed to carry (RFC 9000 §14, RFC 8899 BASE_PLPMTU); HELLOs are
// padded to it.
inline constexpr size_t kBaseDatagramSize = 1200;
// The largest UDP payload this implementation sends or accepts.
inline constexpr size_t kMaxDatagramSize = 65507;
inline constexpr size_t kNonceSize = 16;
inline constexpr size_t kInstanceIdSize = 16;
inline constexpr size_t kCookieSize = 20;  // u32 timestamp + 16 bytes of HMAC-SHA256
inline constexpr size_t kMaxAckRanges = 64;
// Ack-eliciting short-header packets are padded to at least this, so that a peer that lost the
// session can answer with a REJECT no larger than the packet (PROTOCOL.md, "REJECT").
inline constexpr size_t kMinElicitingPacket = 48;
// The most a DATA frame carries (its len field is 16 bits).
inline constexpr size_t kMaxDataChunk = 65535;

enum class PacketType : uint8_t { hello = 0, cookie = 1, handshake = 2, reject = 3, shortHeader = 4 };

const char* packetTypeName(PacketType type) noexcept;

struct Header {
  PacketType type = PacketType::shortHeader;
  uint8_t version = kVersion;  // long headers only
  uint16_t flags = 0;          // long headers only; sent as 0, ignored on receipt
  uint8_t keyPhase = 0;        // short headers only
  uint64_t dst = 0;            // the session id the receiver chose
  uint64_t src = 0;            // long headers only: the sender's own session id
  uint64_t pn = 0;
};

// CRC32C (Castagnoli), as in iSCSI and ext4: hardware instructions when the CPU has them. With
// `prior`, the CRC of bytes that `prior` is the CRC of, followed by these: a packet's CRC can be
// taken piece by piece.
uint32_t crc32c(const uint8_t* data, size_t size, uint32_t prior = 0) noexcept;

// One datagram in pieces, sent as one (sendmsg's iovecs): the packet buffer's bytes around the
// large DATA payloads, which stay where the outbox holds them instead of being copied into the
// packet.
struct DatagramPieces {
  static constexpr size_t kMaxPieces = 9;
  const uint8_t* data[kMaxPieces] = {};
  size_t size[kMaxPieces] = {};
  size_t count = 0;
  size_t total = 0;

  DatagramPieces() = default;
  DatagramPieces(const uint8_t* bytes, size_t length) noexcept { add(bytes, length); }
  // Appends a piece; empty ones are left out. The caller keeps count below kMaxPieces.
  void add(const uint8_t* bytes, size_t length) noexcept;
  // Writes the datagram, total bytes, to `out`.
  void copyTo(uint8_t* out) const noexcept;
  // The datagram in one piece of its own.
  std::vector<uint8_t> joined() const;
};

enum class DecodeError { none, tooShort, badFirstByte, badCrc, badVersion };
const char* decodeErrorName(DecodeError error) noexcept;

// Checks the CRC trailer and decodes the header of one datagram. On success `frames` and
// `framesSize` describe the frame bytes between header and trailer.
DecodeError decodePacket(const uint8_t* data, size_t size, Header& header, const uint8_t*& frames,
                         size_t& framesSize) noexcept;

// --- Writing. ---

// A bounded writer over a caller's buffer. Writing past the end sets overflow() and writes
// nothing more; callers size their packets first and treat overflow as their own bug.
class Writer {
public:
  Writer(uint8_t* buffer, size_t capacity) noexcept : _buffer(buffer), _capacity(capacity) {}

  void u8(uint8_t value) noexcept;
  void u16(uint16_t value) noexcept;
  void u32(uint32_t value) noexcept;
  void u64(uint64_t value) noexcept;
  void varint(uint64_t value) noexcept;  // RFC 9000 §16; values must be below 2^62
  void bytes(const uint8_t* data, size_t size) noexcept;
  void zeros(size_t size) noexcept;
  // Leaves `size` bytes unwritten: a hole the caller fills in the datagram by other means.
  void skip(size_t size) noexcept;

  size_t size() const noexcept { return _size; }
  size_t remaining() const noexcept { return _capacity - _size; }
  bool overflow() const noexcept { return _overflow; }
  uint8_t* data() noexcept { return _buffer; }

private:
  bool room(size_t n) noexcept;

  uint8_t* _buffer;
  size_t _capacity;
  size_t _size = 0;
  bool _overflow = false;
};

// The bytes varint(value) takes: 1, 2, 4 or 8.
size_t varintSize(uint64_t value) noexcept;
inline constexpr uint64_t kMaxVarint = (uint64_t{1} << 62) - 1;

void writeLongHeader(Writer& out, PacketType type, uint64_t dst, uint64_t src, uint64_t pn) noexcept;
void writeShortHeader(Writer& out, uint64_t dst, uint64_t pn) noexcept;
// Appends the CRC32C of everything written so far.
void writeCrc(Writer& out) noexcept;

// --- Reading. ---

class Reader {
public:
  Reader(const uint8_t* data, size_t size) noexcept : _data(data), _size(size) {}

  uint8_t u8() noexcept;
  uint16_t u16() noexcept;
  uint32_t u32() noexcept;
  uint64_t u64() noexcept;
  uint64_t varint() noexcept;
  // A pointer to the next `size` bytes, skipped; null (and failed()) when fewer remain.
  const uint8_t* bytes(size_t size) noexcept;

  bool failed() const noexcept { return _failed; }
  bool atEnd() const noexcept { return _position == _size; }
  size_t remaining() const noexcept { return _size - _position; }

private:
  bool need(size_t n) noexcept;

  const uint8_t* _data;
  size_t _size;
  size_t _position = 0;
  bool _failed = false;
};

// --- Frames. ---

enum class FrameType : uint64_t {
  padding = 0x00,
  ping = 0x01,
  ack = 0x02,
  crypto = 0x06,
  data = 0x08,
  credit = 0x09,
  sessionCredit = 0x0a,
  close = 0x0c,
  immediateAck = 0x1f,  // draft-ietf-quic-ack-frequency: acknowledge this packet at once
  helloParams = 0x10,
  cookie = 0x11,
  handshakeParams = 0x12,
  reject = 0x13,
};

// ACK ranges as inclusive [low, high] pairs, highest first (RFC 9000 §19.3 decoded).
struct AckFrame {
  uint64_t delayUs = 0;
  size_t rangeCount = 0;
  uint64_t low[kMaxAckRanges];
  uint64_t high[kMaxAckRanges];

  uint64_t largest() const noexcept { return high[0]; }
};

struct DataFrame {
  uint64_t msgId = 0;
  uint8_t flags = 0;  // reserved: sent as 0, ignored on receipt
  uint32_t total = 0;
  uint32_t offset = 0;
  uint16_t length = 0;
  const uint8_t* bytes = nullptr;
};

// DATA header bytes before the payload, for a message id.
inline size_t dataFrameOverhead(uint64_t msgId) noexcept { return 1 + varintSize(msgId) + 11; }

struct CryptoFrame {
  uint64_t offset = 0;
  uint64_t length = 0;
  const uint8_t* bytes = nullptr;
};

struct Frame {
  FrameType type = FrameType::padding;
  // Which member is valid follows `type`.
  AckFrame ack;
  DataFrame data;
  CryptoFrame crypto;
  uint64_t msgId = 0;       // credit
  uint64_t maxOffset = 0;   // credit
  uint64_t maxMsgId = 0;    // sessionCredit
  uint64_t maxOpenBytes = 0;  // sessionCredit
  uint64_t reason = 0;      // close, reject
  uint64_t token = 0;       // close: the sender's close token
  uint64_t epoch = 0;       // cookie, reject
  uint8_t cookie[kCookieSize] = {};
  const uint8_t* params = nullptr;  // helloParams, handshakeParams: the TLV bytes
  size_t paramsSize = 0;
};

// True for every frame but ACK and PADDING (RFC 9002 §2).
bool ackEliciting(FrameType type) noexcept;

// Decodes the next frame. Returns false at the end of the frames or on a malformed frame
// (then reader.failed()). A run of PADDING bytes decodes as one frame.
bool readFrame(Reader& in, Frame& frame) noexcept;

void writePing(Writer& out) noexcept;
void writeImmediateAck(Writer& out) noexcept;
// Encodes an ACK frame from inclusive ranges, highest first. Ranges must be disjoint, descending
// and non-adjacent.
void writeAck(Writer& out, const AckFrame& ack) noexcept;
size_t ackFrameSize(const AckFrame& ack) noexcept;
void writeDataHeader(Writer& out, uint64_t msgId, uint32_t total, uint32_t offset,
                     uint16_t length) noexcept;
void writeCredit(Writer& out, uint64_t msgId, uint64_t maxOffset) noexcept;
void writeSessionCredit(Writer& out, uint64_t maxMsgId, uint64_t maxOpenBytes) noexcept;
void writeClose(Writer& out, uint64_t reason, uint64_t token) noexcept;
void writeCrypto(Writer& out, uint64_t offset, const uint8_t* bytes, size_t length) noexcept;
void writeCookieFrame(Writer& out, const uint8_t* cookie, uint64_t epoch) noexcept;
void writeReject(Writer& out, uint64_t reason, uint64_t epoch) noexcept;

// CLOSE reasons.
inline constexpr uint64_t kCloseNormal = 0;
inline constexpr uint64_t kCloseProtocol = 1;
inline constexpr uint64_t kCloseGoingAway = 2;
// REJECT reasons.
inline constexpr uint64_t kRejectUnknownSession = 1;

// --- Handshake parameters (the TLV body of HELLO_PARAMS and HANDSHAKE_PARAMS). ---

inline constexpr uint8_t kProviderNone = 0;
inline constexpr uint8_t kLevelNone = 0;
inline constexpr size_t kMaxProviders = 8;

struct Params {
  bool hasInstance = false;
  uint8_t instance[kInstanceIdSize] = {};
  bool hasNonce = false;
  uint8_t nonce[kNonceSize] = {};
  size_t providerCount = 0;
  uint8_t providers[kMaxProviders] = {};
  bool hasLevel = false;
  uint8_t level = kLevelNone;
  bool hasCookie = false;
  uint8_t cookie[kCookieSize] = {};
  bool hasResumeHint = false;
  uint64_t resumeHint = 0;
  bool hasEpoch = false;
  uint64_t epoch = 0;
  bool hasProvider = false;
  uint8_t provider = kProviderNone;
  bool hasCloseToken = false;
  uint64_t closeToken = 0;  // what this side's CLOSE frames will carry (random per session)
  // Transport parameters; 0 means "not sent".
  uint64_t maxMessageSize = 0;
  uint64_t maxAckDelayUs = 0;
  uint64_t idleTimeoutMs = 0;
  uint64_t maxDatagramSize = 0;
  uint64_t maxOpenMessages = 0;
  uint64_t maxOpenBytes = 0;
  uint64_t unscheduledBytes = 0;
};

// Writes a HELLO_PARAMS or HANDSHAKE_PARAMS frame holding every field that is set.
void writeParams(Writer& out, FrameType type, const Params& params) noexcept;
// Decodes TLVs; unknown ids are skipped, a malformed or duplicated known one fails.
bool readParams(const uint8_t* data, size_t size, Params& params) noexcept;

}  // namespace ferry::transports::udp
