// libFuzzer target for what a peer sends a link's security: the bind exchange's messages (offer,
// choice, token, accept, refusal: orpc/bind.h readBind) and sealed frames (security/record.h
// RecordLayer::open). The input is a script of operations, each one byte then its operands:
//   op % 4 == 0  readBind on the next L bytes (L: one byte): a BindMessage or protocolError,
//                nothing else; an offer never holds more than 16 providers, a token never more
//                than the limit asked for, a level is always one of the three;
//   op % 4 == 1  open() on the next L bytes as they are: never opens (the fuzzer cannot forge a
//                tag under keys it does not know);
//   op % 4 == 2  seal the next L bytes under the number in the next 8 bytes, kept within the
//                first 16 key phases (as a sender that already sent that many would), and keep
//                the sealed frame;
//   op % 4 == 3  open a kept sealed frame (index: one byte) with a bit flipped at the position the
//                next two bytes say, or unaltered when that position is past its end: an altered
//                frame never opens, an unaltered one opens at most once, to exactly the frame
//                that was sealed.
// The record layers are a client's sealer and a server's opener keyed from one fixed secret, at
// integrity when the input's first byte is even and at privacy otherwise.
#include <cstdlib>
#include <memory>
#include <vector>

#include <ferry/error.h>

#include "orpc/bind.h"
#include "security/record.h"

namespace {

using namespace ferry;
using namespace ferry::detail;
using security::RecordLayer;

void check(bool ok) {
  if (!ok) std::abort();
}

class Script {
public:
  Script(const uint8_t* data, size_t size) : _data(data), _size(size) {}
  bool more() const noexcept { return _at < _size; }
  uint8_t byte() noexcept { return _at < _size ? _data[_at++] : 0; }
  std::vector<uint8_t> bytes(size_t count) {
    count = std::min(count, _size - _at);
    std::vector<uint8_t> out(_data + _at, _data + _at + count);
    _at += count;
    return out;
  }
  uint64_t number() noexcept {
    uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value |= uint64_t{byte()} << (8 * i);
    return value;
  }

private:
  const uint8_t* _data;
  size_t _size;
  size_t _at = 0;
};

struct Kept {
  std::vector<uint8_t> frame;
  std::vector<uint8_t> sealed;
  bool opened = false;
};

void readBindChecked(const std::vector<uint8_t>& bytes, size_t maxToken) {
  try {
    orpc::BindMessage message = orpc::readBind(bytes.data(), bytes.size(), maxToken);
    check(message.providers.size() <= 16);
    check(message.token.size() <= maxToken);
    if (message.kind == orpc::BindMessage::Kind::offer ||
        message.kind == orpc::BindMessage::Kind::choice) {
      check(message.level == SecurityLevel::none || message.level == SecurityLevel::integrity ||
            message.level == SecurityLevel::privacy);
    }
  } catch (const Error& e) {
    check(e.code() == Errc::protocolError);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<uint8_t> secret(RecordLayer::kSecretSize, 0x5c);
  Script script(data, size);
  SecurityLevel level = (size > 0 && (data[0] & 1) != 0) ? SecurityLevel::privacy
                                                         : SecurityLevel::integrity;
  RecordLayer client(secret, true, level);
  RecordLayer server(secret, false, level);
  std::vector<Kept> kept;
  while (script.more()) {
    uint8_t op = script.byte();
    switch (op % 4) {
      case 0: {
        size_t maxToken = script.byte() * 64;
        readBindChecked(script.bytes(script.byte()), maxToken);
        break;
      }
      case 1: {
        std::vector<uint8_t> raw = script.bytes(script.byte());
        check(!server.open(raw).has_value());
        break;
      }
      case 2: {
        std::vector<uint8_t> frame = script.bytes(script.byte());
        // Within 16 key phases: each later phase's key is derived from the one before, and a
        // sender's numbers only grow one at a time.
        uint64_t number = script.number() & ((uint64_t{1} << (RecordLayer::kPhaseShift + 4)) - 1);
        std::vector<uint8_t> sealed = client.sealNumbered(frame, number);
        check(sealed.size() == frame.size() + RecordLayer::kOverhead);
        if (kept.size() < 64) kept.push_back({std::move(frame), std::move(sealed)});
        break;
      }
      case 3: {
        if (kept.empty()) break;
        Kept& k = kept[script.byte() % kept.size()];
        size_t position = script.byte();
        position |= size_t{script.byte()} << 8;
        std::vector<uint8_t> sealed = k.sealed;
        bool altered = position / 8 < sealed.size();
        if (altered) sealed[position / 8] ^= static_cast<uint8_t>(1u << (position % 8));
        std::optional<std::vector<uint8_t>> opened = server.open(sealed);
        if (opened) {
          check(!altered && !k.opened);
          check(*opened == k.frame);
          k.opened = true;
        }
        break;
      }
    }
  }
  return 0;
}
