// A harness for the udp plugin's scenario tests: it loads the module itself (dlopen; the path
// comes after `--` on the command line), drives instances through the C ABI on a loop owned by
// the test thread, records every event, checks the ABI's event rules as they arrive, and reads
// the plugin's counters (the table's `counters`).
//
// The module driven is the plugin's test-only build with the fault layer (fault-layer.h); the
// shipping module is loaded too, to check what it leaves out. Instances take their settings
// through create_with_settings, as a Runtime hands them over, and their fault settings through
// the test-only export, so two instances in one process can be impaired differently. Every wait is
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

#include "counters.h"
#include "fault-layer.h"

namespace ferry::udptest {

using Bytes = std::vector<uint8_t>;
using std::chrono::milliseconds;

// What a module exports, loaded once per process.
struct Plugin {
  const ferry_transport_v1* table = nullptr;
  ferry_udp_test_set_fault_v1_fn setFault = nullptr;  // the test-only build's; null in shipping
};
// The test-only build, which the scenarios drive.
const Plugin& plugin();
// The shipping build.
const Plugin& shippingPlugin();
const ferry_host_v1* host();
// An instance's counters as the table reports them.
std::vector<ferry_counter_v1> readCounters(const Plugin& plugin, ferry_transport* transport);

// Every counter of the test-only build, by name.
struct UdpCounters : transports::udp::Counters, transports::udp::FaultLayerCounters {};

// A scoped environment variable.
class ScopedEnv {
public:
  ScopedEnv(const char* name, const std::string& value);  // "" unsets it
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
  const char* _name;
  std::optional<std::string> _old;
};

// Deterministic content and its digest (FNV-1a 64, enough to tell messages apart).
Bytes pattern(size_t size, uint32_t seed);
uint64_t digest(const uint8_t* data, size_t size);
// A message that says which stream and position it is: 8 bytes of tag, then content.
Bytes tagged(uint32_t stream, uint32_t index, size_t size);

class Harness;

// One transport instance and everything it reported.
class Instance {
public:
  // `options`: the settings handed to create_with_settings; `fault`: the fault layer's (FERRY_UDP_FAULT
  // syntax), set right after create.
  Instance(Harness& harness, const Plugin& module, const std::string& options,
           const std::string& fault);
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  std::string listen(const std::string& address = "127.0.0.1", const std::string& endpoint = "");
  ferry_conn_id connect(const std::string& address, const std::string& endpoint,
                        uint32_t timeoutMs = 10000);
  int send(ferry_conn_id conn, const Bytes& message);
  void close(ferry_conn_id conn);
  void destroy();
  UdpCounters counters() const;
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
  const Plugin& _module;
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

  // An instance of the test-only build; of the shipping one.
  Instance& instance(const std::string& options = "", const std::string& fault = "");
  Instance& shippingInstance(const std::string& options = "");

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
