// libFuzzer target for stream framing (transports/common/framing.*): the bytes a tcp or pipe
// peer sends, split into reads where the input says, through a FrameReader with a small maximum
// and a small receive budget. Whatever the bytes: every delivered message fits the maximum, the
// reader never holds more than the budget, and it holds nothing once a message is delivered or
// it is destroyed.
//
// The reads go where a stream transport puts them: into a split message's own buffer
// (FrameReader::readTarget) while it has one, else into a read buffer that the reader may adopt.
//
// Input: byte 0 picks the read sizes (1 + byte0 % 64 per read, or everything at once for 0);
// the rest is the stream.
#include <cstdlib>
#include <cstring>
#include <span>

#include "framing.h"

namespace {

constexpr size_t kMax = 4096;
constexpr size_t kBudget = 8192;

struct Delivered {
  size_t messages = 0;
  size_t bytes = 0;
};

bool deliver(void* context, const uint8_t* data, size_t size) {
  auto* delivered = static_cast<Delivered*>(context);
  if (size > kMax) std::abort();
  if (size > 0 && data == nullptr) std::abort();
  ++delivered->messages;
  delivered->bytes += size;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t step = data[0] == 0 ? size : 1 + data[0] % 64;
  ++data;
  --size;
  ferry::transports::ReceiveBudget budget(kBudget);
  {
    ferry::transports::FrameReader reader(kMax, &budget);
    Delivered delivered;
    for (size_t at = 0; at < size;) {
      size_t n = std::min(step, size - at);
      int err = 0;
      // As a stream transport reads: into a split message's own buffer while it has one (never
      // past the message's end), else into a read buffer the reader may adopt.
      std::span<uint8_t> target = reader.readTarget();
      if (!target.empty()) {
        n = std::min(n, target.size());
        std::memcpy(target.data(), data + at, n);
        err = reader.filled(n, &deliver, &delivered);
      } else {
        ferry::transports::ByteBuffer readBuffer = ferry::transports::allocateBytes(n);
        std::memcpy(readBuffer.get(), data + at, n);
        uint8_t* bytes = readBuffer.get();
        err = reader.feed(bytes, n, &deliver, &delivered, &readBuffer, n);
      }
      at += n;
      if (budget.used() > kBudget || reader.buffered() != budget.used()) std::abort();
      if (err != 0) {
        if (!reader.midFrame()) std::abort();  // a broken reader says so
        break;
      }
    }
    // Payload delivered plus headers never exceeds what came in.
    if (delivered.bytes + 4 * delivered.messages > size) std::abort();
  }
  if (budget.used() != 0) std::abort();
  return 0;
}
