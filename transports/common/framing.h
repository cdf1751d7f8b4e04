// Message framing for stream transports: each message travels as a 4-byte little-endian length
// followed by that many payload bytes. Nothing else is on the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferry::transports {

inline constexpr size_t kFrameHeaderSize = 4;

// Writes the length prefix of a `size`-byte message into header[0..3]. `size` fits 32 bits
// because callers check it against the transport's maximum first.
void encodeFrameHeader(uint8_t* header, size_t size) noexcept;

// Reassembles whole messages from the bytes of one stream, in order.
//
// A length prefix above `maxMessageSize` is refused before anything is allocated for it; the
// reader is then broken (every later feed fails the same way) and its stream must be closed.
class FrameReader {
public:
  // What feed() does with each whole message: returns true to go on, false to stop at once (the
  // owner closed the stream from inside the callback; the unread rest of the bytes is dropped).
  // `data` is valid during the call only.
  using Deliver = bool (*)(void* context, const uint8_t* data, size_t size);

  explicit FrameReader(size_t maxMessageSize) noexcept : _maxMessageSize(maxMessageSize) {}

  // Feeds the next `size` bytes of the stream. Returns 0, or UV_EMSGSIZE when a length prefix
  // exceeds the maximum. May throw std::bad_alloc while buffering a partial message.
  int feed(const uint8_t* data, size_t size, Deliver deliver, void* context);

  // True when part of a message has been fed: the stream ending now would truncate it.
  bool midFrame() const noexcept { return _headerFilled > 0 || _broken; }

private:
  size_t _maxMessageSize;
  uint8_t _header[kFrameHeaderSize] = {};
  size_t _headerFilled = 0;      // bytes of the current header seen so far
  size_t _expected = 0;          // payload size of the current message, once its header is whole
  std::vector<uint8_t> _partial; // payload bytes of the current message, when split across feeds
  bool _broken = false;
};

}  // namespace ferry::transports
