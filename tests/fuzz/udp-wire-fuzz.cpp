// libFuzzer target for the udp wire decoder (transports/udp/wire.*): any datagram, as the socket
// hands it over. The CRC is checked first, so the target also decodes the input with a correct
// CRC put in place, to reach the header and frame decoders; every frame's parameters are decoded
// too. Nothing may read outside the datagram (ASan) or decode a frame past its end.
#include <cstdlib>
#include <vector>

#include "wire.h"

namespace {

using namespace ferry::transports::udp;

void decode(const uint8_t* data, size_t size) {
  Header header;
  const uint8_t* frames = nullptr;
  size_t framesSize = 0;
  if (decodePacket(data, size, header, frames, framesSize) != DecodeError::none) return;
  if (frames < data || frames + framesSize > data + size) std::abort();
  Reader in(frames, framesSize);
  Frame frame;
  while (readFrame(in, frame)) {
    if (frame.params != nullptr) {
      if (frame.params < frames || frame.params + frame.paramsSize > frames + framesSize) {
        std::abort();
      }
      Params params;
      readParams(frame.params, frame.paramsSize, params);
    }
    if (frame.type == FrameType::crypto && frame.crypto.length > 0 &&
        (frame.crypto.bytes < frames || frame.crypto.bytes + frame.crypto.length >
                                            frames + framesSize)) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  decode(data, size);
  if (size >= 4) {
    std::vector<uint8_t> fixed(data, data + size);
    uint32_t crc = crc32c(fixed.data(), size - 4);
    for (int i = 0; i < 4; ++i) fixed[size - 4 + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
    decode(fixed.data(), fixed.size());
  }
  return 0;
}
