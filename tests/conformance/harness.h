// The transport conformance harness: drives one plugin through its C ABI on a libuv loop owned
// by the test thread, records every event, and checks the ABI's event rules as events arrive
// (core/include/ferry/plugin/transport.h):
//   - events come on the loop's thread, never from inside a table function, never after destroy;
//   - connection ids are never 0 and never reused; `connected` reports each connect() once;
//   - `received` and `closed` only for established connections, nothing after `closed`;
//   - a failed `connected` has no peer and is never followed by `closed`.
//
// Every wait is bounded (Harness::runUntil fails the test on timeout). A Harness ends by destroying
// its instances, running the loop until each reported `done`, and checking that uv_loop_close
// succeeds: a leaked handle fails the test.
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

#include "plugin-loader.h"

namespace ferry::conformance {

using Bytes = std::vector<uint8_t>;
using std::chrono::milliseconds;

// How long a test waits for something that should happen promptly on loopback. Generous: a
// timeout here is a hang, not slowness.
inline constexpr milliseconds kPatience{30000};

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

// Deterministic content: `size` bytes derived from `seed`.
Bytes pattern(size_t size, uint32_t seed);

// A 4-byte little-endian length prefix, for hand-made frames.
Bytes frameHeader(uint64_t length);

struct PeerRecord {
  uint32_t structSize = 0;
  std::string address;
  int hasCredentials = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int32_t pid = 0;
};

struct ConnectedRecord {
  int status = 0;
  std::optional<PeerRecord> peer;
};

class Harness;

// One transport instance and everything it reported.
class Instance {
public:
  explicit Instance(Harness& harness);
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // The table functions. Each marks the harness as inside a table call, so that an event raised
  // from inside one fails the test.
  // `flags` other than 0: through listen_with_flags (which the table must offer).
  int tryListen(const std::string& address, const std::string& endpoint,
                std::string* bound = nullptr, size_t endpointCap = 256, uint32_t flags = 0);
  int tryConnect(const std::string& address, const std::string& endpoint, uint32_t timeoutMs,
                 ferry_conn_id* conn);
  int send(ferry_conn_id conn, const Bytes& message);
  // send_any_thread, from whatever thread calls it (not a table call of the loop's thread).
  int sendAnyThread(ferry_conn_id conn, const Bytes& message);
  void close(ferry_conn_id conn);
  void destroy();

  // Listens (the endpoint actually bound is returned) or connects, requiring success.
  std::string listen(const std::string& address, const std::string& endpoint = "");
  ferry_conn_id connect(const std::string& address, const std::string& endpoint,
                        uint32_t timeoutMs = 10000);

  // What the instance reported, in the order it came.
  std::vector<std::pair<ferry_conn_id, PeerRecord>> accepted;
  std::map<ferry_conn_id, ConnectedRecord> connected;
  std::map<ferry_conn_id, std::vector<Bytes>> received;
  std::map<ferry_conn_id, int> closed;
  size_t events = 0;
  int doneCalls = 0;
  bool destroyCalled = false;

  // Runs after a message is recorded: a test may act from inside the event.
  std::function<void(ferry_conn_id, const Bytes&)> onReceived;

  size_t receivedCount(ferry_conn_id conn) const;
  bool established(ferry_conn_id conn) const;

private:
  static void onAccepted(void* context, ferry_conn_id conn, const ferry_peer_info_v1* peer);
  static void onConnected(void* context, ferry_conn_id conn, int status,
                          const ferry_peer_info_v1* peer);
  static void onReceivedEvent(void* context, ferry_conn_id conn, const uint8_t* data, size_t size);
  static void onClosed(void* context, ferry_conn_id conn, int status);
  static void onDone(void* arg);

  // The rules every event obeys; false (with a reported error) when one is broken.
  bool eventAllowed(const char* event, ferry_conn_id conn);
  static PeerRecord record(const ferry_peer_info_v1* peer);

  Harness& _harness;
  const ferry_transport_v1* _table = &table();
  ferry_transport* _transport = nullptr;
  std::set<ferry_conn_id> _pendingConnects;  // returned by connect(), not yet reported
  std::set<ferry_conn_id> _open;             // accepted or connected, not yet closed
  std::set<ferry_conn_id> _seen;             // every id this instance ever used
};

// A loop on the test thread and the instances on it.
class Harness {
public:
  Harness();
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  Instance& instance();

  // Runs the loop until `condition` holds; fails the test when `limit` passes first.
  void runUntil(const std::function<bool()>& condition, milliseconds limit,
                const std::string& what);
  // Runs the loop for `duration`: room for events that must not come to show up.
  void runFor(milliseconds duration);
  // Destroys every instance and waits for their `done` (a test that checks what destroy left).
  void destroyAll();

  uv_loop_t* loop() noexcept { return _loop.get(); }

  // Set while a table function runs (an event then breaks the ABI).
  int tableCallDepth = 0;
  const std::thread::id thread = std::this_thread::get_id();

private:
  // Runs until `condition` or `limit`; true when the condition holds.
  bool runBounded(const std::function<bool()>& condition, milliseconds limit);

  std::unique_ptr<uv_loop_t> _loop;
  uv_timer_t _deadline{};
  std::vector<std::unique_ptr<Instance>> _instances;
};

// Connects `client` to `server`'s listener and waits until both sides report the connection.
struct Link {
  ferry_conn_id client = 0;
  ferry_conn_id server = 0;
};
Link connectPair(Harness& harness, Instance& server, Instance& client, const std::string& address,
                 const std::string& endpoint);

// A plain socket connected to a listener, for bytes no well-behaved transport would send.
// Connecting blocks, but a listener's backlog completes it without an accept.
class RawPeer {
public:
  RawPeer(const std::string& address, const std::string& endpoint);
  ~RawPeer();
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  void write(const Bytes& bytes);
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
