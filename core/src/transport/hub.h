// The transport hub: ferry's side of the transport plugins.
//
// One I/O thread runs a libuv loop with an instance of every loaded transport plugin. The hub
// listens on each (the process's string bindings, written into its OBJREFs), keeps one
// connection per remote endpoint and multiplexes calls on it by call id, turns received frames
// into work for apartments (requests) or completions for waiting callers (responses), and answers
// OXID resolve requests for this process's apartments (the embedded resolver).
//
// Frames are specified in core/schema/orpc.capnp. Malformed frames are counted as protocol
// errors and close that connection only.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <atomic>
#include <map>
#include <tuple>
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

#include "../channel.h"
#include "../loop-wake.h"
#include "../objref.h"
#include "../orpc/call-table.h"
#include "../orpc/link.h"
#include "../orpc/remote-channel.h"
#include "../orpc/reply-cache.h"
#include "../resolver/registration.h"
#include "../resolver/registry.h"
#include "../resolver/resolution.h"

namespace ferry::detail {

class RuntimeImpl;
class OrpcMessage;

class TransportHub final : public orpc::RequestSender {
public:
  using LinkId = orpc::LinkId;

  explicit TransportHub(RuntimeImpl& runtime);
  TransportHub(const TransportHub&) = delete;
  ~TransportHub() override;

  // Starts the I/O thread, creates an instance of each transport the options allow and listens
  // on it. Transports that fail to start are logged and left out.
  void start(const RuntimeOptions& options);
  // Closes everything and joins the I/O thread. Idempotent.
  void stop() noexcept;

  // For threads that wake with the loop (loop-wake.h); empty until start() ran the loop.
  LoopWake loopWake() const noexcept override { return {_loopState}; }
  // Where this process listens, cheapest first.
  std::vector<StringBindingData> bindings() const;
  // Names of the transports running.
  std::vector<std::string> transports() const;
  bool hasTransport(const std::string& protseq) const;

  // A channel to exporter `oxid` through `binding` (one connection per endpoint, shared).
  std::shared_ptr<Channel> channel(const StringBindingData& binding, Oxid oxid,
                                   MarshalContext distance);

  // Opens (or finds open) the connection to `binding`; waits in the calling apartment, bounded by
  // the call timeout and the connect timeout. Throws unavailable, with the transport's reason
  // (permission denied, refused, no route, timed out), when it cannot be opened.
  void connect(const StringBindingData& binding);

  // Asks the resolver at `binding` for `oxid`; waits in the calling apartment (bounded by the
  // call timeout). Throws objectNotRegistered for an unknown OXID, unavailable when the binding
  // cannot be reached.
  Resolution resolve(const StringBindingData& binding, Oxid oxid);

  // Tells the host's ferryd (if this process registers with one) about an apartment, or that it
  // is gone. Any thread. The hub keeps the announced apartments and registers them all again on
  // every new connection to ferryd: when that connection closes or cannot be made it retries on
  // a timer (1 s, doubling up to 30 s), with one warning while ferryd stays unreachable and an
  // info line when it is back.
  void announce(Oxid oxid, Ipid remUnknown);
  void withdraw(Oxid oxid);

  // What this process answers for one of its apartments.
  Resolution localResolution(Oxid oxid, Ipid remUnknown) const;

  // For the remote channel: sends a request frame (or fails `replyTo`). Any thread.
  void sendRequest(const std::string& bindingKey, const StringBindingData& binding, Oxid oxid,
                   std::unique_ptr<OutgoingRequest> request, Deadline deadline,
                   std::shared_ptr<OutboundCall> call) override;

  // For replies of served calls: sends a response frame to the caller (on the connection the
  // request came on, or the newest that carried a resent copy) and keeps it in the reply cache.
  // Any thread.
  void sendResponse(LinkId link, uint64_t caller, uint64_t callId,
                    std::unique_ptr<OutgoingResponse> response);

private:
  struct Instance;
  struct Connection;
  using CallEntry = orpc::CallTable::Entry;

  // I/O thread plumbing.
  void post(std::function<void()> fn);
  static void onAsync(uv_async_t* handle);
  void runLoop() noexcept;
  void drainTasks() noexcept;

  // On the I/O thread.
  // The connection to `binding`, opening it if needed; null (with the reason in `why`) when it
  // cannot be started.
  Connection* connectionFor(const std::string& key, const StringBindingData& binding,
                            std::string* why = nullptr);
  void sendFrame(Connection& connection, std::vector<uint8_t> frame);
  static LinkId linkOf(const Connection& connection) noexcept;
  void onAccepted(Instance& instance, ferry_conn_id conn, const ferry_peer_info_v1* peer);
  void onConnected(Instance& instance, ferry_conn_id conn, int status);
  void onReceived(Instance& instance, ferry_conn_id conn, const uint8_t* data, size_t size);
  void onClosed(Instance& instance, ferry_conn_id conn, int status);
  // Fails what waits on the connection. `lost`: it closed with an error, so its calls are sent
  // again (returned, to be handed to resendCalls once the connection is gone) and the calls it
  // brought keep running for their callers' resent copies.
  std::vector<std::pair<uint64_t, CallEntry>> failConnection(Connection& connection, Errc code,
                                                             const std::string& why,
                                                             bool lost = false);
  void serveRequest(Connection& connection, uint64_t callId, Oxid oxid, bool resent,
                    OrpcMessage message);
  void serveResponse(Connection& connection, uint64_t callId, OrpcMessage message);
  void serveResolve(Connection& connection, uint64_t callId, OrpcMessage message);
  void acceptRegistration(Connection& connection, OrpcMessage message, bool add);
  // Registration with ferryd, on the loop: records the apartment (remUnknown) or its withdrawal
  // (null) in _announced and tells ferryd if connected; connects if not and no retry waits.
  void tellResolver(Oxid oxid, const Ipid* remUnknown);
  // Connects to ferryd and registers every announced apartment on the new connection.
  void connectResolver();
  // The connection to ferryd closed or could not be made: warns (once until it is back) and
  // schedules connectResolver.
  void resolverLost(const std::string& why);
  // For onConnected/onClosed: whether `connection` is this process's connection to ferryd.
  bool isResolverConnection(const Connection& connection) const;
  void protocolError(Instance& instance, ferry_conn_id conn, const std::string& why);

  RuntimeImpl& _runtime;

  // I/O thread.
  uv_loop_t _loop{};
  uv_async_t _async{};
  std::thread _thread;
  std::mutex _tasksMutex;
  std::deque<std::function<void()>> _tasks;
  bool _stopping = false;  // guarded by _tasksMutex
  bool _started = false;

  // Loop thread only.
  std::vector<std::unique_ptr<Instance>> _instances;
  std::map<std::pair<uint32_t, ferry_conn_id>, std::unique_ptr<Connection>> _connections;
  std::unordered_map<std::string, Connection*> _byKey;  // outbound, by binding key

  // ferryd: the apartments other processes registered (loop thread only).
  Registry _registry;
  // This process's registration with ferryd (loop thread only, but for enabled(), which is
  // written once by start()), and the retry timer.
  FerrydRegistration _registration;
  uv_timer_t _reregister{};

  // The calls this process sent, waiting for responses (any thread).
  orpc::CallTable _calls;
  // Registers `entry` and lets its call cancel over the link it went out on.
  void track(uint64_t callId, CallEntry entry);
  // On the loop, after a lost outbound connection is gone from _byKey: sends its calls again.
  void resendCalls(std::vector<std::pair<uint64_t, CallEntry>> calls, const std::string& why);
  // Writes a frame from the calling thread; false when that path is not available (no
  // send_any_thread, the connection closing, the hub stopping).
  bool sendDirect(LinkId link, const std::vector<uint8_t>& frame);
  // Sends a response frame on `link`, directly or through the loop. Any thread.
  void sendResponseFrame(LinkId link, std::shared_ptr<const std::vector<uint8_t>> frame);

  // Asks the exporter to cancel a call this process sent (a cancel frame). Any thread.
  void sendCancel(LinkId link, uint64_t callId);

  // The calls this process serves for other processes (any thread), and its expiry timer.
  std::unique_ptr<orpc::ReplyCache> _replies;
  uv_timer_t _expiry{};

  // Open outbound connections by binding key, for direct sends.
  std::mutex _openMutex;
  std::unordered_map<std::string, LinkId> _openByKey;  // guarded by _openMutex
  // Held shared by direct senders, exclusively by stop() before it destroys the instances.
  std::shared_mutex _directGate;
  bool _directAllowed = false;  // guarded by _directGate

  // loopWake(): published by start(), withdrawn by stop().
  const std::shared_ptr<LoopState> _loopState = std::make_shared<LoopState>();
  uv_prepare_t _prepare{};

  // Written once by start().
  mutable std::mutex _mutex;
  std::vector<StringBindingData> _bindings;
};

}  // namespace ferry::detail
