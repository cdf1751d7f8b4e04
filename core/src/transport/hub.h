// The transport hub: ferry's side of the transport plugins, and the network of the ORPC endpoint
// (orpc/network.h).
//
// One I/O thread runs a libuv loop with an instance of every loaded transport plugin. The hub
// listens on each (the process's string bindings, written into its OBJREFs), keeps one
// connection per remote endpoint, and reports the links' events — opened, a frame received, a
// send refused, ended — to its LinkEvents (the ORPC endpoint). It knows connections and bytes,
// not calls: what a frame means is the endpoint's business.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <uv.h>

#include <ferry/marshal.h>
#include <ferry/plugin/transport.h>
#include <ferry/runtime.h>

#include "../loop-wake.h"
#include "../objref.h"
#include "../orpc/network.h"

namespace ferry::detail {

class PendingCall;
class RuntimeImpl;

class TransportHub final : public orpc::Network {
public:
  using LinkId = orpc::LinkId;

  explicit TransportHub(RuntimeImpl& runtime);
  TransportHub(const TransportHub&) = delete;
  ~TransportHub() override;

  // Starts the I/O thread, creates an instance of each transport the options allow and listens
  // on it; link events go to `events` from then on. Transports that fail to start are logged and
  // left out. Returns false when no transport runs (RuntimeOptions::outOfProcess is off, or no
  // plugin is loaded): the hub then stays stopped.
  bool start(const RuntimeOptions& options, orpc::LinkEvents& events);
  // Closes everything (each open link ends with LinkEnd::shutdown) and joins the I/O thread.
  // Idempotent.
  void stop() noexcept;
  bool running() const noexcept { return _started; }

  // Names of the transports running.
  std::vector<std::string> transports() const;
  // Runtime::transportCounters: read on the I/O thread (inline when called there); none when
  // the hub is stopped.
  std::vector<TransportCounters> counters();
  bool hasTransport(const std::string& protseq) const;

  // What one link carried (frames the hub handed to its transport and took from it) and what
  // its transport measures of its path.
  struct LinkFigures {
    uint64_t messagesSent = 0;
    uint64_t bytesSent = 0;
    uint64_t messagesReceived = 0;
    uint64_t bytesReceived = 0;
    ferry_connection_info_v1 path{};  // 0 where the transport measures nothing
  };
  // On the I/O thread: the figures of an open link; none for a link the hub does not hold.
  std::optional<LinkFigures> figures(LinkId link);

  // Opens (or finds open) the connection to `binding`; waits in the calling apartment, bounded by
  // the call timeout and the connect timeout. Throws unavailable, with the transport's reason
  // (permission denied, refused, no route, timed out), when it cannot be opened.
  void connect(const StringBindingData& binding);

  // orpc::Network.
  void post(std::function<void()> task) override;
  bool stopping() const noexcept override;
  std::optional<LinkId> linkTo(const StringBindingData& binding, std::string* why) override;
  void send(LinkId link, std::vector<uint8_t> frame) override;
  void reject(LinkId link, const std::string& why) override;
  std::optional<LinkId> openLink(const std::string& bindingKey) override;
  bool sendNow(LinkId link, std::span<const uint8_t> frame) override;
  orpc::ReadOutcome receiveNow(LinkId link, std::span<const uint8_t> request, int wakeFd,
                               std::chrono::milliseconds timeout, orpc::FrameTaker take,
                               void* context) override;
  LoopWake loopWake() const noexcept override { return {_loopState}; }
  std::vector<StringBindingData> bindings() const override;

private:
  struct Instance;
  struct Connection;
  // A connection's message counts, from the I/O thread, direct senders and threads that read
  // their own responses (relaxed atomics).
  struct LinkTraffic {
    std::atomic<uint64_t> messagesSent{0};
    std::atomic<uint64_t> bytesSent{0};
    std::atomic<uint64_t> messagesReceived{0};
    std::atomic<uint64_t> bytesReceived{0};

    void sent(size_t bytes) noexcept {
      messagesSent.fetch_add(1, std::memory_order_relaxed);
      bytesSent.fetch_add(bytes, std::memory_order_relaxed);
    }
    void received(size_t bytes) noexcept {
      messagesReceived.fetch_add(1, std::memory_order_relaxed);
      bytesReceived.fetch_add(bytes, std::memory_order_relaxed);
    }
  };

  // I/O thread plumbing.
  static void onWake(uv_poll_t* handle, int status, int events);
  void runLoop() noexcept;
  void drainTasks() noexcept;

  // On the I/O thread.
  // The connection to `binding`, opening it if needed; null (with the reason in `why`) when it
  // cannot be started.
  Connection* connectionFor(const StringBindingData& binding, std::string* why);
  Connection* find(LinkId link);
  void sendFrame(Connection& connection, std::vector<uint8_t> frame);
  void onAccepted(Instance& instance, ferry_conn_id conn, const ferry_peer_info_v1* peer);
  void onConnected(Instance& instance, ferry_conn_id conn, int status,
                   const ferry_peer_info_v1* peer);
  static uint32_t capabilitiesOf(const Instance& instance) noexcept;
  void onReceived(Instance& instance, ferry_conn_id conn, const uint8_t* data, size_t size);
  void onClosed(Instance& instance, ferry_conn_id conn, int status);
  // Ends a connection: fails what waits for it to open, forgets it, and reports the end.
  void end(Connection& connection, orpc::LinkEnd how, const std::string& why);

  RuntimeImpl& _runtime;
  orpc::LinkEvents* _events = nullptr;  // written once by start()

  // I/O thread.
  uv_loop_t _loop{};
  // post() wakes the loop through this eventfd, written outside _tasksMutex; closed by the
  // destructor, so a post() that got in before the stop may still write it. Not a uv_async_t:
  // libuv 1.44's async handle makes the woken loop spin until the sender's write system call
  // has returned.
  int _wakeFd = -1;
  uv_poll_t _wakeWatch{};
  uv_timer_t _tick{};
  std::thread _thread;
  mutable std::mutex _tasksMutex;
  std::deque<std::function<void()>> _tasks;
  bool _tasksWoken = false;  // guarded by _tasksMutex: _wakeFd written, the loop not drained since
  bool _stopping = false;  // guarded by _tasksMutex
  bool _started = false;

  // Loop thread only.
  std::vector<std::unique_ptr<Instance>> _instances;
  std::map<std::pair<uint32_t, ferry_conn_id>, std::unique_ptr<Connection>> _connections;
  std::unordered_map<std::string, Connection*> _byKey;  // outbound, by binding text

  // Open outbound connections by binding text, for senders on any thread.
  std::mutex _openMutex;
  std::unordered_map<std::string, LinkId> _openByKey;  // guarded by _openMutex
  // Held shared by direct senders and readers (receiveNow, for as long as they wait), exclusively
  // by start() and stop() only: stop() before it destroys the instances.
  mutable std::shared_mutex _directGate;
  bool _directAllowed = false;  // guarded by _directGate
  // The traffic counts of the open connections, for direct senders and readers (guarded by
  // _trafficGate, which the I/O thread takes exclusively as connections come and go; each points
  // into its Connection, and leaves before it).
  std::shared_mutex _trafficGate;
  std::unordered_map<LinkId, LinkTraffic*, orpc::LinkIdHash> _directTraffic;
  // The wake descriptors of the threads in receiveNow, which hold _directGate shared while they
  // wait: stop() writes them before it takes the gate, so that it waits for none of them.
  std::mutex _readersMutex;
  std::vector<int> _readers;     // guarded by _readersMutex
  bool _readersClosed = false;   // guarded by _readersMutex: stop() began

  // loopWake(): published by start(), withdrawn by stop().
  const std::shared_ptr<LoopState> _loopState = std::make_shared<LoopState>();
  uv_prepare_t _prepare{};

  // Written once by start().
  mutable std::mutex _mutex;
  std::vector<StringBindingData> _bindings;
};

}  // namespace ferry::detail
