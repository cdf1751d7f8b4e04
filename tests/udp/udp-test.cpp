// The udp plugin under impairment, restart and attack, driven through its C ABI.
//
// Every impaired run checks the two invariants of the transport: each message arrives exactly
// once, in order, byte-identical (a digest per message) or the session reports a defined error;
// and the plugin's memory levels (queued, reassembly, outstanding, in flight) return to the same
// plateau after every round. Impairments come from the fault layer of the plugin's test-only
// build (fault-layer.h), deterministic per seed; raw-socket cases craft datagrams with the
// plugin's wire module. The last cases check how settings reach an instance, and what the
// shipping build leaves out.
#define BOOST_TEST_MODULE udp transport
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "udp-harness.h"
#include "wire.h"

namespace ferry::udptest {
namespace {

namespace wire = ferry::transports::udp;
using Clock = std::chrono::steady_clock;
using Digests = std::vector<std::pair<size_t, uint64_t>>;

// Short timers, so that impaired runs take seconds (PROTOCOL.md, "Settings, counters and test hooks").
const std::string kFast = "initial_rtt_ms=20,max_ack_delay_ms=5,idle_timeout_ms=10000";
// The same with datagrams kept at 1200 bytes, as on most Internet paths: messages are cut into
// many more packets, and the fault layer gets many more of them to work on.
const std::string kFastSmall = kFast + ",pmtu=0";
constexpr milliseconds kPatience{60000};

long long msSince(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

void report(const char* who, const UdpCounters& c) {
  BOOST_TEST_MESSAGE(who << ": datagrams out " << c.datagrams_sent << " in " << c.datagrams_received
                         << ", lost " << c.packets_lost << ", PTOs " << c.pto_expirations
                         << ", duplicates dropped " << c.dropped_duplicate << ", CRC "
                         << c.dropped_crc << ", malformed " << c.dropped_malformed
                         << ", violations " << c.protocol_violations << ", max datagram "
                         << c.now_max_datagram_size << " (probes " << c.pmtu_probes_sent
                         << ", raised " << c.pmtu_raised << ", black holes " << c.pmtu_black_holes
                         << "), spurious losses " << c.spurious_losses << ", srtt "
                         << c.now_smoothed_rtt_us
                         << " us; now: queued " << c.now_send_queue_bytes << " B, outstanding "
                         << c.now_packets_outstanding << ", in flight " << c.now_bytes_in_flight
                         << " B, reassembly " << c.now_reassembly_bytes << " B");
}

// --- Traffic. ---

// What one round sends each way: empty, tiny, around one datagram, around the unscheduled
// 256 KiB, and one of 1 MiB (credit-paced beyond 256 KiB).
std::vector<size_t> roundSizes() {
  std::vector<size_t> sizes = {0, 1, 64, 1200, 1500, 5000, 20000, 65536, 262144, 270000, 1 << 20};
  for (uint32_t i = 0; i < 30; ++i) sizes.push_back(8 + (i * 7919u) % 3000u);
  return sizes;
}

Bytes message(uint32_t stream, uint32_t index, size_t size) {
  return size == 0 ? Bytes() : tagged(stream, index, size);
}

void sendAll(Instance& from, ferry_conn_id conn, uint32_t stream, const std::vector<size_t>& sizes,
             Digests& expected) {
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    Bytes m = message(stream, i, sizes[i]);
    expected.emplace_back(m.size(), digest(m.data(), m.size()));
    BOOST_REQUIRE_EQUAL(from.send(conn, m), 0);
  }
}

void checkArrived(Instance& to, ferry_conn_id conn, const Digests& expected) {
  const Digests& got = to.digests[conn];
  BOOST_REQUIRE_EQUAL(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != expected[i]) {
      BOOST_ERROR("message " << i << " is not the one sent " << i << "th: lost, duplicated, "
                             << "reordered or altered");
      return;
    }
  }
}

// Levels that must return to a plateau once traffic stops.
struct Levels {
  uint64_t sessions, halfOpen, reassembly, sendQueue, outstanding, inFlight, controllers, kernel,
      held;
  bool operator==(const Levels&) const = default;
};

Levels levels(const Instance& instance) {
  UdpCounters c = instance.counters();
  return {c.now_sessions,    c.now_half_open,       c.now_reassembly_bytes,
          c.now_send_queue_bytes, c.now_packets_outstanding, c.now_bytes_in_flight,
          c.now_controllers, c.now_kernel_queue_bytes, c.now_fault_held};
}

bool quiet(const Instance& instance) {
  Levels l = levels(instance);
  return l.reassembly == 0 && l.sendQueue == 0 && l.outstanding == 0 && l.inFlight == 0 &&
         l.kernel == 0 && l.held == 0;
}

// Rounds of traffic both ways between two instances impaired by `fault`; after each round every
// message is checked and the levels must be what they were after the first. `check` may look at
// both instances at the end.
void impairedRounds(const std::string& options, const std::string& fault,
                    const std::function<void(Instance& server, Instance& client)>& check = {},
                    uint32_t rounds = 5) {
  Harness harness;
  Instance& server = harness.instance(options, fault);
  Instance& client = harness.instance(options, fault);
  server.keepDigestsOnly = client.keepDigestsOnly = true;
  Link link = connectPair(harness, server, client, server.listen(), kPatience);
  Digests toServer, toClient;
  std::optional<std::pair<Levels, Levels>> plateau;
  std::vector<size_t> sizes = roundSizes();
  for (uint32_t round = 0; round < rounds; ++round) {
    BOOST_TEST_CONTEXT("round " << round) {
      auto start = Clock::now();
      sendAll(client, link.client, 2 * round, sizes, toServer);
      sendAll(server, link.server, 2 * round + 1, sizes, toClient);
      bool arrived = harness.runBounded(
          [&] {
            return server.receivedCount(link.server) == toServer.size() &&
                   client.receivedCount(link.client) == toClient.size();
          },
          kPatience);
      if (!arrived) {
        report("client", client.counters());
        report("server", server.counters());
        BOOST_TEST_MESSAGE("server has " << server.receivedCount(link.server) << " of "
                                         << toServer.size() << ", client "
                                         << client.receivedCount(link.client) << " of "
                                         << toClient.size());
      }
      BOOST_REQUIRE_MESSAGE(arrived, "every message of the round arrived");
      BOOST_TEST_MESSAGE("round " << round << ": " << msSince(start) << " ms");
      checkArrived(server, link.server, toServer);
      checkArrived(client, link.client, toClient);
      harness.runUntil([&] { return quiet(server) && quiet(client); }, kPatience,
                       "both instances to go quiet");
      std::pair<Levels, Levels> now{levels(server), levels(client)};
      if (!plateau) plateau = now;
      BOOST_TEST((now.first == plateau->first), "the server's levels grew");
      BOOST_TEST((now.second == plateau->second), "the client's levels grew");
    }
  }
  BOOST_TEST(server.closed.empty());
  BOOST_TEST(client.closed.empty());
  report("client", client.counters());
  report("server", server.counters());
  if (check) check(server, client);
}

// --- Crafted datagrams. ---

Bytes finish(wire::Writer& out, std::vector<uint8_t>& buffer) {
  wire::writeCrc(out);
  BOOST_REQUIRE(!out.overflow());
  buffer.resize(out.size());
  return buffer;
}

wire::Params clientParams() {
  wire::Params p;
  p.providerCount = 1;
  p.providers[0] = wire::kProviderNone;
  p.hasLevel = true;
  p.maxMessageSize = 1 << 20;
  p.maxAckDelayUs = 5000;
  p.idleTimeoutMs = 10000;
  p.maxDatagramSize = 1200;
  p.maxOpenMessages = 16;
  p.maxOpenBytes = 2 << 20;
  p.unscheduledBytes = 65536;
  p.hasNonce = true;
  for (size_t i = 0; i < wire::kNonceSize; ++i) p.nonce[i] = static_cast<uint8_t>(i * 7 + 1);
  return p;
}

// A HELLO from `src`, padded to `size` bytes, with a cookie (and the `none` provider's empty
// CRYPTO frame) when one is given.
Bytes hello(uint64_t src, uint64_t pn, const uint8_t* cookie = nullptr, size_t size = 1200) {
  std::vector<uint8_t> buffer(size);
  wire::Writer out(buffer.data(), buffer.size());
  wire::writeLongHeader(out, wire::PacketType::hello, 0, src, pn);
  wire::Params p = clientParams();
  if (cookie != nullptr) {
    p.hasCookie = true;
    std::memcpy(p.cookie, cookie, wire::kCookieSize);
  }
  wire::writeParams(out, wire::FrameType::helloParams, p);
  if (cookie != nullptr) wire::writeCrypto(out, 0, nullptr, 0);
  out.zeros(out.remaining() - wire::kCrcSize);
  return finish(out, buffer);
}

// A short-header packet for session `dst` with `frames` already encoded, padded to `size`.
Bytes shortPacket(uint64_t dst, uint64_t pn, const Bytes& frames, size_t size = 0) {
  std::vector<uint8_t> buffer(std::max(size, wire::kShortHeaderSize + frames.size() + 4));
  wire::Writer out(buffer.data(), buffer.size());
  wire::writeShortHeader(out, dst, pn);
  out.bytes(frames.data(), frames.size());
  out.zeros(out.remaining() - wire::kCrcSize);
  return finish(out, buffer);
}

Bytes dataFrame(uint64_t msgId, uint32_t total, uint32_t offset, const Bytes& payload) {
  std::vector<uint8_t> buffer(64 + payload.size());
  wire::Writer out(buffer.data(), buffer.size());
  wire::writeDataHeader(out, msgId, total, offset, static_cast<uint16_t>(payload.size()));
  out.bytes(payload.data(), payload.size());
  buffer.resize(out.size());
  return buffer;
}

struct Decoded {
  wire::Header header;
  std::vector<wire::Frame> frames;
};

std::optional<Decoded> decode(const Bytes& datagram) {
  Decoded d;
  const uint8_t* frames = nullptr;
  size_t size = 0;
  if (wire::decodePacket(datagram.data(), datagram.size(), d.header, frames, size) !=
      wire::DecodeError::none) {
    return std::nullopt;
  }
  wire::Reader in(frames, size);
  wire::Frame frame;
  while (wire::readFrame(in, frame)) d.frames.push_back(frame);
  if (in.failed()) return std::nullopt;
  return d;
}

// A client made of a raw socket and the wire module: it can finish a handshake and then send
// what no well-behaved peer would.
class RawClient {
public:
  RawClient(Harness& harness, std::string port) : _harness(harness), _port(std::move(port)) {}

  // HELLO, COOKIE, HELLO+cookie, HANDSHAKE; returns the server's session id.
  uint64_t handshake() {
    raw.sendTo(_port, hello(_id, _pn++));
    Decoded cookie = await(wire::PacketType::cookie);
    BOOST_REQUIRE(cookie.header.dst == _id);
    raw.sendTo(_port, hello(_id, _pn++, cookie.frames.at(0).cookie));
    Decoded handshake = await(wire::PacketType::handshake);
    _serverId = handshake.header.src;
    return _serverId;
  }

  // A short-header packet with `frames` (padded to `size`) to the server's session.
  void sendShort(const Bytes& frames, size_t size = 0) {
    raw.sendTo(_port, shortPacket(_serverId, _pn++, frames, size));
  }

  Decoded await(wire::PacketType type) {
    std::optional<Decoded> found;
    _harness.runUntil(
        [&] {
          for (const Bytes& datagram : raw.receiveAll()) {
            auto d = decode(datagram);
            if (d && d->header.type == type) found = d;
          }
          return found.has_value();
        },
        milliseconds(5000), std::string("a ") + wire::packetTypeName(type) + " from the server");
    return *found;
  }

  // HELLO, COOKIE, HELLO+cookie: true when the server answers with a HANDSHAKE within `wait`.
  bool tryHandshake(milliseconds wait) {
    raw.sendTo(_port, hello(_id, _pn++));
    Decoded cookie = await(wire::PacketType::cookie);
    raw.sendTo(_port, hello(_id, _pn++, cookie.frames.at(0).cookie));
    bool answered = false;
    _harness.runBounded(
        [&] {
          for (const Bytes& datagram : raw.receiveAll()) {
            auto d = decode(datagram);
            if (d && d->header.type == wire::PacketType::handshake) answered = true;
          }
          return answered;
        },
        wait);
    return answered;
  }

  RawSocket raw;

private:
  Harness& _harness;
  std::string _port;
  uint64_t _id = 0x1122334455667788ull;
  uint64_t _pn = 0;
  uint64_t _serverId = 0;
};

uint64_t dropTotal(const UdpCounters& c) {
  return c.dropped_malformed + c.dropped_crc + c.dropped_version + c.dropped_unknown_session +
         c.dropped_unexpected + c.dropped_wrong_address + c.rejects_ignored;
}

// --- Impairments. ---

BOOST_AUTO_TEST_CASE(every_message_arrives_once_in_order_with_ten_percent_loss_both_ways) {
  impairedRounds(kFastSmall, "seed=11,dir=tx,drop=0.1");
  impairedRounds(kFast, "seed=11,dir=tx,drop=0.1");
}

BOOST_AUTO_TEST_CASE(every_message_arrives_once_in_order_with_thirty_percent_loss_both_ways) {
  impairedRounds(kFastSmall, "seed=12,dir=tx,drop=0.3");
}

BOOST_AUTO_TEST_CASE(half_of_all_datagrams_duplicated_deliver_nothing_twice) {
  impairedRounds(kFastSmall, "seed=13,dir=tx,dup=0.5");
  impairedRounds(kFast, "seed=13,dir=tx,dup=0.5");
}

BOOST_AUTO_TEST_CASE(a_quarter_of_all_datagrams_reordered_deliver_everything_in_order) {
  impairedRounds(kFastSmall, "seed=14,dir=tx,reorder=0.25,reorder_ms=10");
  impairedRounds(kFast, "seed=14,dir=tx,reorder=0.25,reorder_ms=10");
}

BOOST_AUTO_TEST_CASE(truncated_and_corrupted_datagrams_are_all_caught_and_counted) {
  // On receipt, so that every injected fault reaches the decoder.
  impairedRounds(kFastSmall, "seed=15,dir=rx,truncate=0.01,corrupt=0.01",
                 [](Instance& server, Instance& client) {
    for (Instance* instance : {&server, &client}) {
      UdpCounters c = instance->counters();
      uint64_t injected = c.fault_rx_truncated + c.fault_rx_corrupted;
      BOOST_TEST_MESSAGE("injected " << c.fault_rx_truncated << " truncations and "
                                     << c.fault_rx_corrupted << " bit flips");
      BOOST_TEST(injected > 0u);
      // Every damaged datagram is dropped: one both cut and flipped counts twice as injected
      // and once as dropped.
      uint64_t dropped = c.dropped_crc + c.dropped_malformed;
      BOOST_TEST(dropped <= injected);
      BOOST_TEST(dropped >= std::max(c.fault_rx_truncated, c.fault_rx_corrupted),
                 "injected faults went undetected: " << c.dropped_crc << " CRC + "
                                                     << c.dropped_malformed << " malformed for "
                                                     << injected);
      BOOST_TEST(c.protocol_violations == 0u, "a damaged datagram got past the CRC");
    }
  });
}

BOOST_AUTO_TEST_CASE(truncated_to_nothing_datagrams_go_out_empty_and_are_dropped_as_malformed) {
  // On the way out, so that empty datagrams reach the send paths (the loop's uv_udp_try_send,
  // which asserts on a send of no buffers; the fault timer's, for the held ones) and the peer's
  // decoder. Every message still arrives: recovery repeats what was cut.
  const std::string fault = "seed=16,dir=tx,truncate=0.05,truncate_max=0,reorder=0.05,reorder_ms=5";
  impairedRounds(kFastSmall, fault, [](Instance& server, Instance& client) {
    for (auto [sender, receiver] : {std::pair{&server, &client}, std::pair{&client, &server}}) {
      UdpCounters out = sender->counters();
      UdpCounters in = receiver->counters();
      BOOST_TEST_MESSAGE("sent " << out.fault_tx_truncated << " empty, "
                                 << in.dropped_malformed << " dropped as malformed");
      BOOST_TEST(out.fault_tx_truncated > 0u);
      BOOST_TEST(in.dropped_malformed > 0u, "no empty datagram reached the peer");
      BOOST_TEST(in.dropped_malformed <= out.fault_tx_truncated);
      BOOST_TEST(in.dropped_crc == 0u, "an empty datagram was read as a damaged one");
      BOOST_TEST(in.protocol_violations == 0u);
    }
  }, 2);
}

BOOST_AUTO_TEST_CASE(sixteen_mebibytes_complete_under_five_percent_loss) {
  Harness harness;
  for (const char* fault : {"", "seed=21,dir=tx,drop=0.05"}) {
    BOOST_TEST_CONTEXT("fault '" << fault << "'") {
      Instance& server = harness.instance(kFast, fault);
      Instance& client = harness.instance(kFast, fault);
      server.keepDigestsOnly = true;
      Link link = connectPair(harness, server, client, server.listen(), kPatience);
      Bytes big = pattern(16 << 20, 77);
      auto start = Clock::now();
      BOOST_REQUIRE_EQUAL(client.send(link.client, big), 0);
      harness.runUntil([&] { return server.receivedCount(link.server) == 1; }, kPatience,
                       "16 MiB");
      long long ms = msSince(start);
      BOOST_TEST_MESSAGE("16 MiB with fault '" << fault << "': " << ms << " ms ("
                                               << (16.0 * 8 * 1.048576 / (ms / 1000.0))
                                               << " Mbit/s)");
      BOOST_TEST((server.digests[link.server][0] == std::make_pair(big.size(), digest(big.data(), big.size()))));
      report("client", client.counters());
      // Nothing is held once the transfer is acknowledged.
      harness.runUntil([&] { return quiet(server) && quiet(client); }, kPatience,
                       "both instances to go quiet");
      BOOST_TEST(client.closed.empty());
      harness.destroy(client);
      harness.destroy(server);
    }
  }
}

// --- Sends from other threads. ---

// The stream and index a tagged() message carries.
std::pair<uint32_t, uint32_t> tagOf(const Bytes& message) {
  uint32_t stream = 0;
  uint32_t index = 0;
  for (int i = 0; i < 4; ++i) {
    stream |= uint32_t{message.at(i)} << (8 * i);
    index |= uint32_t{message.at(4 + i)} << (8 * i);
  }
  return {stream, index};
}

// Checks that `got` holds, per stream, exactly messages 0..count-1 of what sizeOf made, in order.
void checkStreams(const std::vector<Bytes>& got, const std::vector<uint32_t>& streams,
                  uint32_t count, const std::function<size_t(uint32_t, uint32_t)>& sizeOf) {
  std::map<uint32_t, uint32_t> next;
  for (const Bytes& m : got) {
    BOOST_REQUIRE_GE(m.size(), 8u);
    auto [stream, index] = tagOf(m);
    uint32_t expected = next[stream]++;
    if (index != expected || m != tagged(stream, index, sizeOf(stream, index))) {
      BOOST_ERROR("stream " << stream << ": message " << index << " came where " << expected
                            << " was due");
      return;
    }
  }
  for (uint32_t stream : streams) BOOST_CHECK_EQUAL(next[stream], count);
  BOOST_CHECK_EQUAL(next.size(), streams.size());
}

BOOST_AUTO_TEST_CASE(sends_from_four_threads_at_once_arrive_once_each_in_order_under_loss) {
  BOOST_REQUIRE(plugin().table->send_any_thread != nullptr);
  // Five percent of datagrams dropped both ways: the loop retransmits and takes ACKs while the
  // senders' threads send on the same session. The server echoes every message from inside its
  // received event (send_any_thread on the loop's thread, while it is inside an event), so the
  // client's session also receives while its senders send.
  Harness harness;
  Instance& server = harness.instance(kFastSmall, "seed=31,dir=tx,drop=0.05");
  Instance& client = harness.instance(kFastSmall, "seed=31,dir=tx,drop=0.05");
  Link link = connectPair(harness, server, client, server.listen(), kPatience);
  constexpr uint32_t kThreads = 4;
  constexpr uint32_t kEach = 400;
  // Mostly a datagram or less (mostly written by the senders), every 40th a 40 KiB message
  // cut into many (the loop sends these).
  auto sizeOf = [](uint32_t stream, uint32_t i) -> size_t {
    return i % 40 == 39 ? 40 * 1024 : 8 + ((i + 1) * (stream + 3) * 7919u) % 1500u;
  };
  int echoFailures = 0;
  server.onReceived = [&](ferry_conn_id conn, const uint8_t* data, size_t size) {
    if (server.sendAnyThread(conn, Bytes(data, data + size)) != 0) ++echoFailures;
  };
  std::atomic<int> failures{0};
  std::vector<std::thread> senders;
  for (uint32_t t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (uint32_t i = 0; i < kEach; ++i) {
        if (client.sendAnyThread(link.client, tagged(t, i, sizeOf(t, i))) != 0) ++failures;
      }
    });
  }
  bool arrived = harness.runBounded(
      [&] { return client.receivedCount(link.client) >= kThreads * kEach; }, kPatience);
  for (std::thread& sender : senders) sender.join();
  report("client", client.counters());
  report("server", server.counters());
  BOOST_REQUIRE_MESSAGE(arrived, "every message and its echo arrived: the server has "
                                     << server.receivedCount(link.server) << ", the client "
                                     << client.receivedCount(link.client) << " of "
                                     << kThreads * kEach);
  BOOST_CHECK_EQUAL(failures.load(), 0);
  BOOST_CHECK_EQUAL(echoFailures, 0);
  std::vector<uint32_t> streams{0, 1, 2, 3};
  checkStreams(server.received[link.server], streams, kEach, sizeOf);
  checkStreams(client.received[link.client], streams, kEach, sizeOf);
  UdpCounters c = client.counters();
  BOOST_TEST(c.fault_tx_dropped > 0u, "the fault layer dropped nothing");
  BOOST_TEST(c.packets_lost + c.pto_expirations > 0u, "nothing was sent again");
  BOOST_TEST(c.protocol_violations == 0u);
  BOOST_TEST(server.closed.empty());
  BOOST_TEST(client.closed.empty());
}

BOOST_AUTO_TEST_CASE(sends_from_another_thread_racing_close_get_enotconn_once_it_is_closed) {
  BOOST_REQUIRE(plugin().table->send_any_thread != nullptr);
  Harness harness;
  Instance& server = harness.instance(kFast);
  Instance& client = harness.instance(kFast);
  Link link = connectPair(harness, server, client, server.listen(), kPatience);
  auto sizeOf = [](uint32_t, uint32_t i) -> size_t { return 8 + i % 700; };
  std::atomic<bool> started{false};
  std::atomic<int> unexpected{0};
  std::atomic<int> accepted{0};
  std::atomic<int> sentAfterRefusal{0};
  std::atomic<int> refusals{0};
  // Sends until the close has refused it many times (or the patience runs out).
  std::thread sender([&] {
    auto deadline = Clock::now() + kPatience;
    for (uint32_t i = 0; refusals.load() < 1000 && Clock::now() < deadline; ++i) {
      int rc = client.sendAnyThread(link.client, tagged(0, i, sizeOf(0, i)));
      started = true;
      if (rc == 0) {
        ++accepted;
        if (refusals.load() > 0) ++sentAfterRefusal;
      } else if (rc == UV_ENOTCONN) {
        ++refusals;
      } else {
        ++unexpected;
      }
      if (i % 64 == 0) std::this_thread::yield();
    }
  });
  harness.runUntil([&] { return started.load() && server.receivedCount(link.server) > 20; },
                   kPatience, "the first messages");
  client.close(link.client);
  sender.join();
  harness.runUntil([&] { return server.closed.count(link.server) == 1; }, kPatience,
                   "the server to hear the close");
  BOOST_CHECK_EQUAL(unexpected.load(), 0);
  BOOST_CHECK_EQUAL(sentAfterRefusal.load(), 0);
  BOOST_CHECK_EQUAL(refusals.load(), 1000);
  // What arrived is what was sent, from the first message on, without a gap.
  const std::vector<Bytes>& got = server.received[link.server];
  BOOST_TEST(got.size() <= static_cast<size_t>(accepted.load()));
  for (uint32_t i = 0; i < got.size(); ++i) {
    if (got[i] != tagged(0, i, sizeOf(0, i))) {
      BOOST_ERROR("message " << i << " is not the one sent " << i << "th");
      break;
    }
  }
}

// Sends `count` tagged messages of stream 0 from a new thread, which the caller joins.
std::thread sendFromAnotherThread(Instance& from, ferry_conn_id conn, uint32_t count,
                                  const std::function<size_t(uint32_t, uint32_t)>& sizeOf,
                                  std::vector<int>& results) {
  return std::thread([&from, conn, count, sizeOf, &results] {
    for (uint32_t i = 0; i < count; ++i) {
      results.push_back(from.sendAnyThread(conn, tagged(0, i, sizeOf(0, i))));
    }
  });
}

BOOST_AUTO_TEST_CASE(sends_from_another_thread_while_the_loop_is_inside_an_event_are_handed_off_in_order) {
  BOOST_REQUIRE(plugin().table->send_any_thread != nullptr);
  Harness harness;
  Instance& server = harness.instance(kFast);
  Instance& client = harness.instance(kFast);
  Link link = connectPair(harness, server, client, server.listen(), kPatience);
  // One stream to the server, sent in this order:
  //   0..59 from a thread while the client's loop is inside its `received` event: handed off;
  //   60 by send() on the loop's thread, still inside the event;
  //   61..99 from a thread, still inside the event: handed off;
  //   100..199 from a thread while the loop runs a check callback of this test, before the
  //   client's own check phase drained 61..99: that thread takes the instance lock itself,
  //   except for the messages above 8 KiB (kSenderFlushMax), which it hands off.
  // A message queued under the lock before the handed-off ones drained would overtake them.
  auto sizeOf = [](uint32_t, uint32_t i) -> size_t {
    return i % 25 == 24 ? 20000 : 8 + (i * 7919u) % 1500u;
  };
  auto sendRange = [&](uint32_t first, uint32_t end) {
    int failures = 0;
    std::thread([&] {
      for (uint32_t i = first; i < end; ++i) {
        if (client.sendAnyThread(link.client, tagged(0, i, sizeOf(0, i))) != 0) ++failures;
      }
    }).join();
    return failures;
  };
  int failures = 0;
  int sendResult = -1;
  bool inEvent = false;
  client.onReceived = [&](ferry_conn_id, const uint8_t*, size_t) {
    failures += sendRange(0, 60);
    sendResult = client.send(link.client, tagged(0, 60, sizeOf(0, 60)));
    failures += sendRange(61, 100);
    inEvent = true;
  };
  // Check handles started later run earlier in libuv's check phase: this one before the
  // client's (started when the instance was created).
  struct AfterEvent {
    uv_check_t check{};
    std::function<void()> run;
    bool closed = false;
  } after;
  uint64_t handedOffBefore = 0;
  after.run = [&] {
    if (!inEvent) return;
    inEvent = false;
    handedOffBefore = client.counters().now_handoff_bytes;
    failures += sendRange(100, 200);
  };
  uv_check_init(harness.loop(), &after.check);
  after.check.data = &after;
  uv_check_start(&after.check, [](uv_check_t* check) { static_cast<AfterEvent*>(check->data)->run(); });
  BOOST_REQUIRE_EQUAL(server.send(link.server, pattern(16, 1)), 0);
  bool arrived = harness.runBounded([&] { return server.receivedCount(link.server) >= 200; },
                                    kPatience);
  uv_close(reinterpret_cast<uv_handle_t*>(&after.check),
           [](uv_handle_t* handle) { static_cast<AfterEvent*>(handle->data)->closed = true; });
  harness.runUntil([&] { return after.closed; }, kPatience, "the test's check handle to close");
  BOOST_REQUIRE_MESSAGE(arrived, "every message arrived: the server has "
                                     << server.receivedCount(link.server) << " of 200");
  BOOST_CHECK_EQUAL(failures, 0);
  BOOST_CHECK_EQUAL(sendResult, 0);
  BOOST_TEST(handedOffBefore > 0u, "messages 61..99 were drained before the test's check ran");
  checkStreams(server.received[link.server], {0}, 200, sizeOf);
  UdpCounters c = client.counters();
  uint32_t large = 0;
  for (uint32_t i = 100; i < 200; ++i) large += sizeOf(0, i) > 8 * 1024 ? 1 : 0;
  BOOST_TEST(large == 4u);
  BOOST_TEST(c.any_thread_handed_off == 99u + large);
  BOOST_TEST(c.any_thread_queued + c.any_thread_flushed == 100u - large);
  BOOST_TEST(c.now_handoff_bytes == 0u);
}

// A connected pair whose client, inside a `received` event, has a thread hand off `count`
// messages of `size` bytes (the results in `results`), then runs `then` still inside the event.
struct HandOffInsideEvent {
  Harness harness;
  Instance& server = harness.instance(kFast);
  Instance& client = harness.instance(kFast);
  Link link = connectPair(harness, server, client, server.listen(), kPatience);
  std::vector<int> results;

  void start(uint32_t count, size_t size, std::function<void()> then) {
    client.onReceived = [this, count, size, then](ferry_conn_id, const uint8_t*, size_t) {
      auto sizeOf = [size](uint32_t, uint32_t) { return size; };
      sendFromAnotherThread(client, link.client, count, sizeOf, results).join();
      then();
    };
    BOOST_REQUIRE_EQUAL(server.send(link.server, pattern(16, 1)), 0);
  }
};

BOOST_AUTO_TEST_CASE(sends_from_another_thread_handed_off_to_a_connection_closed_before_the_drain_are_dropped) {
  BOOST_REQUIRE(plugin().table->send_any_thread != nullptr);
  // The event closes the connection before the loop could drain the messages handed off; then
  // another send is refused.
  HandOffInsideEvent pair;
  constexpr uint32_t kCount = 20;
  int afterClose = 0;
  pair.start(kCount, 1000, [&] {
    pair.client.close(pair.link.client);
    std::thread late([&] {
      afterClose = pair.client.sendAnyThread(pair.link.client, tagged(1, 0, 1000));
    });
    late.join();
  });
  pair.harness.runUntil(
      [&] {
        return pair.server.closed.count(pair.link.server) == 1 &&
               pair.client.closed.count(pair.link.client) == 1;
      },
      kPatience, "both sides to close");
  BOOST_TEST(pair.results == std::vector<int>(kCount, 0), boost::test_tools::per_element());
  BOOST_TEST(afterClose == UV_ENOTCONN);
  BOOST_TEST(pair.server.receivedCount(pair.link.server) == 0u);
  UdpCounters c = pair.client.counters();
  BOOST_TEST(c.any_thread_handed_off == kCount);
  BOOST_TEST(c.now_handoff_bytes == 0u);
  BOOST_TEST(c.now_send_queue_bytes == 0u);
}

BOOST_AUTO_TEST_CASE(sends_from_another_thread_handed_off_when_the_instance_is_destroyed_are_never_sent) {
  BOOST_REQUIRE(plugin().table->send_any_thread != nullptr);
  // Messages of 64 KiB held by the hand-off (ASan reports them if destroy leaks them) when the
  // event destroys the client.
  HandOffInsideEvent pair;
  constexpr uint32_t kCount = 16;
  pair.start(kCount, 64 * 1024, [&] { pair.client.destroy(); });
  pair.harness.runUntil(
      [&] { return pair.client.doneCalls == 1 && pair.server.closed.count(pair.link.server) == 1; },
      kPatience, "the client's destruction and the server to hear it");
  BOOST_TEST(pair.results == std::vector<int>(kCount, 0), boost::test_tools::per_element());
  BOOST_TEST(pair.server.receivedCount(pair.link.server) == 0u);
}

// --- Liveness. ---

BOOST_AUTO_TEST_CASE(an_idle_session_stays_open_for_many_idle_timeouts_thanks_to_keepalives) {
  const std::string options = "initial_rtt_ms=20,max_ack_delay_ms=5,idle_timeout_ms=600";
  Harness harness;
  Instance& server = harness.instance(options);
  Instance& client = harness.instance(options);
  Link link = connectPair(harness, server, client, server.listen());
  // Five idle timeouts with nothing to say, as during a long call.
  harness.runFor(milliseconds(3000));
  BOOST_TEST(client.closed.empty());
  BOOST_TEST(server.closed.empty());
  uint64_t keepalives = client.counters().keepalives_sent + server.counters().keepalives_sent;
  BOOST_TEST(keepalives >= 5u, keepalives << " keepalives");
  Bytes ping = pattern(64, 1);
  BOOST_REQUIRE_EQUAL(client.send(link.client, ping), 0);
  BOOST_REQUIRE_EQUAL(server.send(link.server, ping), 0);
  harness.runUntil(
      [&] { return server.receivedCount(link.server) == 1 && client.receivedCount(link.client) == 1; },
      kPatience, "a message each way after the idle time");
}

BOOST_AUTO_TEST_CASE(a_black_holed_server_makes_the_client_close_with_an_error_at_the_idle_timeout) {
  const std::string options = "initial_rtt_ms=20,max_ack_delay_ms=5,idle_timeout_ms=1500";
  Harness harness;
  Instance& server = harness.instance(options);
  Instance& client = harness.instance(options);
  Link link = connectPair(harness, server, client, server.listen());
  BOOST_REQUIRE_EQUAL(client.send(link.client, pattern(100, 1)), 0);
  harness.runUntil([&] { return server.receivedCount(link.server) == 1; }, kPatience, "a message");
  server.setFault("blackhole=1");
  auto start = Clock::now();
  // A call in flight when the server vanished.
  BOOST_REQUIRE_EQUAL(client.send(link.client, pattern(5000, 2)), 0);
  harness.runUntil([&] { return client.closed.count(link.client) != 0; }, milliseconds(20000),
                   "the client to give up");
  long long ms = msSince(start);
  BOOST_TEST_MESSAGE("the client gave up after " << ms << " ms (idle timeout 1500 ms)");
  BOOST_TEST(client.closed[link.client] == UV_ETIMEDOUT);
  // Not before the idle timeout: PTO backoff alone must not kill a session.
  BOOST_TEST(ms >= 1400);
  BOOST_TEST(client.counters().sessions_idle_timeouts == 1u);
  harness.runUntil([&] { return server.closed.count(link.server) != 0; }, milliseconds(20000),
                   "the deaf server to give up too");
  BOOST_TEST(server.closed[link.server] == UV_ETIMEDOUT);
}

BOOST_AUTO_TEST_CASE(a_black_holed_client_with_data_in_flight_does_not_hold_up_another_clients_reply) {
  // A client process killed while the server was sending to it: its session stays open at the
  // server until the idle timeout, with a window of data unacknowledged. The sessions to one
  // address share a congestion controller; a new client from that address must still get its
  // replies at once, not after the dead session is gone.
  Harness harness;
  Instance& server = harness.instance(kFast);
  Instance& dead = harness.instance(kFast);
  Instance& client = harness.instance(kFast);
  std::string port = server.listen();
  Link gone = connectPair(harness, server, dead, port);
  dead.setFault("blackhole=1");
  for (uint32_t i = 0; i < 4; ++i) BOOST_REQUIRE_EQUAL(server.send(gone.server, pattern(1 << 20, i)), 0);
  harness.runUntil([&] { return server.counters().pto_expirations >= 3; }, kPatience,
                   "the server to probe the silent client");
  server.onReceived = [&](ferry_conn_id conn, const uint8_t* data, size_t size) {
    if (conn != gone.server) BOOST_CHECK_EQUAL(server.send(conn, Bytes(data, data + size)), 0);
  };
  Link link = connectPair(harness, server, client, port);
  Bytes call = pattern(300, 7);
  BOOST_REQUIRE_EQUAL(client.send(link.client, call), 0);
  harness.runUntil(
      [&] { return client.receivedCount(link.client) == 1 || server.closed.count(gone.server) != 0; },
      kPatience, "the reply, or the dead session's idle timeout");
  BOOST_TEST(server.closed.count(gone.server) == 0u,
             "the reply waited for the dead client's session to time out");
  BOOST_REQUIRE_EQUAL(client.receivedCount(link.client), 1u);
  BOOST_TEST((client.received[link.client][0] == call));
  report("server", server.counters());
  BOOST_TEST(server.counters().silent_peers == 1u, "only the dead client's session went silent");
  // The dead session still ends at its idle timeout, and what it had in flight leaves with it.
  harness.runUntil([&] { return server.closed.count(gone.server) != 0; }, kPatience,
                   "the dead client's session to time out");
  BOOST_TEST(server.closed[gone.server] == UV_ETIMEDOUT);
}

BOOST_AUTO_TEST_CASE(a_restarted_server_rejects_the_old_session_and_a_new_connect_works) {
  Harness harness;
  Instance& first = harness.instance(kFast);
  Instance& client = harness.instance(kFast);
  std::string port = first.listen();
  Link link = connectPair(harness, first, client, port);
  BOOST_REQUIRE_EQUAL(client.send(link.client, pattern(100, 1)), 0);
  harness.runUntil([&] { return first.receivedCount(link.server) == 1; }, kPatience, "a message");
  // The server dies without a word (its CLOSE never leaves) and comes back on the same port.
  first.setFault("tx.drop=1");
  harness.destroy(first);
  Instance& second = harness.instance(kFast);
  BOOST_REQUIRE_EQUAL(second.listen("127.0.0.1", port), port);
  auto start = Clock::now();
  BOOST_REQUIRE_EQUAL(client.send(link.client, pattern(100, 2)), 0);
  harness.runUntil([&] { return client.closed.count(link.client) != 0; }, kPatience,
                   "the client to learn of the restart");
  BOOST_TEST_MESSAGE("the client learned of the restart after " << msSince(start) << " ms");
  BOOST_TEST(client.closed[link.client] == UV_ECONNRESET);
  BOOST_TEST(client.counters().rejects_received == 1u);
  BOOST_TEST(second.counters().rejects_sent >= 1u);
  BOOST_TEST(second.accepted.empty());
  BOOST_TEST(second.receivedCount(link.server) == 0u, "the new server took the old session's data");
  Link again = connectPair(harness, second, client, port);
  BOOST_REQUIRE_EQUAL(client.send(again.client, pattern(100, 3)), 0);
  harness.runUntil([&] { return second.receivedCount(again.server) == 1; }, kPatience,
                   "a message on the new session");
}

BOOST_AUTO_TEST_CASE(a_restarted_server_is_noticed_by_an_idle_client_through_its_keepalives) {
  const std::string options = "initial_rtt_ms=20,max_ack_delay_ms=5,idle_timeout_ms=3000";
  Harness harness;
  Instance& first = harness.instance(options);
  Instance& client = harness.instance(options);
  std::string port = first.listen();
  Link link = connectPair(harness, first, client, port);
  first.setFault("tx.drop=1");
  harness.destroy(first);
  Instance& second = harness.instance(options);
  second.listen("127.0.0.1", port);
  auto start = Clock::now();
  harness.runUntil([&] { return client.closed.count(link.client) != 0; }, kPatience,
                   "the idle client to learn of the restart");
  long long ms = msSince(start);
  BOOST_TEST_MESSAGE("learned after " << ms << " ms (keepalive every 1000 ms)");
  BOOST_TEST(client.closed[link.client] == UV_ECONNRESET, "a REJECT, not the idle timeout");
}

BOOST_AUTO_TEST_CASE(a_reject_that_names_nothing_of_ours_or_comes_from_elsewhere_is_ignored) {
  Harness harness;
  Instance& server = harness.instance(kFast);
  Instance& client = harness.instance(kFast);
  Link link = connectPair(harness, server, client, server.listen());
  // The client's port, as the server saw it.
  const std::string seen = server.peerAddress(link.server);
  std::string clientPort = seen.substr(seen.rfind(':') + 1);
  RawSocket spoofer;
  for (uint64_t guess = 1; guess <= 20; ++guess) {
    std::vector<uint8_t> buffer(100);
    wire::Writer out(buffer.data(), buffer.size());
    wire::writeLongHeader(out, wire::PacketType::reject, guess * 0x9e3779b97f4a7c15ull, 0, 0);
    wire::writeReject(out, wire::kRejectUnknownSession, 1);
    spoofer.sendTo(clientPort, finish(out, buffer));
  }
  harness.runUntil([&] { return client.counters().rejects_ignored == 20; }, milliseconds(5000),
                   "the spoofed REJECTs to be ignored");
  BOOST_TEST(client.closed.empty());
  BOOST_TEST(spoofer.receiveAll().empty(), "a REJECT was answered");
  BOOST_REQUIRE_EQUAL(client.send(link.client, pattern(10, 1)), 0);
  harness.runUntil([&] { return server.receivedCount(link.server) == 1; }, kPatience,
                   "the session to go on");
}

// --- Path MTU. ---

BOOST_AUTO_TEST_CASE(datagrams_grow_to_what_the_path_carries_and_shrink_when_large_ones_vanish) {
  Harness harness;
  Instance& server = harness.instance(kFast);
  Instance& client = harness.instance(kFast);
  server.keepDigestsOnly = true;
  Link link = connectPair(harness, server, client, server.listen());
  // Loopback carries 64 KiB datagrams: the client probes past 1452 and 8952 bytes.
  harness.runUntil([&] { return client.counters().now_max_datagram_size >= 8952; }, kPatience,
                   "the client's datagrams to reach at least 8952 bytes");
  harness.runFor(milliseconds(50));
  // Now anything above 1300 bytes vanishes on the way out of the client.
  client.setFault("tx.max_size=1300");
  Bytes big = pattern(2 << 20, 5);
  BOOST_REQUIRE_EQUAL(client.send(link.client, big), 0);
  harness.runUntil([&] { return server.receivedCount(link.server) == 1; }, kPatience,
                   "2 MiB through the new black hole");
  BOOST_TEST((server.digests[link.server][0] == std::make_pair(big.size(), digest(big.data(), big.size()))));
  UdpCounters c = client.counters();
  BOOST_TEST(c.pmtu_black_holes >= 1u);
  BOOST_TEST(c.now_max_datagram_size == 1200u);
  BOOST_TEST(client.closed.empty());
}

// --- Address validation and hostile datagrams. ---

BOOST_AUTO_TEST_CASE(before_validation_the_server_never_answers_with_more_bytes_than_it_got) {
  Harness harness;
  Instance& server = harness.instance(kFast);
  std::string port = server.listen();
  RawSocket raw;
  uint8_t forged[wire::kCookieSize] = {0, 0, 0, 1, 9, 9, 9};
  std::vector<Bytes> inputs = {
      hello(1, 0),                  // no cookie: a COOKIE back
      hello(2, 0, forged),          // a forged cookie: a COOKIE back, nothing remembered
      hello(3, 0, nullptr, 1199),   // not padded: nothing
      hello(4, 0, nullptr, 8000),   // padded more: one COOKIE still
      Bytes(),                      // empty
  };
  Bytes corrupted = hello(5, 0);
  corrupted[600] ^= 1;
  inputs.push_back(corrupted);
  for (size_t size : {21, 22, 30, 41, 42, 43, 100, 1500}) {
    inputs.push_back(shortPacket(0xdead0000 + size, 7, Bytes{0x01}, size));  // unknown session
  }
  for (size_t size : {1, 5, 17, 29, 64, 1300}) inputs.push_back(pattern(size, static_cast<uint32_t>(size)));
  {
    // A REJECT and a COOKIE nobody asked for: never answered.
    std::vector<uint8_t> buffer(100);
    wire::Writer out(buffer.data(), buffer.size());
    wire::writeLongHeader(out, wire::PacketType::reject, 99, 0, 1);
    wire::writeReject(out, wire::kRejectUnknownSession, 5);
    inputs.push_back(finish(out, buffer));
    std::vector<uint8_t> buffer2(100);
    wire::Writer out2(buffer2.data(), buffer2.size());
    wire::writeLongHeader(out2, wire::PacketType::cookie, 99, 0, 0);
    uint8_t cookie[wire::kCookieSize] = {};
    wire::writeCookieFrame(out2, cookie, 5);
    inputs.push_back(finish(out2, buffer2));
  }
  for (const Bytes& input : inputs) {
    BOOST_TEST_CONTEXT("a datagram of " << input.size() << " bytes") {
      uint64_t before = server.counters().datagrams_received;
      raw.sendTo(port, input);
      harness.runUntil([&] { return server.counters().datagrams_received > before; },
                       milliseconds(5000), "the server to read it");
      harness.runFor(milliseconds(5));
      std::vector<Bytes> replies = raw.receiveAll();
      BOOST_TEST(replies.size() <= 1u);
      for (const Bytes& reply : replies) BOOST_TEST(reply.size() <= input.size());
    }
  }
  BOOST_TEST(raw.bytesReceived <= raw.bytesSent);
  BOOST_TEST(raw.datagramsReceived >= 3u, "COOKIEs for the padded HELLOs and a REJECT");
  UdpCounters c = server.counters();
  BOOST_TEST_MESSAGE("unvalidated: " << c.unvalidated_bytes_received << " bytes in, "
                                     << c.unvalidated_bytes_sent << " bytes out");
  BOOST_TEST(c.unvalidated_bytes_sent <= c.unvalidated_bytes_received);
  BOOST_TEST(c.cookies_sent == 3u);
  BOOST_TEST(c.server_sessions_created == 0u, "state kept before the cookie came back");
  BOOST_TEST(c.now_sessions == 0u);
}

BOOST_AUTO_TEST_CASE(a_half_open_session_that_is_never_confirmed_is_forgotten_silently) {
  Harness harness;
  Instance& server = harness.instance(kFast + ",handshake_timeout_ms=300");
  std::string port = server.listen();
  RawClient raw(harness, port);
  raw.handshake();
  UdpCounters c = server.counters();
  BOOST_TEST(c.server_sessions_created == 1u);
  BOOST_TEST(c.now_half_open == 1u);
  harness.runUntil([&] { return server.counters().now_sessions == 0; }, milliseconds(5000),
                   "the half-open session to expire");
  BOOST_TEST(server.accepted.empty());
  BOOST_TEST(server.counters().now_half_open == 0u);
}

BOOST_AUTO_TEST_CASE(an_address_flooding_half_open_sessions_evicts_its_own_oldest_and_a_client_still_gets_in) {
  Harness harness;
  Instance& server = harness.instance(kFast + ",half_open_per_address=4");
  Instance& client = harness.instance(kFast);
  std::string port = server.listen();
  // Ten handshakes from one address, none confirmed: the address keeps its newest four.
  std::vector<std::unique_ptr<RawClient>> flood;
  for (int i = 0; i < 10; ++i) {
    flood.push_back(std::make_unique<RawClient>(harness, port));
    flood.back()->handshake();
  }
  UdpCounters c = server.counters();
  BOOST_TEST(c.server_sessions_created == 10u);
  BOOST_TEST(c.now_half_open == 4u);
  BOOST_TEST(c.half_open_evicted == 6u);
  BOOST_TEST(server.accepted.empty(), "an evicted half-open session raised an event");
  // A real client from the same address still connects, and its session carries messages.
  Link link = connectPair(harness, server, client, port, kPatience);
  Bytes ping = pattern(100, 1);
  BOOST_REQUIRE(client.send(link.client, ping) == 0);
  harness.runUntil([&] { return server.receivedCount(link.server) == 1; }, kPatience,
                   "the client's message");
  BOOST_TEST(server.counters().half_open_evicted == 7u);
}

BOOST_AUTO_TEST_CASE(sessions_from_one_address_past_their_bound_are_refused_and_counted) {
  Harness harness;
  Instance& server = harness.instance(kFast + ",sessions_per_address=3");
  std::string port = server.listen();
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<RawClient>(harness, port));
    BOOST_REQUIRE(clients.back()->tryHandshake(kPatience));
  }
  RawClient refused(harness, port);
  BOOST_TEST(!refused.tryHandshake(milliseconds(300)), "a fourth session from one address");
  UdpCounters c = server.counters();
  BOOST_TEST(c.sessions_refused_per_address == 1u);
  BOOST_TEST(c.server_sessions_created == 3u);
  BOOST_TEST(c.cookies_sent == 4u, "the refused client was still sent its cookie");
}

BOOST_AUTO_TEST_CASE(data_beyond_its_limits_is_refused_before_allocation_and_repeated_abuse_closes) {
  Harness harness;
  Instance& server = harness.instance(kFast);
  std::string port = server.listen();
  RawClient raw(harness, port);
  raw.handshake();
  raw.sendShort(Bytes{0x01});  // PING: confirms the handshake
  harness.runUntil([&] { return server.accepted.size() == 1; }, milliseconds(5000), "accepted");
  ferry_conn_id conn = server.accepted[0].first;
  Bytes chunk = pattern(100, 1);
  const std::vector<std::pair<const char*, Bytes>> abuses = {
      {"total_len above the maximum", dataFrame(0, (16u << 20) + (64u << 10) + 1, 0, chunk)},
      {"offset + length past total_len", dataFrame(0, 150, 100, chunk)},
      {"offset + length overflowing 32 bits", dataFrame(0, 0xffffffffu, 0xffffffc0u, chunk)},
      {"an empty fragment of a non-empty message", dataFrame(0, 100, 0, Bytes())},
      {"bytes beyond the unscheduled 256 KiB without credit",
       dataFrame(0, 1 << 20, (256 << 10) - 50, chunk)},
      {"a message id beyond the window", dataFrame(5000, 100, 0, chunk)},
      {"total_len changing within a message", dataFrame(1, 300, 200, chunk)},
  };
  // Message 1 exists (300 bytes promised), so the last abuse contradicts it.
  raw.sendShort(dataFrame(1, 200, 0, chunk));
  harness.runFor(milliseconds(20));
  uint64_t violationsBefore = server.counters().protocol_violations;
  for (const auto& [what, frames] : abuses) {
    BOOST_TEST_CONTEXT(what) {
      uint64_t before = server.counters().protocol_violations;
      raw.sendShort(frames);
      harness.runUntil([&] { return server.counters().protocol_violations > before; },
                       milliseconds(5000), "the violation to be counted");
      // Refused before anything was allocated for it: only message 1's 200 bytes are held.
      BOOST_TEST(server.counters().now_reassembly_bytes == 200u);
    }
  }
  BOOST_TEST(server.counters().protocol_violations - violationsBefore == abuses.size());
  BOOST_TEST(server.receivedCount(conn) == 0u);
  // The eighth strike closes the session with an error, and the peer hears CLOSE.
  raw.sendShort(dataFrame(0, 10, 20, chunk));
  harness.runUntil([&] { return server.closed.count(conn) != 0; }, milliseconds(5000),
                   "the abusive session to close");
  BOOST_TEST(server.closed[conn] == UV_EPROTO);
  Decoded close = raw.await(wire::PacketType::shortHeader);
  bool sawClose = false;
  for (const wire::Frame& f : close.frames) {
    sawClose = sawClose || (f.type == wire::FrameType::close && f.reason == wire::kCloseProtocol);
  }
  BOOST_TEST(sawClose);
  harness.runUntil([&] { return server.counters().now_reassembly_bytes == 0; }, milliseconds(5000),
                   "the closed session's memory to be freed");
}

BOOST_AUTO_TEST_CASE(a_flood_of_garbage_is_dropped_and_counted_while_a_session_keeps_working) {
  Harness harness;
  Instance& server = harness.instance(kFast);
  Instance& client = harness.instance(kFast);
  server.keepDigestsOnly = client.keepDigestsOnly = true;
  std::string port = server.listen();
  Link link = connectPair(harness, server, client, port);
  RawSocket raw;
  uint64_t dropsBefore = dropTotal(server.counters());
  Bytes validHello = hello(42, 0);
  Digests expected;
  constexpr uint32_t kBatches = 40;
  constexpr uint32_t kPerBatch = 250;
  uint32_t seed = 1;
  for (uint32_t batch = 0; batch < kBatches; ++batch) {
    for (uint32_t i = 0; i < kPerBatch; ++i, ++seed) {
      Bytes random = pattern(seed % 1500, seed);
      switch (seed % 5) {
        case 0:  // noise
          raw.sendTo(port, random);
          break;
        case 1:  // a HELLO cut short or with a flipped bit: the CRC catches it
          if (seed % 2 == 0) {
            raw.sendTo(port, Bytes(validHello.begin(), validHello.begin() + seed % 1200));
          } else {
            Bytes flipped = validHello;
            flipped[seed % flipped.size()] ^= static_cast<uint8_t>(1u << (seed % 8));
            raw.sendTo(port, flipped);
          }
          break;
        case 2:  // a well-formed packet for a session nobody has
          raw.sendTo(port, shortPacket(seed * 2654435761ull, seed, Bytes{0x01}, 20 + seed % 200));
          break;
        case 3: {  // a long header of another version
          std::vector<uint8_t> buffer(100);
          wire::Writer out(buffer.data(), buffer.size());
          out.u8(0xC0);
          out.u8(2);
          out.u16(0);
          out.u64(0);
          out.u64(seed);
          out.u64(0);
          out.zeros(out.remaining() - wire::kCrcSize);
          raw.sendTo(port, finish(out, buffer));
          break;
        }
        default:  // frames that do not parse behind a valid header and CRC
          raw.sendTo(port, shortPacket(seed, seed, Bytes{0x3f, 0xff, 0xff}, 64));
          break;
      }
    }
    // Meanwhile the session carries a message each way.
    sendAll(client, link.client, 0, {static_cast<size_t>(100 + batch)}, expected);
    Digests ignored;
    sendAll(server, link.server, 1, {static_cast<size_t>(100 + batch)}, ignored);
    // The next batch waits until the server has read this one: a backlog that outgrows the
    // socket's receive buffer would be dropped by the kernel, uncounted (seen under ASan on a
    // loaded 2-core machine).
    harness.runUntil(
        [&] { return dropTotal(server.counters()) - dropsBefore >= raw.datagramsSent; },
        milliseconds(20000), "the batch's hostile datagrams to be counted");
  }
  harness.runUntil(
      [&] { return dropTotal(server.counters()) - dropsBefore >= raw.datagramsSent; },
      milliseconds(20000), "every hostile datagram to be counted");
  harness.runUntil([&] { return server.receivedCount(link.server) == kBatches; }, kPatience,
                   "the session's messages");
  UdpCounters c = server.counters();
  BOOST_TEST(dropTotal(c) - dropsBefore == raw.datagramsSent);
  BOOST_TEST_MESSAGE("flood: " << raw.datagramsSent << " datagrams, " << c.dropped_crc << " CRC, "
                               << c.dropped_malformed << " malformed, " << c.dropped_version
                               << " version, " << c.dropped_unknown_session << " unknown session, "
                               << c.rejects_sent << " REJECTs sent, " << c.rejects_rate_limited
                               << " rate-limited");
  BOOST_TEST(raw.bytesReceived <= raw.bytesSent);
  checkArrived(server, link.server, expected);
  BOOST_TEST(server.closed.empty());
  BOOST_TEST(client.closed.empty());
  BOOST_TEST(c.now_sessions == 1u);
}

BOOST_AUTO_TEST_CASE(a_session_packet_from_another_address_is_dropped_not_delivered) {
  Harness harness;
  Instance& server = harness.instance(kFast);
  std::string port = server.listen();
  RawClient real(harness, port);
  uint64_t serverId = real.handshake();
  real.sendShort(Bytes{0x01});
  harness.runUntil([&] { return server.accepted.size() == 1; }, milliseconds(5000), "accepted");
  // Someone else who learned the session id sends data on it from their own port.
  RawSocket intruder;
  intruder.sendTo(port, shortPacket(serverId, 100, dataFrame(0, 4, 0, Bytes{1, 2, 3, 4})));
  harness.runUntil([&] { return server.counters().dropped_wrong_address == 1; },
                   milliseconds(5000), "the intruder's packet to be dropped");
  harness.runFor(milliseconds(20));
  BOOST_TEST(server.receivedCount(server.accepted[0].first) == 0u);
  BOOST_TEST(server.closed.empty());
}

// --- Settings, and the shipping build. ---

BOOST_AUTO_TEST_CASE(settings_handed_to_create_with_settings_rule_the_instance) {
  ScopedEnv noOverride("FERRY_UDP_OPTIONS", "");
  Harness harness;
  Instance& server = harness.instance(kFast);
  Instance& client = harness.instance(kFast + ",max_message_size=2000");
  Link link = connectPair(harness, server, client, server.listen());
  BOOST_TEST(client.send(link.client, pattern(2001, 1)) == UV_EMSGSIZE);
  BOOST_REQUIRE_EQUAL(client.send(link.client, pattern(2000, 2)), 0);
  harness.runUntil([&] { return server.receivedCount(link.server) == 1; }, kPatience,
                   "the message of the largest size allowed");
}

BOOST_AUTO_TEST_CASE(settings_from_FERRY_UDP_OPTIONS_win_over_the_hosts) {
  ScopedEnv override("FERRY_UDP_OPTIONS", "max_message_size=100000");
  Harness harness;
  Instance& server = harness.instance(kFast + ",max_message_size=2000");
  Instance& client = harness.instance(kFast + ",max_message_size=2000");
  Link link = connectPair(harness, server, client, server.listen());
  BOOST_REQUIRE_EQUAL(client.send(link.client, pattern(50000, 1)), 0);
  harness.runUntil([&] { return server.receivedCount(link.server) == 1; }, kPatience,
                   "a message larger than the host's settings allow");
}

BOOST_AUTO_TEST_CASE(settings_that_are_unknown_or_malformed_are_refused_naming_the_key) {
  ScopedEnv noOverride("FERRY_UDP_OPTIONS", "");
  const ferry_transport_v1& table = *plugin().table;
  BOOST_REQUIRE(table.check_settings != nullptr);
  char why[256] = {};
  BOOST_TEST(table.check_settings(kFast.c_str(), why, sizeof why) == 0);
  BOOST_TEST(table.check_settings("idle_timout_ms=5", why, sizeof why) == UV_EINVAL);
  BOOST_TEST(std::string(why).find("'idle_timout_ms' is no udp setting") != std::string::npos, why);
  BOOST_TEST(table.check_settings("idle_timeout_ms=soon", why, sizeof why) == UV_EINVAL);
  BOOST_TEST(std::string(why).find("idle_timeout_ms=soon") != std::string::npos, why);
  char tiny[8] = {};
  BOOST_TEST(table.check_settings("idle_timout_ms=5", tiny, sizeof tiny) == UV_EINVAL);
  BOOST_TEST(std::strlen(tiny) == sizeof tiny - 1, "the reason is cut to the room given");

  Harness harness;
  ferry_transport_events_v1 events{};
  events.struct_size = sizeof events;
  ferry_transport* transport = nullptr;
  BOOST_TEST(table.create_with_settings(host(), harness.loop(), &events, "pmtu=maybe",
                                        &transport) == UV_EINVAL);
  BOOST_TEST(transport == nullptr, "no instance for refused settings");
  {
    ScopedEnv badOverride("FERRY_UDP_OPTIONS", "pmtu=maybe");
    BOOST_TEST(table.create_with_settings(host(), harness.loop(), &events, "", &transport) ==
               UV_EINVAL);
    BOOST_TEST(transport == nullptr, "no instance for a refused override");
  }
}

BOOST_AUTO_TEST_CASE(the_shipping_build_has_no_fault_layer_and_exports_its_entry_only) {
  const Plugin& shipping = shippingPlugin();
  BOOST_TEST(shipping.setFault == nullptr, "the shipping module exports no test hook");
  Harness harness;
  Instance& server = harness.shippingInstance(kFast);
  Instance& client = harness.shippingInstance(kFast);
  Link link = connectPair(harness, server, client, server.listen());
  BOOST_REQUIRE_EQUAL(client.send(link.client, pattern(100, 1)), 0);
  harness.runUntil([&] { return server.receivedCount(link.server) == 1; }, kPatience, "a message");
  std::vector<ferry_counter_v1> counters = readCounters(shipping, client.transport());
  bool sawDatagrams = false;
  for (const ferry_counter_v1& c : counters) {
    BOOST_TEST(std::string(c.name).find("fault") == std::string::npos, c.name);
    if (std::string(c.name) == "datagrams_sent") sawDatagrams = c.value > 0;
  }
  BOOST_TEST(sawDatagrams, "datagrams_sent is reported and counts what was sent");
  // The test-only build reports the same counters, then the fault layer's.
  std::vector<ferry_counter_v1> withFaults =
      readCounters(plugin(), harness.instance(kFast).transport());
  BOOST_REQUIRE(withFaults.size() > counters.size());
  for (size_t i = 0; i < counters.size(); ++i) {
    BOOST_TEST(std::string(withFaults[i].name) == counters[i].name);
  }
}

// --- The harness. ---

// libuv runs due timers before it polls: a wait whose deadline passed before the loop polled
// (the test thread preempted, a slow condition) must still end then, and not sleep in poll until
// some other handle wakes the loop. Here the only other handle is a timer of 5 s, so the wait
// either ends at its deadline or only when that timer fires.
BOOST_AUTO_TEST_CASE(a_wait_ends_at_its_deadline_even_when_it_passed_before_the_loop_polled) {
  uv_timer_t wakeUp{};  // outlives the harness, whose end closes what it left in the loop
  bool wokenUp = false;
  Harness harness;
  BOOST_REQUIRE(uv_timer_init(harness.loop(), &wakeUp) == 0);
  wakeUp.data = &wokenUp;
  uv_timer_start(&wakeUp, [](uv_timer_t* timer) { *static_cast<bool*>(timer->data) = true; }, 5000,
                 0);
  bool first = true;
  bool met = harness.runBounded(
      [&] {
        // The first look at the condition outlasts the whole wait, before the loop runs once.
        if (first) std::this_thread::sleep_for(milliseconds(20));
        first = false;
        return false;
      },
      milliseconds(1));
  BOOST_TEST(!met);
  BOOST_TEST(!wokenUp, "the wait outlived its deadline until another timer woke the loop");
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeUp), nullptr);
}

}  // namespace
}  // namespace ferry::udptest
