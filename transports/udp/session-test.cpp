// Two sessions over an in-memory network with a virtual clock: the protocol's behaviour in time
// (handshake round trips, loss recovery, idle timeout, keepalives) checked deterministically,
// without sockets or waiting. The test plays the instance's stateless part (COOKIE, creating the
// server's session) the way udp-transport-handshake.cpp does.
#define BOOST_TEST_MODULE udp session
#include <boost/test/unit_test.hpp>

#include <uv.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "fault.h"
#include "session.h"

namespace ferry::transports::udp {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kMs = 1000000;

uint64_t digest(const uint8_t* data, size_t size) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 0x100000001b3ull;
  return hash ^ size;
}

Bytes content(size_t size, uint32_t seed) {
  Bytes out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>((seed * 131 + i * 7) >> 1);
  return out;
}

class Network : public SessionEnv {
public:
  struct Side {
    std::unique_ptr<Session> session;
    bool established = false;
    std::optional<int> ended;
    bool finished = false;
    std::vector<std::pair<size_t, uint64_t>> received;
  };

  explicit Network(std::string options = "", uint64_t oneWayNs = 5 * kMs) : _oneWay(oneWayNs) {
    std::vector<std::string> problems;
    parseOptions(options.c_str(), _options, problems);
    BOOST_REQUIRE(problems.empty());
    _budget.limit = 1ull << 30;
  }

  // Connects a client; the server's session appears once the HELLO+cookie arrives.
  void connect(uint64_t timeoutNs = 10000 * kMs) {
    client.session = std::make_unique<Session>(*this, config(SessionConfig::Role::client, 100));
    client.session->startClient(_clock + timeoutNs);
    client.session->flush();
  }

  // Loses each datagram with probability `loss` from now on (1: a black hole).
  void setLoss(double loss, uint64_t seed = 1) {
    FaultDirection d;
    d.drop = loss;
    _loss = loss > 0 ? std::make_unique<FaultInjector>(d, seed) : nullptr;
  }

  // Runs events until `until` (virtual time) or `done()`.
  template <typename Done>
  bool runUntil(uint64_t until, Done&& done) {
    uint64_t spins = 0;
    uint64_t lastClock = 0;
    while (!done()) {
      uint64_t next = UINT64_MAX;
      if (!_wire.empty()) next = _wire.begin()->first;
      for (Side* side : {&client, &server}) {
        if (!side->session || side->finished) continue;
        uint64_t deadline = side->session->deadline();
        if (deadline != 0) next = std::min(next, std::max(deadline, _clock));
      }
      if (next > until) {
        _clock = until;
        return done();
      }
      _clock = std::max(_clock, next);
      // A deadline that does not move on is a session spinning: a bug.
      spins = _clock == lastClock ? spins + 1 : 0;
      lastClock = _clock;
      BOOST_REQUIRE_MESSAGE(spins < 100000, "a session keeps a deadline in the past");
      if (!_wire.empty() && _wire.begin()->first <= _clock) {
        Datagram datagram = std::move(_wire.begin()->second);
        _wire.erase(_wire.begin());
        deliver(datagram);
      } else {
        for (Side* side : {&client, &server}) {
          if (!side->session || side->finished) continue;
          uint64_t deadline = side->session->deadline();
          if (deadline != 0 && deadline <= _clock + kGranularityNs) side->session->onTimer();
        }
      }
      for (Side* side : {&client, &server}) {
        if (side->session && !side->finished) side->session->flush();
      }
    }
    return true;
  }
  bool runFor(uint64_t duration) {
    return runUntil(_clock + duration, [] { return false; });
  }

  uint64_t clock() const { return _clock; }
  Counters& stats() { return _counters; }
  uint64_t datagrams = 0;
  uint64_t datagramsFromServer = 0;
  // Datagrams handed over in pieces: a hole of the packet buffer filled from the outbox.
  uint64_t gathered = 0;

  Side client;
  Side server;

  // SessionEnv.
  uint64_t now() override { return _clock; }
  int transmit(Session& from, const DatagramPieces& datagram) override {
    Bytes bytes = datagram.joined();
    if (datagram.count > 1) ++gathered;
    const uint8_t* data = bytes.data();
    size_t size = bytes.size();
    ++datagrams;
    if (&from == server.session.get()) ++datagramsFromServer;
    FaultCopy copies[2];
    size_t count = 1;
    if (_loss) count = _loss->decide(size, copies);
    if (count == 0) return 0;
    Datagram d;
    d.toServer = &from == client.session.get();
    d.bytes.assign(data, data + size);
    _wire.emplace(_clock + _oneWay, std::move(d));
    return 0;
  }
  void established(Session& s) override { side(s).established = true; }
  void message(Session& s, const uint8_t* data, size_t size) override {
    side(s).received.emplace_back(size, digest(data, size));
  }
  void ended(Session& s, int status) override { side(s).ended = status; }
  void finished(Session& s) override { side(s).finished = true; }
  void deadlineChanged(Session&) override {}
  void blocked(Session&) override {}
  void wantFlush(Session&) override {}
  Counters& counters() override { return _counters; }
  MemoryBudget& budget() override { return _budget; }
  void log(int, const std::string& line) override { BOOST_TEST_MESSAGE("log: " << line); }

private:
  struct Datagram {
    bool toServer = false;
    Bytes bytes;
  };

  Side& side(Session& s) { return &s == client.session.get() ? client : server; }

  SessionConfig config(SessionConfig::Role role, uint64_t id) {
    SessionConfig c;
    c.role = role;
    c.localId = id;
    c.controller = std::make_shared<CongestionController>(kBaseDatagramSize);
    c.options = &_options;
    c.maxMessageSize = 16u << 20;
    c.epoch = 0xe90c;
    static const uint8_t instance[kInstanceIdSize] = {};
    c.clientInstance = instance;
    c.pathMaxDatagram = kBaseDatagramSize;  // no PMTU probing: one size throughout
    c.peerText = role == SessionConfig::Role::client ? "server" : "client";
    c.closeToken = 0xc105e0000000ull + id;
    return c;
  }

  void deliver(const Datagram& d) {
    Header header;
    const uint8_t* frames = nullptr;
    size_t size = 0;
    BOOST_REQUIRE(decodePacket(d.bytes.data(), d.bytes.size(), header, frames, size) ==
                  DecodeError::none);
    if (d.toServer && header.type == PacketType::hello) {
      Reader in(frames, size);
      Frame frame;
      Params params;
      while (readFrame(in, frame)) {
        if (frame.type == FrameType::helloParams) {
          BOOST_REQUIRE(readParams(frame.params, frame.paramsSize, params));
        }
      }
      if (!params.hasCookie) {
        // The stateless COOKIE, straight to the client (it arrives one way later).
        Bytes cookie(kLongHeaderSize + 1 + kCookieSize + 8 + kCrcSize);
        Writer out(cookie.data(), cookie.size());
        writeLongHeader(out, PacketType::cookie, header.src, 0, 0);
        uint8_t value[kCookieSize] = {7};
        writeCookieFrame(out, value, 0xe90c);
        writeCrc(out);
        Datagram reply{false, cookie};
        _wire.emplace(_clock + _oneWay, reply);
        return;
      }
      if (server.session) {
        server.session->onHelloAgain(header.pn);
        return;
      }
      server.session = std::make_unique<Session>(*this, config(SessionConfig::Role::server, 200));
      server.session->startServer(params, header.pn, header.src);
      return;
    }
    Side& to = d.toServer ? server : client;
    if (!to.session || to.finished) return;
    switch (header.type) {
      case PacketType::cookie: {
        Reader in(frames, size);
        Frame frame;
        BOOST_REQUIRE(readFrame(in, frame));
        to.session->onCookie(frame);
        break;
      }
      case PacketType::handshake:
        to.session->onHandshakePacket(header, frames, size);
        break;
      case PacketType::shortHeader:
        to.session->onShortPacket(header, frames, size);
        break;
      default:
        break;
    }
  }

  Options _options;
  MemoryBudget _budget;
  Counters _counters{};
  uint64_t _clock = 1000000 * kMs;
  uint64_t _oneWay;
  std::multimap<uint64_t, Datagram> _wire;
  std::unique_ptr<FaultInjector> _loss;
};

BOOST_AUTO_TEST_CASE(the_handshake_takes_two_round_trips_and_the_server_confirms_on_a_third_leg) {
  Network net("initial_rtt_ms=100");
  uint64_t start = net.clock();
  net.connect();
  BOOST_REQUIRE(net.runUntil(start + 1000 * kMs, [&] { return net.client.established; }));
  // HELLO, COOKIE, HELLO+cookie, HANDSHAKE: four legs of 5 ms.
  BOOST_TEST(net.clock() - start == 20 * kMs);
  BOOST_TEST(!net.server.established);
  BOOST_REQUIRE(net.runUntil(start + 1000 * kMs, [&] { return net.server.established; }));
  BOOST_TEST(net.clock() - start == 25 * kMs);
  BOOST_TEST(net.client.session->rtt().hasSample());
  BOOST_TEST(net.client.session->serverEpoch() == 0xe90cu);
}

BOOST_AUTO_TEST_CASE(messages_cross_both_ways_once_and_in_order_over_a_lossy_network) {
  Network net("initial_rtt_ms=20,max_ack_delay_ms=5");
  net.setLoss(0.2, 9);
  net.connect();
  BOOST_REQUIRE(net.runUntil(net.clock() + 60000 * kMs,
                             [&] { return net.client.established && net.server.established; }));
  std::vector<std::pair<size_t, uint64_t>> toServer, toClient;
  for (uint32_t i = 0; i < 60; ++i) {
    Bytes a = content(i % 10 == 9 ? 200000 : (i * 997) % 5000, i);
    Bytes b = content((i * 1301) % 3000, 1000 + i);
    BOOST_REQUIRE_EQUAL(net.client.session->send(a.data(), a.size()), 0);
    BOOST_REQUIRE_EQUAL(net.server.session->send(b.data(), b.size()), 0);
    toServer.emplace_back(a.size(), digest(a.data(), a.size()));
    toClient.emplace_back(b.size(), digest(b.data(), b.size()));
  }
  net.client.session->flush();
  net.server.session->flush();
  BOOST_REQUIRE(net.runUntil(net.clock() + 600000 * kMs, [&] {
    return net.server.received.size() == toServer.size() &&
           net.client.received.size() == toClient.size();
  }));
  BOOST_TEST((net.server.received == toServer));
  BOOST_TEST((net.client.received == toClient));
  BOOST_TEST(net.stats().packets_lost > 0u);
  BOOST_TEST(!net.client.ended);
  BOOST_TEST(!net.server.ended);
  // Once everything is acknowledged nothing is held.
  net.setLoss(0);
  net.runFor(2000 * kMs);
  BOOST_TEST(net.client.session->sendQueueBytes() == 0u);
  BOOST_TEST(net.server.session->sendQueueBytes() == 0u);
  BOOST_TEST(net.client.session->packetsOutstanding() == 0u);
  BOOST_TEST(net.client.session->controller().bytesInFlight() == 0u);
  BOOST_TEST(net.server.session->reassemblyBytes() == 0u);
}

BOOST_AUTO_TEST_CASE(a_request_completed_by_its_second_packet_leaves_its_ack_to_the_reply) {
  Network net("initial_rtt_ms=20,max_ack_delay_ms=5");
  net.connect();
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs, [&] { return net.server.established; }));
  net.runFor(100 * kMs);  // the handshake's ACKs are done with
  BOOST_REQUIRE(net.client.session->packetsOutstanding() == 0u);

  // Two packets of 1200 bytes carry it whole: no ACK of its own; the reply, sent at once, carries
  // it, so the client's request is acknowledged as the reply arrives.
  Bytes request = content(2000, 1);
  net.client.session->send(request.data(), request.size());
  net.client.session->flush();
  BOOST_REQUIRE(net.client.session->packetsOutstanding() == 2u);
  uint64_t before = net.datagramsFromServer;
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs,
                             [&] { return net.server.received.size() == 1; }));
  BOOST_TEST(net.datagramsFromServer == before);
  Bytes reply = content(100, 2);
  net.server.session->send(reply.data(), reply.size());
  net.server.session->flush();
  BOOST_TEST(net.datagramsFromServer == before + 1);
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs,
                             [&] { return net.client.received.size() == 1; }));
  BOOST_TEST(net.client.session->packetsOutstanding() == 0u);
  BOOST_TEST(net.datagramsFromServer == before + 1);

  // Three packets: after the second, bytes are still missing, and the ACK goes at once.
  net.runFor(100 * kMs);
  before = net.datagramsFromServer;
  Bytes large = content(3000, 3);
  net.client.session->send(large.data(), large.size());
  net.client.session->flush();
  BOOST_REQUIRE(net.client.session->packetsOutstanding() == 3u);
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs,
                             [&] { return net.server.received.size() == 2; }));
  BOOST_TEST(net.datagramsFromServer == before + 1);
}

BOOST_AUTO_TEST_CASE(large_payloads_leave_in_pieces_from_the_outbox_and_arrive_intact) {
  Network net("initial_rtt_ms=20,max_ack_delay_ms=5");
  net.connect();
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs, [&] { return net.server.established; }));
  net.runFor(100 * kMs);
  // 500-byte messages are copied into their packets; a 6000-byte one is not.
  uint64_t before = net.gathered;
  std::vector<std::pair<size_t, uint64_t>> sent;
  for (uint32_t i = 0; i < 2; ++i) {
    Bytes small = content(500, i);
    net.client.session->send(small.data(), small.size());
    sent.emplace_back(small.size(), digest(small.data(), small.size()));
  }
  net.client.session->flush();
  BOOST_TEST(net.gathered == before);
  Bytes large = content(6000, 7);
  net.client.session->send(large.data(), large.size());
  sent.emplace_back(large.size(), digest(large.data(), large.size()));
  net.client.session->flush();
  // Every datagram is decoded, CRC checked, on arrival.
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs,
                             [&] { return net.server.received.size() == sent.size(); }));
  BOOST_TEST(net.gathered >= before + 5);
  BOOST_TEST((net.server.received == sent));
}

BOOST_AUTO_TEST_CASE(a_silent_peer_is_declared_dead_at_the_idle_timeout_and_not_before) {
  Network net("initial_rtt_ms=20,max_ack_delay_ms=5,idle_timeout_ms=2000");
  net.connect();
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs, [&] { return net.server.established; }));
  net.runFor(50 * kMs);
  uint64_t silence = net.clock();
  net.setLoss(1.0);
  Bytes call = content(3000, 1);
  net.client.session->send(call.data(), call.size());
  net.client.session->flush();
  BOOST_REQUIRE(net.runUntil(silence + 10000 * kMs, [&] { return net.client.ended.has_value(); }));
  BOOST_TEST(*net.client.ended == UV_ETIMEDOUT);
  // Idle since the last packet received, which came at most a keepalive round before the silence.
  uint64_t after = net.clock() - silence;
  BOOST_TEST(after <= 2000 * kMs + kGranularityNs);
  BOOST_TEST(after >= 2000 * kMs - 700 * kMs);
  BOOST_TEST(net.stats().pto_expirations >= 3u);
  BOOST_TEST(net.client.finished);
}

BOOST_AUTO_TEST_CASE(an_idle_session_lives_on_keepalives_for_many_idle_timeouts) {
  Network net("initial_rtt_ms=20,max_ack_delay_ms=5,idle_timeout_ms=900");
  net.connect();
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs, [&] { return net.server.established; }));
  uint64_t before = net.stats().keepalives_sent;
  net.runFor(9000 * kMs);  // ten idle timeouts
  BOOST_TEST(!net.client.ended);
  BOOST_TEST(!net.server.ended);
  uint64_t keepalives = net.stats().keepalives_sent - before;
  // One every idle/3 = 300 ms from whichever side speaks first: about 30, never a flood.
  BOOST_TEST(keepalives >= 20u);
  BOOST_TEST(keepalives <= 62u);
}

BOOST_AUTO_TEST_CASE(a_connect_to_nobody_times_out_after_backing_off) {
  Network net("initial_rtt_ms=100");
  net.setLoss(1.0);
  uint64_t start = net.clock();
  net.connect(3000 * kMs);
  BOOST_REQUIRE(net.runUntil(start + 10000 * kMs, [&] { return net.client.ended.has_value(); }));
  BOOST_TEST(*net.client.ended == UV_ETIMEDOUT);
  BOOST_TEST(net.clock() - start == 3000 * kMs);
  // PTO about 300 ms, doubling: 300, 600, 1200 ms: a handful of HELLOs, not a storm.
  BOOST_TEST(net.datagrams >= 3u);
  BOOST_TEST(net.datagrams <= 5u);
}

BOOST_AUTO_TEST_CASE(a_host_close_reaches_the_peer_as_a_clean_end) {
  Network net("initial_rtt_ms=20");
  net.connect();
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs, [&] { return net.server.established; }));
  net.client.session->closeByHost();
  BOOST_TEST((net.client.session->state() == Session::State::closing));
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs, [&] { return net.server.ended.has_value(); }));
  BOOST_TEST(*net.server.ended == 0);
  // Both linger a few PTOs, then are done without another event.
  BOOST_REQUIRE(net.runUntil(net.clock() + 5000 * kMs,
                             [&] { return net.client.finished && net.server.finished; }));
  BOOST_TEST(!net.client.ended);
}

BOOST_AUTO_TEST_CASE(a_close_without_the_peers_close_token_is_ignored_and_counted) {
  Network net("initial_rtt_ms=20");
  net.connect();
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs, [&] { return net.server.established; }));
  // Someone who knows the server's session id but not the client's token forges the client's
  // CLOSE (level none has no MAC; the token is what only the client and server saw).
  uint8_t buffer[64];
  Writer out(buffer, sizeof(buffer));
  writeShortHeader(out, 200, 1000);
  writeClose(out, kCloseNormal, 0xc105e0000000ull + 101);
  writeCrc(out);
  Header header;
  const uint8_t* frames = nullptr;
  size_t size = 0;
  BOOST_REQUIRE(decodePacket(out.data(), out.size(), header, frames, size) == DecodeError::none);
  uint64_t ignoredBefore = net.counters().closes_ignored;
  net.server.session->onShortPacket(header, frames, size);
  BOOST_TEST(net.counters().closes_ignored == ignoredBefore + 1);
  BOOST_TEST((net.server.session->state() == Session::State::open));
  BOOST_TEST(!net.server.ended.has_value());
  // The client's own CLOSE carries its token and ends the session.
  net.client.session->closeByHost();
  BOOST_REQUIRE(net.runUntil(net.clock() + 1000 * kMs, [&] { return net.server.ended.has_value(); }));
  BOOST_TEST(*net.server.ended == 0);
}

}  // namespace
}  // namespace ferry::transports::udp
