// The transport conformance harness: the plugin under test, found by the loader like core finds
// it, driven through the shared transport harness (tests/common/transport-harness.h: instances on
// a loop of the test thread, every event recorded and checked against the ABI's rules), and what
// only this suite needs: the addresses each case runs on, raw stream peers.
#pragma once

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ferry/plugin/transport.h>

#include "plugin-loader.h"
#include "transport-harness.h"

namespace ferry::conformance {

using transporttest::Bytes;
using transporttest::ConnectedRecord;
using transporttest::connectPair;
using transporttest::Instance;
using transporttest::kPatience;
using transporttest::Link;
using transporttest::pattern;
using transporttest::PeerRecord;
using std::chrono::milliseconds;

// The plugin under test: the first argument after `--` on the command line ("tcp", "pipe").
const std::string& pluginName();
// What its table declares. The cases expect what a transport declares, never what its name is,
// so that they run unchanged against a new transport.
const detail::TransportTraits& traits();
// Its addresses are directories (pipe), not numeric IP addresses and ports (tcp, udp).
bool pathAddresses();
// It runs over datagrams (udp).
bool overDatagrams();

// The plugin's table and the host services the loader hands to plugins.
const ferry_transport_v1& table();
const ferry_host_v1* host();

// The addresses every case runs on: an IP transport listens on 127.0.0.1 and, when this machine
// has a working IPv6 loopback, on ::1; a path-addressed one (pipe) on "" (the host's runtime
// directory).
std::vector<std::string> listenAddresses();

// An endpoint on `address` that nobody listens on: tcp, a port just bound and released; pipe, a
// socket name that does not exist.
std::string deadEndpoint(const std::string& address);

// The socket file of a pipe endpoint in the host's runtime directory.
std::string runtimePath(const std::string& endpoint);

// A 4-byte little-endian length prefix, for hand-made frames.
Bytes frameHeader(uint64_t length);

// A loop on the test thread and instances of the plugin under test on it.
class Harness : public transporttest::Harness {
public:
  Instance& instance();
  // Through create_with_settings, with `settings` (the table must offer it).
  Instance& instance(const std::string& settings);
};

// The value of `instance`'s counter `name` (the table's `counters`); fails the test when the
// instance has no such counter.
uint64_t counter(Instance& instance, const std::string& name);

// A plain socket connected to a listener, for bytes no well-behaved transport would send.
// Connecting blocks, but a listener's backlog completes it without an accept.
class RawPeer {
public:
  // `source`: the local address to connect from (IP transports; "" lets the system pick).
  RawPeer(const std::string& address, const std::string& endpoint, const std::string& source = "");
  ~RawPeer();
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  void write(const Bytes& bytes);
  // Writes what the socket takes now, without blocking; how many bytes that was.
  size_t writeSome(const Bytes& bytes);
  // Reads what has arrived, without blocking; false once the other side has closed.
  bool readAvailable(Bytes& into);
  // Closes this side.
  void close();

private:
  int _fd = -1;
};

// Runs `body` once per listen address, each with its own Harness.
void forEachAddress(const std::function<void(Harness&, const std::string&)>& body);

}  // namespace ferry::conformance
