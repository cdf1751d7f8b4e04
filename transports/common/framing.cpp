#include "framing.h"

#include <uv.h>

#include <algorithm>

namespace ferry::transports {

void encodeFrameHeader(uint8_t* header, size_t size) noexcept {
  auto length = static_cast<uint32_t>(size);
  for (size_t i = 0; i < kFrameHeaderSize; ++i) header[i] = static_cast<uint8_t>(length >> (8 * i));
}

int FrameReader::feed(const uint8_t* data, size_t size, Deliver deliver, void* context) {
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
      uint32_t length = 0;
      for (size_t i = 0; i < kFrameHeaderSize; ++i) length |= uint32_t{_header[i]} << (8 * i);
      if (length > _maxMessageSize) {
        _broken = UV_EMSGSIZE;
        return _broken;
      }
      _expected = length;
    }
    // The header is whole; `_partial` holds what came of the payload in earlier feeds. An empty
    // message is delivered here too, even when its header ended the buffer.
    size_t missing = _expected - _partial.size();
    if (_partial.empty() && size >= missing) {
      // The whole payload is in this buffer: deliver it from there, without a copy.
      _headerFilled = 0;
      const uint8_t* payload = data;
      data += missing;
      size -= missing;
      if (!deliver(context, payload, missing)) return 0;
      continue;
    }
    if (size == 0) return 0;
    size_t take = std::min(size, missing);
    if (!grow(take)) {
      _broken = UV_ENOBUFS;
      return _broken;
    }
    _partial.insert(_partial.end(), data, data + take);
    data += take;
    size -= take;
    if (_partial.size() < _expected) return 0;
    std::vector<uint8_t> message;
    message.swap(_partial);
    release();
    _headerFilled = 0;
    if (!deliver(context, message.data(), message.size())) return 0;
  }
}

bool FrameReader::grow(size_t more) {
  size_t needed = _partial.size() + more;
  if (needed <= _partial.capacity()) return true;
  // Doubling keeps the copies linear; the declared size caps it, so a message never holds more
  // than itself, and a prefix alone reserves nothing.
  size_t capacity = std::min(_expected, std::max({needed, 2 * _partial.capacity(), size_t{4096}}));
  size_t extra = capacity - _held;
  if (_budget != nullptr && !_budget->take(extra)) return false;
  try {
    _partial.reserve(capacity);
  } catch (...) {
    if (_budget != nullptr) _budget->give(extra);
    throw;
  }
  _held = capacity;
  return true;
}

void FrameReader::release() noexcept {
  if (_budget != nullptr) _budget->give(_held);
  _held = 0;
  _partial = std::vector<uint8_t>();
}

}  // namespace ferry::transports
