// The udp transport plugin: reliable, ordered messages over UDP sessions (PROTOCOL.md).
//
// Bindings are tcp's: a numeric IPv4 or IPv6 address (no brackets, no host names) and a decimal
// port; listening on "" or "0" picks a free port. IPv6 sockets are IPv6-only. Peers are described
// as "1.2.3.4:port" or "[::1]:port".
//
// This header declares the instance, UdpTransport: its sockets, the demultiplexing of datagrams
// to sessions by the session id the receiver chose, the stateless answers (COOKIE to a HELLO
// without a valid cookie, REJECT to a packet for an unknown session), one timer for all sessions,
// and the event rules of the transport ABI:
//   - events are raised from libuv callbacks only: a table function that needs to report
//     something (close(), a connect that times out at once) queues it, and the queue is run from
//     the loop's check phase;
//   - nothing is raised after destroy();
//   - sessions are freed only after the callback that finished them has returned.
//
// Its parts: udp-transport.cpp (life and the table functions), udp-transport-datagrams.cpp
// (sockets, datagrams out and in), udp-transport-handshake.cpp (the long-header packets: HELLO,
// COOKIE, HANDSHAKE, REJECT, and the short-header routing), udp-transport-sessions.cpp (the
// session table, the timer, the check phase), udp-transport-faults.cpp (the fault layer) and
// udp-transport-abi.cpp (the C ABI: settings, create, the table).
//
// Threads and the lock. The loop thread runs everything, except send_any_thread, which any thread
// may call. One mutex per instance, _mutex, guards every member of UdpTransport except its libuv
// handles and receive buffer (loop-only), what start() sets once, and the hand-off (below); and
// through them every session's state (reliability, outbox and inbox, packet numbers, RTT
// estimator), the congestion controllers, the counters and the memory budget:
//   - every libuv callback and every table function holds it while it runs, and releases it
//     only around a call to the host's events (callHost): the host may call table functions
//     from inside an event, and other threads may wait on the host while they hold a lock of
//     their own;
//   - send_any_thread never waits for the loop on _mutex. While the loop is inside an event,
//     for a message larger than kSenderFlushMax (which the loop sends in any case), or when
//     _mutex is held (try_lock fails), it hands the message off (next item). Otherwise it
//     holds _mutex while it queues the message on its session; when the message is at most
//     kSenderFlushMax, nothing of the session waited to be sent before it and none of its
//     packets is unacknowledged (no calls in flight), the calling thread then flushes the
//     session itself (packet numbers, the retransmission record, sendmsg on the socket's
//     descriptor), with _offLoop set so that what only the loop may do (libuv handles: timers,
//     the idle handle, uv_udp_send) is handed to the loop by waking it (_wake). It wakes the
//     loop only for such work: a session's deadline (retransmission, pacing) earlier than the
//     loop's timer, a datagram the kernel refused with EAGAIN, a session with more to send than
//     one flush sends. A message queued behind others it marks dirty and wakes the loop, which
//     flushes it;
//   - the hand-off: a queue of whole messages (_pending) with its own small mutex,
//     _pendingMutex, which guards every _pending* member (the two atomic ones are changed under
//     it and also read without it, as hints) and _sendable (the open connections,
//     mirrored from _connections, with the largest message each takes, so that a hand-off
//     refuses what send() would: UV_ENOTCONN, UV_EMSGSIZE). Whoever holds _mutex and queues on
//     a session drains the hand-off first (drainPending, taking _pendingMutex inside _mutex,
//     never the other way round): the loop in its check phase and when woken, and send() and
//     send_any_thread's locked path, so that no message overtakes one its thread handed off
//     before. A sender wakes the loop when its message is the first in the queue and the loop
//     is not inside an event, through _handOffFd after releasing _pendingMutex; an event that
//     returns with messages handed off keeps the loop from blocking (the idle handle) until its
//     check phase has drained them. The queue holds at most the instance's global budget in
//     bytes; a sender that finds it full takes _mutex and waits, as send() does. A handed-off
//     message whose connection closed before the drain is dropped, as any message queued on a
//     connection that then closes. destroy() empties the queue and closes it (UV_ENOTCONN from
//     then on) before it closes _wake and _handOffWatch;
//   - while the loop is inside an event, messages reach their sessions when the event returns:
//     session code is then between two steps, and the loop flushes after the event. A
//     connection closed, or an instance destroyed, answers UV_ENOTCONN.
// libuv handles and the receive buffer are loop-only.
//
// Built twice. The shipping plugin (ferry-transport-udp.so) is these files alone. The test-only
// build (fault-layer/, installed nowhere) compiles them with FERRY_UDP_FAULT_LAYER: it adds the
// fault layer (fault.h) just before sendmsg and just after receipt, configured by
// FERRY_UDP_FAULT, its counters (fault_*), and one export for tests, ferry_udp_test_set_fault_v1
// (fault-layer.h).
#pragma once

#include <netinet/in.h>
#include <openssl/rand.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <ferry/plugin/transport.h>

#include "abi-glue.h"
#include "address.h"
#include "cookie.h"
#include "counters.h"
#include "inet-binding.h"
#include "options.h"
#include "session.h"
#include "wire.h"

#ifdef FERRY_UDP_FAULT_LAYER
#include "fault.h"
#endif

namespace ferry::transports::udp {

inline constexpr uint64_t kNsPerMs = 1000000;
inline constexpr size_t kRecvChunk = 64 * 1024;  // libuv's recvmmsg slot size
inline constexpr size_t kRecvChunks = 8;
// Bytes waiting in uv_udp_send after EAGAIN; beyond this a datagram is dropped (recovery repeats
// it, and the congestion controller learns something true about this host).
inline constexpr uint64_t kMaxKernelQueue = 8ull << 20;
// The largest message a thread other than the loop's writes itself (send_any_thread): a few
// datagrams. Larger ones, like messages queued behind others, the loop sends.
inline constexpr size_t kSenderFlushMax = 8 * 1024;
// The smallest datagram a REJECT answers: a REJECT is never larger than what it answers.
inline constexpr size_t kRejectSize = kLongHeaderSize + 1 + 1 + 8 + kCrcSize;
inline constexpr uint64_t kDebugLinesPerSecond = 20;

#ifdef FERRY_UDP_FAULT_LAYER
// Numbers the instances of this process, so that each draws its own fault sequence.
inline std::atomic<uint64_t> gInstanceOrdinal{0};
#endif

class UdpTransport;

struct UdpSocket {
  UdpTransport* owner = nullptr;
  uv_udp_t handle{};
  int fd = -1;  // the handle's descriptor, for sends from other threads
  bool listener = false;
  bool closing = false;
};

// A datagram handed to uv_udp_send after EAGAIN; freed by its callback.
struct QueuedSend {
  uv_udp_send_t request{};
  UdpTransport* owner = nullptr;
  size_t size = 0;
  std::unique_ptr<uint8_t[]> bytes;
};

#ifdef FERRY_UDP_FAULT_LAYER
// A datagram the fault layer holds back.
struct HeldDatagram {
  bool outgoing = false;
  UdpSocket* socket = nullptr;
  sockaddr_storage peer{};
  std::vector<uint8_t> bytes;
};
#endif

// A datagram a thread other than the loop's could not send (EAGAIN, or uv_udp_send's queue not
// empty): the loop sends it.
struct HandedOff {
  UdpSocket* socket = nullptr;
  sockaddr_storage peer{};
  std::vector<uint8_t> bytes;
};

// A message send_any_thread handed to the loop without taking _mutex ("Threads and the lock").
struct PendingMessage {
  ferry_conn_id conn = 0;
  size_t size = 0;
  std::unique_ptr<uint8_t[]> bytes;  // null for an empty message
};

struct Deferred {
  enum class Kind { connectFailed, closed } kind;
  ferry_conn_id conn;
  int status;
};

class UdpTransport final : public SessionEnv {
public:
  UdpTransport(const ferry_host_v1* host, uv_loop_t* loop, const ferry_transport_events_v1& events,
               const Options& options);
  ~UdpTransport();

  int start();
  int listen(const char* address, const char* endpoint, char* endpointOut, size_t endpointCap);
  int connect(const char* address, const char* endpoint, uint32_t timeoutMs, ferry_conn_id* out);
  int send(ferry_conn_id conn, const uint8_t* data, size_t size);
  // send() from any thread (the ABI's send_any_thread; see "Threads and the lock" above).
  int sendAnyThread(ferry_conn_id conn, const uint8_t* data, size_t size);
  void close(ferry_conn_id conn);
  void destroy(void (*done)(void*), void* arg);
  // ferry_transport_v1 connection_info of an open session's connection; UV_ENOTCONN otherwise.
  int connectionInfo(ferry_conn_id conn, ferry_connection_info_v1& out) const;
  // Writes up to `cap` counters; returns how many there are.
  size_t reportCounters(ferry_counter_v1* out, size_t cap) const;
#ifdef FERRY_UDP_FAULT_LAYER
  // Replaces the fault settings; false, with the problem in `why`, for a malformed spec.
  bool setFault(const char* spec, std::string& why);
#endif

  void logLine(int level, const std::string& message) const noexcept;

  // SessionEnv.
  uint64_t now() override { return uv_hrtime(); }
  int transmit(Session& session, const DatagramPieces& datagram) override;
  void established(Session& session) override;
  void message(Session& session, const uint8_t* data, size_t size) override;
  void ended(Session& session, int status) override;
  void finished(Session& session) override;
  void deadlineChanged(Session& session) override;
  void blocked(Session& session) override { _blocked.insert(&session); }
  void wantFlush(Session& session) override { markDirty(session); }
  Counters& counters() override { return _counters; }
  MemoryBudget& budget() override { return _budget; }
  // Also what the guards of abi-glue.h log through.
  void log(int level, const std::string& message) noexcept override { logLine(level, message); }

private:
  // Sockets.
  int openSocket(const sockaddr_storage& bindAddress, bool listener, UdpSocket*& out);
  UdpSocket* clientSocket(int family, int& err);
  void closeSocket(UdpSocket& socket);
  static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void onRecv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                     unsigned flags) noexcept;
  static void onSent(uv_udp_send_t* request, int status) noexcept;
  static void onSocketClosed(uv_handle_t* handle) noexcept;
  static void onHandleClosed(uv_handle_t* handle) noexcept;

  // Datagrams out: (in the test build, through the fault layer,) then uv_udp_try_send or the
  // queue; off the loop (_offLoop), sendmsg on the descriptor or a hand-off to the loop. The
  // pieces go to the kernel as they are (iovecs); what must outlive the call is copied.
  int sendDatagram(UdpSocket& socket, const sockaddr_storage& peer,
                   const DatagramPieces& datagram);
  int rawSend(UdpSocket& socket, const sockaddr_storage& peer, const DatagramPieces& datagram);
  int rawSend(UdpSocket& socket, const sockaddr_storage& peer, const uint8_t* data, size_t size) {
    return rawSend(socket, peer, DatagramPieces(data, size));
  }
  int sendOffLoop(UdpSocket& socket, const sockaddr_storage& peer,
                  const DatagramPieces& datagram);
  // Counts a send the kernel refused (not EAGAIN) and returns `rc`.
  int sendFailed(int rc, size_t size, const sockaddr_storage& peer);
  void sendUnvalidated(UdpSocket& socket, const sockaddr_storage& peer, const uint8_t* data,
                       size_t size);

  // Datagrams in (in the test build, after the fault layer).
  void received(UdpSocket& socket, const uint8_t* data, size_t size, const sockaddr_storage& from);
  void process(UdpSocket& socket, const uint8_t* data, size_t size, const sockaddr_storage& from);
  void handleHello(UdpSocket& socket, const Header& header, const uint8_t* frames,
                   size_t framesSize, size_t size, const sockaddr_storage& from);
  void handleCookie(UdpSocket& socket, const Header& header, const uint8_t* frames,
                    size_t framesSize, const sockaddr_storage& from);
  void handleHandshake(UdpSocket& socket, const Header& header, const uint8_t* frames,
                       size_t framesSize, const sockaddr_storage& from);
  void handleReject(UdpSocket& socket, const Header& header, const uint8_t* frames,
                    size_t framesSize, const sockaddr_storage& from);
  void handleShort(UdpSocket& socket, const Header& header, const uint8_t* frames,
                   size_t framesSize, size_t size, const sockaddr_storage& from);
  void maybeReject(UdpSocket& socket, const Header& header, size_t size,
                   const sockaddr_storage& from);
  void unvalidated(size_t size) noexcept;
  void dropped(uint64_t& counter, const char* why, const sockaddr_storage& from);

#ifdef FERRY_UDP_FAULT_LAYER
  int sendThroughFaults(UdpSocket& socket, const sockaddr_storage& peer, const uint8_t* data,
                        size_t size);
  void receiveThroughFaults(UdpSocket& socket, const uint8_t* data, size_t size,
                            const sockaddr_storage& from);
  // The fault layer's queue of held datagrams.
  void hold(bool outgoing, UdpSocket& socket, const sockaddr_storage& peer, const uint8_t* data,
            const FaultCopy& copy);
  void armFaultTimer();
  static void onFaultTimer(uv_timer_t* timer) noexcept;
#endif

  // Sessions.
  Session* findSession(uint64_t localId) const;
  Session* routed(UdpSocket& socket, uint64_t localId, const sockaddr_storage& from);
  uint64_t newSessionId() const;
  std::shared_ptr<CongestionController> controllerFor(const sockaddr_storage& peer);
  std::unique_ptr<Session> makeSession(SessionConfig::Role role, UdpSocket& socket,
                                       const sockaddr_storage& peer);
  static std::string helloKey(const sockaddr_storage& from, uint64_t clientSession);
  ferry_peer_info_v1 peerInfo(const Session& session, std::string& text) const;
  void markDirty(Session& session);
  void defer(Deferred::Kind kind, ferry_conn_id conn, int status);
  void armTimer(uint64_t deadline);
  void runDue();
  static void onTimer(uv_timer_t* timer) noexcept;
  static void onCheck(uv_check_t* check) noexcept;
  static void onIdle(uv_idle_t* idle) noexcept;
  void check();
  void handleClosed();
  void startIdle();
  // Runs the host's event `raise` without the lock (see "Threads and the lock"); the loop only.
  template <typename Raise>
  void callHost(Raise&& raise);
  // Asks the loop to do what only it may (the lock held, off the loop).
  void wakeLoop();
  // The hand-off ("Threads and the lock"). handOff: queues the message without _mutex when the
  // loop is inside an event, the message is larger than kSenderFlushMax or `lockBusy`, and
  // returns send_any_thread's result; nothing when the caller must queue it under _mutex (none
  // of these, or the queue is full).
  std::optional<int> handOff(ferry_conn_id conn, const uint8_t* data, size_t size, bool lockBusy);
  // _mutex held: queues the handed-off messages on their sessions, in order, and marks those
  // dirty; true when it queued any (the caller schedules the flush).
  bool drainPending();
  // _mutex held: the connection is open for sends, or no longer.
  void setSendable(ferry_conn_id conn, uint64_t maxMessage);
  void forgetSendable(ferry_conn_id conn);
  static void onWake(uv_async_t* async) noexcept;
  static void onHandOffWake(uv_poll_t* poll, int status, int events) noexcept;
  void woken();

  const ferry_host_v1* _host;
  uv_loop_t* _loop;
  ferry_transport_events_v1 _events;
  Options _options;
  uint64_t _maxMessageSize;
  uint64_t _epoch = 0;
  std::unique_ptr<CookieJar> _cookies;
  RateLimiter _cookieLimiter;
  RateLimiter _rejectLimiter;
  Counters _counters{};
  MemoryBudget _budget;

  std::vector<UdpSocket*> _sockets;
  UdpSocket* _clientSocket4 = nullptr;
  UdpSocket* _clientSocket6 = nullptr;
  std::unique_ptr<uint8_t[]> _recvBuffer;
  uint64_t _kernelQueued = 0;

#ifdef FERRY_UDP_FAULT_LAYER
  uint64_t _ordinal = gInstanceOrdinal.fetch_add(1);
  std::unique_ptr<FaultInjector> _faultTx;
  std::unique_ptr<FaultInjector> _faultRx;
  std::multimap<uint64_t, HeldDatagram> _held;
  FaultCounts _retiredFaultTx;  // counts of injectors replaced by setFault
  FaultCounts _retiredFaultRx;
  uv_timer_t _faultTimer{};
#endif

  std::unordered_map<uint64_t, std::unique_ptr<Session>> _sessions;  // by local session id
  std::unordered_map<ferry_conn_id, Session*> _connections;          // what the host may name
  std::unordered_map<std::string, Session*> _helloIndex;  // server sessions by client address+id
  // Server sessions by the IP address they came from (hostKey), for the per-address bounds:
  // how many there are, and the half-open ones, oldest first.
  struct SourceSessions {
    size_t sessions = 0;
    std::deque<Session*> halfOpen;
  };
  std::unordered_map<std::string, SourceSessions> _bySource;
  // Makes room for a server session from `from`, or says why there is none.
  bool admitServerSession(const sockaddr_storage& from);
  void forgetHalfOpen(Session& session);
  std::unordered_multimap<uint64_t, Session*> _byRemote;  // established sessions by remote id
  std::unordered_map<std::string, std::weak_ptr<CongestionController>> _controllers;
  std::multimap<uint64_t, Session*> _deadlines;
  std::unordered_map<Session*, std::multimap<uint64_t, Session*>::iterator> _deadlineOf;
  std::unordered_set<Session*> _dirty;
  std::unordered_set<Session*> _blocked;
  std::vector<std::unique_ptr<Session>> _graveyard;
  std::vector<Deferred> _deferred;
  ferry_conn_id _nextConn = 1;
  size_t _halfOpen = 0;

  // Off the loop's thread, the lock held: the thread that flushes a session for send_any_thread.
  bool _offLoop = false;
  // Host events running now, the lock released (the loop's thread).
  int _inHost = 0;
  bool _wakePending = false;
  std::vector<HandedOff> _handedOff;
  uint64_t _handedOffBytes = 0;
  uv_async_t _wake{};  // unreferenced: it never keeps the loop alive
  // handOff()'s wake-up: an eventfd written after _pendingMutex is released, watched by an
  // unreferenced poll handle; closed by the destructor (see destroy()). Not _wake: libuv 1.44's
  // woken loop spins in uv__async_spin until the sender's write() returns, which on one core
  // cost a 64 KiB echo about 4 context switches per call. wakeLoop() keeps _wake: written under
  // _mutex, it wakes the loop late enough that messages sent with calls in flight go out
  // together (with this eventfd instead, 32 calls in flight sent one datagram per message:
  // 35k instead of 60-87k calls/s on 2 cores).
  int _handOffFd = -1;
  uv_poll_t _handOffWatch{};
  std::vector<PendingMessage> _draining;  // drainPending's batch, kept for its capacity

  // The hand-off, guarded by _pendingMutex (taken inside _mutex when both are held).
  mutable std::mutex _pendingMutex;
  std::vector<PendingMessage> _pending;
  uint64_t _pendingBytes = 0;     // queued and reserved by senders copying their message
  // The loop is inside a host event (it drains when the event returns); changed under the mutex,
  // read without it as a hint.
  std::atomic<int> _pendingHostEvents{0};
  bool _pendingClosed = false;    // destroy() was called
  std::unordered_map<ferry_conn_id, uint64_t> _sendable;  // open connections: largest message
  // Whether _pending may hold messages: a hint read without the mutex (set under it).
  std::atomic<bool> _pendingAny{false};

  uv_timer_t _timer{};
  uint64_t _armedAt = 0;
  uv_check_t _check{};
  uv_idle_t _idle{};
  bool _idleActive = false;
  int _liveHandles = 0;
  bool _destroying = false;
  void (*_done)(void*) = nullptr;
  void* _doneArg = nullptr;

  // The debug lines' rate limit: logLine runs with or without the lock.
  mutable std::atomic<uint64_t> _debugWindowStart{0};
  mutable std::atomic<uint64_t> _debugLines{0};

  // Guards what "Threads and the lock" at the top of this file says.
  mutable std::mutex _mutex;
};

}  // namespace ferry::transports::udp
