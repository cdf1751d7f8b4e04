// libFuzzer target for the udp session state machine (transports/udp/session.*): a server
// session, created as the instance creates it from a valid HELLO, then fed the datagrams a peer
// sends, with the clock moving between them. Whatever they hold (frames out of order, ACKs of
// packets never sent, DATA past every window, CLOSEs with any token, REJECTs), the session keeps
// its bounds: the reassembly memory stays within the budget and is all given back once the
// session is gone, and no event follows its end.
//
// Input: a sequence of records, each `u8 kind, u8 clock step, u16 length, length bytes`:
// kind % 4 picks a short-header packet (the bytes are its frames), a long-header HANDSHAKE, a
// HELLO repeated, or a REJECT echoing a packet number; the CRC and the session's ids are put in
// place so that the frame decoders and the state machine are what the bytes reach.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "session.h"

namespace {

using namespace ferry::transports::udp;

constexpr uint64_t kMs = 1000000;
constexpr uint64_t kServerId = 200;
constexpr uint64_t kClientId = 100;
constexpr uint64_t kBudget = 1 << 20;

class Env final : public SessionEnv {
public:
  uint64_t now() override { return clock; }
  int transmit(Session&, const DatagramPieces&) override { return 0; }
  void established(Session&) override { event(); }
  void message(Session&, const uint8_t*, size_t) override { event(); }
  void ended(Session&, int) override {
    event();
    ended_ = true;
  }
  void finished(Session&) override { finished_ = true; }
  void deadlineChanged(Session&) override {}
  void blocked(Session&) override {}
  void wantFlush(Session&) override {}
  Counters& counters() override { return counters_; }
  MemoryBudget& budget() override { return budget_; }
  void log(int, const std::string&) override {}

  void event() {
    if (ended_) std::abort();  // nothing after the end
    checkBudget();
  }
  void checkBudget() const {
    if (budget_.used > budget_.limit) std::abort();
  }

  uint64_t clock = 1000 * kMs;
  bool ended_ = false;
  bool finished_ = false;
  Counters counters_{};
  MemoryBudget budget_{kBudget, 0};
};

Params helloParams() {
  Params p;
  p.hasNonce = true;
  p.providerCount = 1;
  p.providers[0] = kProviderNone;
  p.hasLevel = true;
  p.maxMessageSize = 1 << 16;
  p.maxAckDelayUs = 5000;
  p.idleTimeoutMs = 2000;
  p.maxDatagramSize = 1400;
  p.maxOpenMessages = 16;
  p.maxOpenBytes = 1 << 16;
  p.unscheduledBytes = 4096;
  p.hasCloseToken = true;
  p.closeToken = 0x70ce;
  return p;
}

// A datagram of `type` to the server session, `body` as its frames, with a valid CRC; decoded
// again as the instance would before handing it on.
std::vector<uint8_t> datagram(PacketType type, uint64_t pn, const uint8_t* body, size_t size) {
  std::vector<uint8_t> out(64 + size);
  Writer w(out.data(), out.size());
  if (type == PacketType::shortHeader) {
    writeShortHeader(w, kServerId, pn);
  } else {
    writeLongHeader(w, type, kServerId, kClientId, pn);
  }
  w.bytes(body, size);
  writeCrc(w);
  out.resize(w.size());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Options options = [] {
    Options o;
    o.idleTimeoutMs = 2000;
    o.initialRttMs = 20;
    o.maxAckDelayMs = 5;
    o.sessionWindow = 1 << 18;
    o.unscheduledBytes = 4096;
    o.messageWindow = 1 << 16;
    o.maxOpenMessages = 16;
    return o;
  }();
  Env env;
  {
    SessionConfig config;
    config.role = SessionConfig::Role::server;
    config.localId = kServerId;
    config.controller = std::make_shared<CongestionController>(kBaseDatagramSize);
    config.options = &options;
    config.maxMessageSize = 1 << 16;
    config.epoch = 0xe90c;
    config.pathMaxDatagram = kBaseDatagramSize;
    config.peerText = "fuzzer";
    config.closeToken = 0x5e55;
    Session session(env, config);
    session.startServer(helloParams(), 1, kClientId);
    session.flush();
    uint64_t pn = 2;
    size_t at = 0;
    while (at + 4 <= size && !env.finished_) {
      uint8_t kind = data[at];
      env.clock += uint64_t{data[at + 1]} * kMs;
      size_t length = std::min<size_t>(size - at - 4, data[at + 2] | data[at + 3] << 8);
      const uint8_t* body = data + at + 4;
      at += 4 + length;
      switch (kind % 4) {
        case 0:
        case 1: {
          PacketType type = kind % 4 == 0 ? PacketType::shortHeader : PacketType::handshake;
          std::vector<uint8_t> bytes = datagram(type, pn++, body, length);
          Header header;
          const uint8_t* frames = nullptr;
          size_t framesSize = 0;
          if (decodePacket(bytes.data(), bytes.size(), header, frames, framesSize) !=
              DecodeError::none) {
            std::abort();  // what we just encoded must decode
          }
          if (type == PacketType::shortHeader) {
            session.onShortPacket(header, frames, framesSize);
          } else {
            session.onHandshakePacket(header, frames, framesSize);
          }
          break;
        }
        case 2:
          session.onHelloAgain(pn++);
          break;
        case 3:
          session.onReject(length > 0 ? body[0] : 0, 0xe90c);
          break;
      }
      env.checkBudget();
      if (session.state() != Session::State::finished) {
        session.onTimer();
        session.flush();
      }
      env.checkBudget();
    }
  }
  // The session is gone: every byte it buffered went back.
  if (env.budget_.used != 0) std::abort();
  return 0;
}
