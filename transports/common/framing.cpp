#include "framing.h"

#include <uv.h>

#include <algorithm>

namespace ferry::transports {

void encodeFrameHeader(uint8_t* header, size_t size) noexcept {
  auto length = static_cast<uint32_t>(size);
  for (size_t i = 0; i < kFrameHeaderSize; ++i) header[i] = static_cast<uint8_t>(length >> (8 * i));
}

int FrameReader::feed(const uint8_t* data, size_t size, Deliver deliver, void* context) {
  if (_broken) return UV_EMSGSIZE;
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
        _broken = true;
        return UV_EMSGSIZE;
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
    // Reserved once per split message, and released once it is delivered.
    if (_partial.capacity() < _expected) _partial.reserve(_expected);
    size_t take = std::min(size, missing);
    _partial.insert(_partial.end(), data, data + take);
    data += take;
    size -= take;
    if (_partial.size() < _expected) return 0;
    std::vector<uint8_t> message;
    message.swap(_partial);
    _headerFilled = 0;
    if (!deliver(context, message.data(), message.size())) return 0;
  }
}

}  // namespace ferry::transports
