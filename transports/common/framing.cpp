#include "framing.h"

#include <uv.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace ferry::transports {

void encodeFrameHeader(uint8_t* header, size_t size) noexcept {
  auto length = static_cast<uint32_t>(size);
  for (size_t i = 0; i < kFrameHeaderSize; ++i) header[i] = static_cast<uint8_t>(length >> (8 * i));
}

size_t decodeFrameHeader(const uint8_t* header) noexcept {
  uint32_t length = 0;
  for (size_t i = 0; i < kFrameHeaderSize; ++i) length |= uint32_t{header[i]} << (8 * i);
  return length;
}

void FreeBytes::operator()(uint8_t* p) const noexcept { std::free(p); }

ByteBuffer allocateBytes(size_t size) {
  auto* bytes = static_cast<uint8_t*>(std::malloc(size));
  if (bytes == nullptr) throw std::bad_alloc();
  return ByteBuffer(bytes);
}

int FrameReader::feed(const uint8_t* data, size_t size, Deliver deliver, void* context,
                      ByteBuffer* adoptable, size_t capacity) {
  if (_broken != 0) return _broken;
  for (;;) {
    if (_headerFilled < kFrameHeaderSize) {
      if (size == 0) return 0;
      size_t take = std::min(size, kFrameHeaderSize - _headerFilled);
      std::copy_n(data, take, _header + _headerFilled);
      _headerFilled += take;
      data += take;
      size -= take;
      if (_headerFilled < kFrameHeaderSize) return 0;
      size_t length = decodeFrameHeader(_header);
      if (length > _maxMessageSize) {
        _broken = UV_EMSGSIZE;
        return _broken;
      }
      _expected = length;
    }
    // The header is whole; `_partial` holds what came of the payload in earlier reads. An empty
    // message is delivered here too, even when its header ended the buffer.
    size_t missing = _expected - _filled;
    if (_filled == 0 && size >= missing) {
      // The whole payload is in this buffer: deliver it from there, without a copy.
      _headerFilled = 0;
      const uint8_t* payload = data;
      data += missing;
      size -= missing;
      if (!deliver(context, payload, missing)) return 0;
      continue;
    }
    if (size == 0) return 0;
    if (_filled == 0 && adoptable != nullptr && *adoptable && _expected >= kAdoptFrom &&
        2 * size >= _expected) {
      // Split here, all of the rest of `data` is this message's: it may keep the read buffer.
      size_t offset = static_cast<size_t>(data - adoptable->get());
      if (offset + _expected <= capacity && (_budget == nullptr || _budget->take(_expected))) {
        _partial = std::move(*adoptable);
        _offset = offset;
        _held = _expected;
        _filled = size;
        return 0;
      }
    }
    size_t take = std::min(size, missing);
    if (!grow(take)) {
      _broken = UV_ENOBUFS;
      return _broken;
    }
    std::memcpy(_partial.get() + _offset + _filled, data, take);
    _filled += take;
    data += take;
    size -= take;
    if (_filled < _expected) return 0;
    if (!deliverBuffered(deliver, context)) return 0;
  }
}

namespace {
// What readTarget() makes room for at least, when the message's buffer is full.
constexpr size_t kReadAhead = 64 * 1024;
}  // namespace

std::span<uint8_t> FrameReader::readTarget() noexcept {
  if (_broken != 0 || _headerFilled < kFrameHeaderSize || _filled == 0) return {};
  try {
    // Room for a read of a useful size, not one byte: under a short budget grow() holds only
    // what is asked, and a message that grew by one byte per read would be reallocated (and
    // copied whole) once per byte.
    if (_filled == _held && !grow(std::min(_expected - _filled, kReadAhead))) return {};
  } catch (...) {
    return {};
  }
  return {_partial.get() + _offset + _filled, std::min(_held, _expected) - _filled};
}

int FrameReader::filled(size_t size, Deliver deliver, void* context) {
  _filled += size;
  if (_filled == _expected) deliverBuffered(deliver, context);
  return 0;
}

bool FrameReader::deliverBuffered(Deliver deliver, void* context) {
  ByteBuffer message = std::move(_partial);
  size_t offset = _offset;
  size_t size = _filled;
  release();
  _headerFilled = 0;
  return deliver(context, message.get() + offset, size);
}

bool FrameReader::grow(size_t more) {
  size_t needed = _filled + more;
  if (needed <= _held) return true;
  // Twice what arrived, so that growing (when realloc cannot grow in place) copies linearly in
  // the size; the declared size caps it, so a message never holds more than itself.
  size_t capacity = std::min(_expected, std::max(2 * needed, size_t{4096}));
  size_t extra = capacity - _held;
  if (_budget != nullptr && !_budget->take(extra)) {
    // Short of budget: only what the bytes need.
    capacity = needed;
    extra = capacity - _held;
    if (!_budget->take(extra)) return false;
  }
  // Uninitialised: every byte up to `_filled` is written before it is read.
  auto* grown = static_cast<uint8_t*>(std::realloc(_partial.get(), capacity));
  if (grown == nullptr) {
    if (_budget != nullptr) _budget->give(extra);
    throw std::bad_alloc();
  }
  (void)_partial.release();
  _partial.reset(grown);
  _held = capacity;
  return true;
}

void FrameReader::release() noexcept {
  if (_budget != nullptr) _budget->give(_held);
  _held = 0;
  _offset = 0;
  _filled = 0;
  _partial.reset();
}

}  // namespace ferry::transports
