// Message framing for stream transports: each message travels as a 4-byte little-endian length
// followed by that many payload bytes. Nothing else is on the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace ferry::transports {

inline constexpr size_t kFrameHeaderSize = 4;

// Writes the length prefix of a `size`-byte message into header[0..3]. `size` fits 32 bits
// because callers check it against the transport's maximum first.
void encodeFrameHeader(uint8_t* header, size_t size) noexcept;
// The message size a length prefix header[0..3] announces.
size_t decodeFrameHeader(const uint8_t* header) noexcept;

// Bytes of partly received messages held by the readers that share it (one transport instance's),
// against a limit. On one thread.
class ReceiveBudget {
public:
  explicit ReceiveBudget(size_t limit) noexcept : _limit(limit) {}
  // Takes `bytes` when they fit under the limit; false (and nothing taken) otherwise.
  bool take(size_t bytes) noexcept {
    if (bytes > _limit - _used) return false;
    _used += bytes;
    return true;
  }
  void give(size_t bytes) noexcept { _used -= bytes; }
  size_t used() const noexcept { return _used; }

private:
  size_t _limit;
  size_t _used = 0;
};

// A malloc'd byte buffer, uninitialised (what a FrameReader holds and may adopt).
struct FreeBytes {
  void operator()(uint8_t* p) const noexcept;
};
using ByteBuffer = std::unique_ptr<uint8_t, FreeBytes>;
// A buffer of `size` bytes; throws std::bad_alloc.
ByteBuffer allocateBytes(size_t size);

// Reassembles whole messages from the bytes of one stream, in order.
//
// A length prefix above `maxMessageSize` is refused before anything is allocated for it. The
// buffer of a split message grows with the bytes that arrive, to at most twice them (at least a
// page), never to what the prefix declares before they do; all of it from `budget` when one is
// given. A message at least half of which came in one read thus gets one buffer at its size,
// never regrown. A refused prefix or budget breaks the reader (every later feed fails the same
// way) and its stream must be closed.
//
// The owner reads the stream either into a buffer of its own and feed()s the bytes, or, while a
// split message waits for its rest, straight into that message's buffer (readTarget(), then
// filled()): the rest of a large message is then copied by the kernel only. A read buffer handed
// to feed() may even become the message's buffer, so that the part of a large message that came
// with its header is not copied either (feed's `adoptable`).
class FrameReader {
public:
  // What feed() does with each whole message: returns true to go on, false to stop at once (the
  // owner closed the stream from inside the callback; the unread rest of the bytes is dropped).
  // `data` is valid during the call only.
  using Deliver = bool (*)(void* context, const uint8_t* data, size_t size);

  explicit FrameReader(size_t maxMessageSize, ReceiveBudget* budget = nullptr) noexcept
      : _maxMessageSize(maxMessageSize), _budget(budget) {}
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;
  ~FrameReader() { release(); }

  // A split message of at least this size may adopt the read buffer it began in.
  static constexpr size_t kAdoptFrom = 32 * 1024;

  // Feeds the next `size` bytes of the stream. Returns 0, UV_EMSGSIZE when a length prefix
  // exceeds the maximum, or UV_ENOBUFS when the budget cannot hold the bytes of a split message.
  // May throw std::bad_alloc while buffering a partial message.
  //
  // `adoptable`, when given, is the buffer of `capacity` bytes that `data` lies in. A message of
  // at least kAdoptFrom bytes split at the end of the bytes, at least half of which came, and that
  // fits the buffer from where it starts, takes the buffer as its own instead of copying what came
  // of it: `adoptable` is then empty on return, and the owner needs another read buffer.
  int feed(const uint8_t* data, size_t size, Deliver deliver, void* context,
           ByteBuffer* adoptable = nullptr, size_t capacity = 0);

  // Where the stream's next bytes may be read to directly: the unfilled part of the split
  // message's buffer, never past the message's end (so a read into it takes none of the next
  // message). The buffer grows first when it is full, as feed() would grow it. Empty when no
  // message is split, the reader is broken, or the budget or memory refuses the growth (feed()
  // then meets the same refusal and reports it).
  std::span<uint8_t> readTarget() noexcept;
  // `size` bytes of the stream were written to the start of the last readTarget(); delivers the
  // message when they complete it. Returns 0 (the reader cannot break here).
  int filled(size_t size, Deliver deliver, void* context);

  // True when part of a message has been fed: the stream ending now would truncate it.
  bool midFrame() const noexcept { return _headerFilled > 0 || _broken; }
  // Bytes held for a split message (taken from the budget).
  size_t buffered() const noexcept { return _held; }

private:
  // Makes room for `more` payload bytes; false when the budget refuses. May throw
  // std::bad_alloc.
  bool grow(size_t more);
  // Delivers the split message, whole, and forgets it.
  bool deliverBuffered(Deliver deliver, void* context);
  void release() noexcept;

  size_t _maxMessageSize;
  ReceiveBudget* _budget;
  uint8_t _header[kFrameHeaderSize] = {};
  size_t _headerFilled = 0;      // bytes of the current header seen so far
  size_t _expected = 0;          // payload size of the current message, once its header is whole
  // Payload bytes of the current message, when split across reads: `_filled` of them written
  // from `_offset` on, room for `_held` (as taken from the budget). Uninitialised beyond them.
  // `_offset` is 0 but in an adopted read buffer, which always has room for the whole message.
  ByteBuffer _partial;
  size_t _offset = 0;
  size_t _filled = 0;
  size_t _held = 0;
  int _broken = 0;               // the error every feed returns once broken
};

}  // namespace ferry::transports
