// A harness for the udp plugin's scenario tests: it loads the module itself (dlopen; the path
// comes after `--` on the command line), drives instances through the C ABI on a loop owned by
// the test thread, records every event, checks the ABI's event rules as they arrive, and reads
// the plugin's test-only counters (udp-test-hooks.h).
//
// Instances take their FERRY_UDP_OPTIONS and FERRY_UDP_FAULT from the test (the plugin reads them
// at create), so two instances in one process can be impaired differently. Every wait is
// bounded; a Harness ends by destroying its instances, waiting for their `done`, and closing its
// loop, so that a leaked handle fails the test.
#pragma once

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <uv.h>

#include <ferry/plugin/transport.h>

#include "udp-test-hooks.h"

namespace ferry::udptest {

using Bytes = std::vector<uint8_t>;
using std::chrono::milliseconds;

// What the plugin exports, loaded once per process.
struct Plugin {
  const ferry_transport_v1* table = nullptr;
  ferry_udp_test_counters_v1_fn counters = nullptr;
  ferry_udp_test_set_fault_v1_fn setFault = nullptr;
};
const Plugin& plugin();
const ferry_host_v1* host();

// Deterministic content and its digest (FNV-1a 64, enough to tell messages apart).
Bytes pattern(size_t size, uint32_t seed);
uint64_t digest(const uint8_t* data, size_t size);
// A message that says which stream and position it is: 8 bytes of tag, then content.
Bytes tagged(uint32_t stream, uint32_t index, size_t size);

class Harness;

// One transport instance and everything it reported.
class Instance {
public:
  // `options` and `fault` become FERRY_UDP_OPTIONS and FERRY_UDP_FAULT for this create only.
  Instance(Harness& harness, const std::string& options, const std::string& fault);
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  std::string listen(const std::string& address = "127.0.0.1", const std::string& endpoint = "");
  ferry_conn_id connect(const std::string& address, const std::string& endpoint,
                        uint32_t timeoutMs = 10000);
  int send(ferry_conn_id conn, const Bytes& message);
  void close(ferry_conn_id conn);
  void destroy();
  ferry_udp_counters_v1 counters() const;
  void setFault(const std::string& spec);

  std::vector<ferry_conn_id> accepted;
  std::map<ferry_conn_id, std::string> peers;  // as accepted or connected reported them
  std::map<ferry_conn_id, int> connected;  // status
  std::map<ferry_conn_id, std::vector<Bytes>> received;
  std::map<ferry_conn_id, int> closed;
  int doneCalls = 0;
  bool destroyCalled = false;
  // Keep only digests of received messages (for large transfers).
  bool keepDigestsOnly = false;
  std::map<ferry_conn_id, std::vector<std::pair<size_t, uint64_t>>> digests;
  std::function<void(ferry_conn_id, const uint8_t*, size_t)> onReceived;

  size_t receivedCount(ferry_conn_id conn) const;
  ferry_transport* transport() const { return _transport; }

private:
  static void onAccepted(void* context, ferry_conn_id conn, const ferry_peer_info_v1* peer);
  static void onConnected(void* context, ferry_conn_id conn, int status,
                          const ferry_peer_info_v1* peer);
  static void onReceivedEvent(void* context, ferry_conn_id conn, const uint8_t* data, size_t size);
  static void onClosed(void* context, ferry_conn_id conn, int status);
  static void onDone(void* arg);
  bool eventAllowed(const char* event, ferry_conn_id conn);

  Harness& _harness;
  ferry_transport* _transport = nullptr;
  std::set<ferry_conn_id> _pending;
  std::set<ferry_conn_id> _open;
  std::set<ferry_conn_id> _seen;
};

class Harness {
public:
  Harness();
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  Instance& instance(const std::string& options = "", const std::string& fault = "");

  // Runs the loop until `condition`; fails the test when `limit` passes first.
  void runUntil(const std::function<bool()>& condition, milliseconds limit,
                const std::string& what);
  bool runBounded(const std::function<bool()>& condition, milliseconds limit);
  void runFor(milliseconds duration);
  // Destroys one instance and waits for its `done`.
  void destroy(Instance& instance);

  uv_loop_t* loop() noexcept { return _loop.get(); }
  int tableCallDepth = 0;
  const std::thread::id thread = std::this_thread::get_id();

private:
  std::unique_ptr<uv_loop_t> _loop;
  uv_timer_t _deadline{};
  std::vector<std::unique_ptr<Instance>> _instances;
};

// A plain UDP socket on 127.0.0.1, for datagrams no well-behaved peer would send. It counts
// the bytes it sends and receives (the amplification audit compares them).
class RawSocket {
public:
  RawSocket();
  ~RawSocket();
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  void sendTo(const std::string& port, const Bytes& datagram);
  // Every datagram waiting now, without blocking.
  std::vector<Bytes> receiveAll();
  uint16_t port() const { return _port; }

  uint64_t bytesSent = 0;
  uint64_t bytesReceived = 0;
  uint64_t datagramsSent = 0;
  uint64_t datagramsReceived = 0;

private:
  int _fd = -1;
  uint16_t _port = 0;
};

struct Link {
  ferry_conn_id client = 0;
  ferry_conn_id server = 0;
};
// Connects `client` to `server` on 127.0.0.1:`port` and waits for both events.
Link connectPair(Harness& harness, Instance& server, Instance& client, const std::string& port,
                 milliseconds patience = milliseconds(20000));

}  // namespace ferry::udptest
