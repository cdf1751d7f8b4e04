// What the transport conformance suite (tests/conformance) and the udp scenarios (tests/udp)
// share: a loop owned by the test thread, transport instances driven through the C ABI on it,
// every event recorded, and the ABI's event rules checked as events arrive
// (core/include/ferry/plugin/transport.h):
//   - events come on the loop's thread, never from inside a table function, never after destroy;
//   - connection ids are never 0 and never reused; `connected` reports each connect() once;
//   - `received` and `closed` only for established connections, nothing after `closed`;
//   - a failed `connected` has no peer and is never followed by `closed`.
//
// Every wait is bounded (Harness::runUntil fails the test on timeout). A Harness ends by
// destroying its instances, running the loop until each reported `done`, and checking that
// uv_loop_close succeeds: a leaked handle fails the test. Each suite derives its own Instance
// and Harness for what only it needs (which plugin, its counters, raw sockets).
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

namespace ferry::transporttest {

using Bytes = std::vector<uint8_t>;
using std::chrono::milliseconds;

// How long a test waits for something that should happen promptly on loopback. Generous: a
// timeout here is a hang, not slowness.
inline constexpr milliseconds kPatience{30000};

// Deterministic content: `size` bytes derived from `seed`.
Bytes pattern(size_t size, uint32_t seed);
// A digest of content (FNV-1a 64 and the size: enough to tell messages apart).
uint64_t digest(const uint8_t* data, size_t size);

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
  // Creates an instance of `table`'s transport on the harness's loop: through
  // create_with_settings when `settings` is given (the table must offer it), else create().
  Instance(Harness& harness, const ferry_transport_v1& table, const ferry_host_v1* host,
           const std::optional<std::string>& settings = std::nullopt);
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;
  virtual ~Instance() = default;

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
  // receive_any_thread, from whatever thread calls it: sends `request` first when given; each
  // message read is offered to `take` (true: taken).
  int receiveAnyThread(ferry_conn_id conn, int wakeFd, uint32_t timeoutMs,
                       const std::function<bool(const uint8_t*, size_t)>& take,
                       const Bytes* request = nullptr);
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
  // Keep only the size and digest of each received message (for large transfers), in `digests`.
  bool keepDigestsOnly = false;
  std::map<ferry_conn_id, std::vector<std::pair<size_t, uint64_t>>> digests;

  // Runs after a message is recorded: a test may act from inside the event.
  std::function<void(ferry_conn_id, const uint8_t*, size_t)> onReceived;

  size_t receivedCount(ferry_conn_id conn) const;
  bool established(ferry_conn_id conn) const;
  // The peer address an accepted or connected event gave for `conn`, or "".
  std::string peerAddress(ferry_conn_id conn) const;

  const ferry_transport_v1& table() const noexcept { return _table; }
  ferry_transport* transport() const noexcept { return _transport; }

protected:
  Harness& _harness;

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

  const ferry_transport_v1& _table;
  ferry_transport* _transport = nullptr;
  std::set<ferry_conn_id> _pendingConnects;  // returned by connect(), not yet reported
  std::set<ferry_conn_id> _open;             // accepted or connected, not yet closed
  std::set<ferry_conn_id> _seen;             // every id this instance ever used
};

// A loop on the test thread and the instances on it.
class Harness {
public:
  Harness();
  virtual ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // Takes `instance` into the harness, which destroys it at the end.
  template <typename T>
  T& adopt(std::unique_ptr<T> instance) {
    T& added = *instance;
    _instances.push_back(std::move(instance));
    return added;
  }

  // Runs the loop until `condition` holds; fails the test when `limit` passes first.
  void runUntil(const std::function<bool()>& condition, milliseconds limit,
                const std::string& what);
  // Runs until `condition` or `limit`; true when the condition holds.
  bool runBounded(const std::function<bool()>& condition, milliseconds limit);
  // Runs the loop for `duration`: room for events that must not come to show up.
  void runFor(milliseconds duration);
  // Destroys one instance, or every one, and waits for their `done`.
  void destroy(Instance& instance);
  void destroyAll();

  uv_loop_t* loop() noexcept { return _loop.get(); }

  // Set while a table function runs (an event then breaks the ABI).
  int tableCallDepth = 0;
  const std::thread::id thread = std::this_thread::get_id();

private:
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
                 const std::string& endpoint, milliseconds patience = kPatience);

}  // namespace ferry::transporttest
