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

#include "channel.h"
#include "loop-wake.h"
#include "objref.h"

namespace ferry::detail {

class RuntimeImpl;
class OrpcMessage;

// What an OXID resolves to.
struct Resolution {
  Oxid oxid;
  Ipid remUnknown;
  std::vector<StringBindingData> bindings;
  uint64_t processId = 0;
  std::array<uint8_t, 16> hostId{};
};

// "tcp:127.0.0.1[5000]"
std::string bindingText(const StringBindingData& binding);

class TransportHub {
public:
  explicit TransportHub(RuntimeImpl& runtime);
  TransportHub(const TransportHub&) = delete;
  ~TransportHub();

  // Starts the I/O thread, creates an instance of each transport the options allow and listens
  // on it. Transports that fail to start are logged and left out.
  void start(const RuntimeOptions& options);
  // Closes everything and joins the I/O thread. Idempotent.
  void stop() noexcept;

  // For threads that wake with the loop (loop-wake.h); empty until start() ran the loop.
  LoopWake loopWake() const noexcept { return {_loopState}; }
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

  // The default ferryd binding: "pipe:/run/ferry[ferryd]".
  static StringBindingData defaultResolver();
  // The ferryd to register with, from RuntimeOptions::resolver or FERRY_RESOLVER (which wins);
  // an empty protseq for none. Throws invalidArgument, naming the setting, for text that is not
  // a pipe string binding (ferryd takes registrations over its pipe only), "auto" or "none".
  static StringBindingData resolverSetting(const RuntimeOptions& options);

  // For the remote channel: sends a request frame (or fails `replyTo`). Any thread.
  void sendRequest(const std::string& bindingKey, const StringBindingData& binding, Oxid oxid,
                   std::unique_ptr<OutgoingRequest> request, Deadline deadline,
                   std::shared_ptr<ReplySink> replyTo);

  // For replies of served calls: sends a response frame to the caller (on the connection the
  // request came on, or the newest that carried a resent copy) and keeps it in the reply cache.
  // Any thread.
  void sendResponse(uint32_t instance, ferry_conn_id conn, uint64_t caller, uint64_t callId,
                    std::unique_ptr<OutgoingResponse> response);

private:
  struct Instance;
  struct Connection;
  struct CallEntry;

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
  void serveRequest(Instance& instance, Connection& connection, uint64_t callId, Oxid oxid,
                    bool resent, OrpcMessage message);
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

  // ferryd: OXIDs registered by other processes, and the connection that registered each (its
  // entries go when it closes) with the registering process's credentials. Only that process
  // may update or withdraw an entry: from that connection, or from a newer one of the same pid
  // and uid (the kernel's SO_PEERCRED). Loop thread only.
  struct Registered {
    Resolution resolution;
    Connection* connection;
    uint32_t uid = 0;
    int32_t pid = 0;
  };
  std::unordered_map<Oxid, Registered> _registered;
  // The ferryd this process registers with (empty protseq: none). Written once by start().
  StringBindingData _resolver;
  std::string _resolverKey;  // bindingText(_resolver)
  // Loop thread only: this process's apartments as registered with ferryd (OXID → RemUnknown
  // IPID), the retry timer, its next delay, and whether the unreachable warning was given.
  std::unordered_map<Oxid, Ipid> _announced;
  uv_timer_t _reregister{};
  uint64_t _reregisterDelayMs = 1000;
  bool _resolverDown = false;

  // Calls waiting for a response, by call id, with the connection they went out on. Any thread:
  // callers register their calls and write directly (send_any_thread) when the connection is
  // open; the loop delivers responses.
  struct CallEntry {
    std::shared_ptr<ReplySink> sink;
    uint32_t instance = 0;
    ferry_conn_id conn = 0;
    // The request frame as sent, kept until the response comes: when the connection is lost it
    // is sent again (same call id, `resent` flag) on a new connection, and the exporter's reply
    // cache keeps the call from running twice (core/schema/orpc.capnp).
    std::shared_ptr<std::vector<uint8_t>> frame;
    std::string key;  // the binding it went to
    StringBindingData binding;
    int resends = 0;
  };
  void registerCall(uint64_t callId, CallEntry entry);
  // `answered`: its response came (to be acknowledged to the exporter).
  std::shared_ptr<ReplySink> takeCall(uint64_t callId, uint32_t instance, ferry_conn_id conn,
                                      bool answered = false);
  void failCallsOf(uint32_t instance, ferry_conn_id conn, Errc code, const std::string& why);
  // On the loop, after a lost outbound connection is gone from _byKey: sends its calls again.
  void resendCalls(std::vector<std::pair<uint64_t, CallEntry>> calls, const std::string& why);
  // Writes a frame from the calling thread; false when that path is not available (no
  // send_any_thread, the connection closing, the hub stopping).
  bool sendDirect(uint32_t instance, ferry_conn_id conn, const std::vector<uint8_t>& frame);
  // Sends a response frame to (instance, conn), directly or through the loop. Any thread.
  void sendResponseFrame(uint32_t instance, ferry_conn_id conn,
                         std::shared_ptr<const std::vector<uint8_t>> frame);

  // Asks the exporter to cancel a call this process sent (frame kind 7). Any thread.
  void sendCancel(uint32_t instance, ferry_conn_id conn, uint64_t callId);

  // The reply cache (core/schema/orpc.capnp): the calls this process serves for other
  // processes, by caller and call id, from the request's arrival until the caller acknowledges
  // the response, the connection closes cleanly, or replyRetention after completion.
  struct ServedCall {
    uint32_t instance = 0;  // where the response goes: the newest connection the request came on
    ferry_conn_id conn = 0;
    std::shared_ptr<std::atomic<bool>> canceled;  // set by a cancel frame or a clean close
    bool done = false;
    std::shared_ptr<const std::vector<uint8_t>> reply;  // once done; null if too large to keep
    Clock::time_point doneAt{};
  };
  struct Caller {
    std::map<uint64_t, ServedCall> calls;
    // Entries up to this call id were dropped by age: such a request may have run.
    uint64_t forgotten = 0;
    Clock::time_point lastSeen{};
  };
  // Drops a served entry (under _callsMutex).
  void forgetServed(std::map<uint64_t, ServedCall>::iterator it, Caller& caller);
  // Drops entries that are past replyRetention, and callers without entries (loop thread).
  void expireServed() noexcept;
  std::unordered_map<uint64_t, Caller> _callers;  // guarded by _callsMutex
  size_t _servedCount = 0;                        // guarded by _callsMutex
  size_t _replyBytes = 0;                         // guarded by _callsMutex
  uv_timer_t _expiry{};

  // Call ids whose responses came on an outbound connection, for the next request's
  // Request.acknowledged (guarded by _callsMutex).
  std::map<std::pair<uint32_t, ferry_conn_id>, std::vector<uint64_t>> _acks;

  std::mutex _callsMutex;
  std::unordered_map<uint64_t, CallEntry> _calls;
  // Open outbound connections by binding key, for direct sends (guarded by _callsMutex).
  std::unordered_map<std::string, std::pair<uint32_t, ferry_conn_id>> _openByKey;
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

// A channel to one exporter of another process, over the hub.
class RemoteChannel final : public Channel {
public:
  RemoteChannel(TransportHub& hub, StringBindingData binding, Oxid oxid, MarshalContext distance);
  void send(std::unique_ptr<OutgoingRequest> request, Deadline deadline,
            std::shared_ptr<ReplySink> replyTo) noexcept override;
  MarshalContext distance() const noexcept override { return _distance; }
  std::string describe() const override { return _key; }

private:
  TransportHub& _hub;
  const StringBindingData _binding;
  const std::string _key;
  const Oxid _oxid;
  const MarshalContext _distance;
};

}  // namespace ferry::detail
