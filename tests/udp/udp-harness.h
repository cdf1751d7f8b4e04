// A harness for the udp plugin's scenario tests: it loads the modules itself (dlopen; the paths
// come after `--` on the command line) and drives their instances through the shared transport
// harness (tests/common/transport-harness.h: a loop owned by the test thread, every event
// recorded and checked against the ABI's rules), adding what only udp has: the counters (the
// table's `counters`), the fault layer, raw datagram sockets.
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
#include "transport-harness.h"
#include "fault-layer.h"

namespace ferry::udptest {

using transporttest::Bytes;
using transporttest::digest;
using transporttest::Link;
using transporttest::pattern;
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

// A message that says which stream and position it is: 8 bytes of tag, then content.
Bytes tagged(uint32_t stream, uint32_t index, size_t size);

class Harness;

// An instance of a udp module, with what only udp has: counters and the fault layer.
class Instance : public transporttest::Instance {
public:
  // `options`: the settings handed to create_with_settings; `fault`: the fault layer's
  // (FERRY_UDP_FAULT syntax), set right after create.
  Instance(Harness& harness, const Plugin& module, const std::string& options,
           const std::string& fault);

  // Listens on 127.0.0.1 unless told otherwise.
  std::string listen(const std::string& address = "127.0.0.1", const std::string& endpoint = "");
  UdpCounters counters() const;
  void setFault(const std::string& spec);

private:
  const Plugin& _module;
};

class Harness : public transporttest::Harness {
public:
  Harness();

  // An instance of the test-only build; of the shipping one.
  Instance& instance(const std::string& options = "", const std::string& fault = "");
  Instance& shippingInstance(const std::string& options = "");
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

// Connects `client` to `server` on 127.0.0.1:`port` and waits for both events.
Link connectPair(Harness& harness, Instance& server, Instance& client, const std::string& port,
                 milliseconds patience = milliseconds(20000));

}  // namespace ferry::udptest
