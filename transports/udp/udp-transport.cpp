// The udp transport plugin: reliable, ordered messages over UDP sessions (PROTOCOL.md).
//
// Bindings are tcp's: a numeric IPv4 or IPv6 address (no brackets, no host names) and a decimal
// port; listening on "" or "0" picks a free port. IPv6 sockets are IPv6-only. Peers are described
// as "1.2.3.4:port" or "[::1]:port".
//
// This file is the instance: its sockets, the demultiplexing of datagrams to sessions by the
// session id the receiver chose, the stateless answers (COOKIE to a HELLO without a valid cookie,
// REJECT to a packet for an unknown session), one timer for all sessions, and the event rules of
// the transport ABI:
//   - events are raised from libuv callbacks only: a table function that needs to report
//     something (close(), a connect that times out at once) queues it, and the queue is run from
//     the loop's check phase;
//   - nothing is raised after destroy();
//   - sessions are freed only after the callback that finished them has returned.
//
// Built twice. The shipping plugin (ferry-transport-udp.so) is this file alone. The test-only
// build (fault-layer/, installed nowhere) defines FERRY_UDP_FAULT_LAYER: it adds the fault layer
// (fault.h) just before sendmsg and just after receipt, configured by FERRY_UDP_FAULT, its
// counters (fault_*), and one export for tests, ferry_udp_test_set_fault_v1 (fault-layer.h).
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
#include <new>
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
#include "fault-layer.h"
#include "fault.h"
#endif

namespace ferry::transports::udp {
namespace {

constexpr uint64_t kNsPerMs = 1000000;
constexpr size_t kRecvChunk = 64 * 1024;  // libuv's recvmmsg slot size
constexpr size_t kRecvChunks = 8;
// Bytes waiting in uv_udp_send after EAGAIN; beyond this a datagram is dropped (recovery repeats
// it, and the congestion controller learns something true about this host).
constexpr uint64_t kMaxKernelQueue = 8ull << 20;
// The smallest datagram a REJECT answers: a REJECT is never larger than what it answers.
constexpr size_t kRejectSize = kLongHeaderSize + 1 + 1 + 8 + kCrcSize;
constexpr uint64_t kDebugLinesPerSecond = 20;

#ifdef FERRY_UDP_FAULT_LAYER
// Numbers the instances of this process, so that each draws its own fault sequence.
std::atomic<uint64_t> gInstanceOrdinal{0};
#endif

// 128 random bits per process (A3.1 client_instance): diagnostics on the server's side.
const uint8_t* clientInstanceId() {
  static const auto id = [] {
    std::array<uint8_t, kInstanceIdSize> bytes{};
    RAND_bytes(bytes.data(), static_cast<int>(bytes.size()));
    return bytes;
  }();
  return id.data();
}

class UdpTransport;

struct UdpSocket {
  UdpTransport* owner = nullptr;
  uv_udp_t handle{};
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
  int transmit(Session& session, const uint8_t* data, size_t size) override;
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
  // queue.
  int sendDatagram(UdpSocket& socket, const sockaddr_storage& peer, const uint8_t* data,
                   size_t size);
  int rawSend(UdpSocket& socket, const sockaddr_storage& peer, const uint8_t* data, size_t size);
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

  uv_timer_t _timer{};
  uint64_t _armedAt = 0;
  uv_check_t _check{};
  uv_idle_t _idle{};
  bool _idleActive = false;
  int _liveHandles = 0;
  bool _destroying = false;
  void (*_done)(void*) = nullptr;
  void* _doneArg = nullptr;

  mutable uint64_t _debugWindowStart = 0;
  mutable uint64_t _debugLines = 0;
};

// --- Life. ---

UdpTransport::UdpTransport(const ferry_host_v1* host, uv_loop_t* loop,
                           const ferry_transport_events_v1& events, const Options& options)
    : _host(host),
      _loop(loop),
      _events(events),
      _options(options),
      _maxMessageSize(options.maxMessageSize != 0
                          ? std::min<uint64_t>(options.maxMessageSize, kMaxMessageSize)
                          : kMaxMessageSize),
      _cookieLimiter(options.cookieRate, RateLimiter::Scope::whole),
      _rejectLimiter(options.rejectRate) {
  _budget.limit = options.globalBudget;
}

UdpTransport::~UdpTransport() = default;

int UdpTransport::start() {
  if (RAND_bytes(reinterpret_cast<uint8_t*>(&_epoch), sizeof(_epoch)) != 1) return UV_EIO;
  _cookies = std::make_unique<CookieJar>(_epoch, _options.cookieLifetimeMs * kNsPerMs,
                                         _options.cookieRotateMs * kNsPerMs, uv_hrtime());
  _recvBuffer.reset(new uint8_t[kRecvChunk * kRecvChunks]);
  // Cannot fail for a valid loop.
  uv_timer_init(_loop, &_timer);
  _timer.data = this;
  uv_check_init(_loop, &_check);
  _check.data = this;
  uv_idle_init(_loop, &_idle);
  _idle.data = this;
  _liveHandles += 3;
#ifdef FERRY_UDP_FAULT_LAYER
  uv_timer_init(_loop, &_faultTimer);
  _faultTimer.data = this;
  ++_liveHandles;
#endif
  // The check handle runs at the end of every loop iteration (sends coalesced, events queued by
  // table functions raised); it must not keep the loop alive by itself.
  uv_check_start(&_check, &onCheck);
  uv_unref(reinterpret_cast<uv_handle_t*>(&_check));
  return 0;
}

void UdpTransport::logLine(int level, const std::string& message) const noexcept {
  if (level >= FERRY_LOG_DEBUG) {
    // Drops can come by the million; their debug lines are rate-limited (counters are not).
    uint64_t t = uv_hrtime();
    if (t - _debugWindowStart > 1000 * kNsPerMs) {
      _debugWindowStart = t;
      _debugLines = 0;
    }
    if (++_debugLines > kDebugLinesPerSecond) return;
  }
  try {
    _host->log(_host->context, level, "udp", message.c_str());
  } catch (...) {
  }
}

void UdpTransport::destroy(void (*done)(void*), void* arg) {
  if (_destroying) {
    logLine(FERRY_LOG_ERROR, "destroy called twice on one instance; the second call is ignored");
    return;
  }
  _destroying = true;
  _done = done;
  _doneArg = arg;
  _deferred.clear();
  // Open sessions hear CLOSE once (best effort), so peers need not wait for their idle timeout.
  for (auto& [id, session] : _sessions) {
    session->abandon(true);
    _graveyard.push_back(std::move(session));
  }
  _sessions.clear();
  _connections.clear();
  _helloIndex.clear();
  _byRemote.clear();
  _deadlines.clear();
  _deadlineOf.clear();
  _dirty.clear();
  _blocked.clear();
  for (UdpSocket* socket : _sockets) closeSocket(*socket);
  for (uv_handle_t* handle :
       {reinterpret_cast<uv_handle_t*>(&_timer), reinterpret_cast<uv_handle_t*>(&_check),
        reinterpret_cast<uv_handle_t*>(&_idle)}) {
    uv_close(handle, &onHandleClosed);
  }
#ifdef FERRY_UDP_FAULT_LAYER
  _held.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&_faultTimer), &onHandleClosed);
#endif
}

void UdpTransport::handleClosed() {
  if (--_liveHandles > 0 || !_destroying) return;
  void (*done)(void*) = _done;
  void* arg = _doneArg;
  delete this;
  reportDestroyed(done, arg);
}

void UdpTransport::onHandleClosed(uv_handle_t* handle) noexcept {
  static_cast<UdpTransport*>(handle->data)->handleClosed();
}

// --- Sockets. ---

int UdpTransport::openSocket(const sockaddr_storage& bindAddress, bool listener,
                             UdpSocket*& out) {
  auto* socket = new UdpSocket;
  socket->owner = this;
  socket->listener = listener;
  int family = bindAddress.ss_family;
  int err = uv_udp_init_ex(_loop, &socket->handle, static_cast<unsigned>(family) | UV_UDP_RECVMMSG);
  if (err != 0) {
    delete socket;
    return err;
  }
  socket->handle.data = socket;
  ++_liveHandles;
  _sockets.push_back(socket);
  uv_os_fd_t fd;
  err = uv_fileno(reinterpret_cast<uv_handle_t*>(&socket->handle), &fd);
  if (err == 0) {
    // Never let the kernel fragment: datagrams keep DF, and a size the path refuses fails or
    // vanishes, which PMTU probing handles (RFC 8899, RFC 8900). PROBE also ignores the
    // kernel's cached PMTU estimate, which an ICMP message could have lowered.
    if (family == AF_INET) {
      int value = IP_PMTUDISC_PROBE;
      setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &value, sizeof(value));
    } else {
      int value = IPV6_PMTUDISC_PROBE;
      setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &value, sizeof(value));
      int on = 1;
      setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &on, sizeof(on));
    }
    int size = static_cast<int>(std::min<uint64_t>(_options.socketBuffer, 1u << 30));
    uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(&socket->handle), &size);
    size = static_cast<int>(std::min<uint64_t>(_options.socketBuffer, 1u << 30));
    uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(&socket->handle), &size);
  }
  if (err == 0) {
    unsigned flags = family == AF_INET6 ? UV_UDP_IPV6ONLY : 0;
    err = uv_udp_bind(&socket->handle, reinterpret_cast<const sockaddr*>(&bindAddress), flags);
  }
  if (err == 0) err = uv_udp_recv_start(&socket->handle, &onAlloc, &onRecv);
  if (err != 0) {
    _sockets.pop_back();
    closeSocket(*socket);
    return err;
  }
  out = socket;
  return 0;
}

UdpSocket* UdpTransport::clientSocket(int family, int& err) {
  UdpSocket*& slot = family == AF_INET ? _clientSocket4 : _clientSocket6;
  if (slot != nullptr) return slot;
  sockaddr_storage any{};
  std::string why;
  err = parseBinding(family == AF_INET ? "0.0.0.0" : "::", "0", true, any, why);
  if (err == 0) err = openSocket(any, false, slot);
  return err == 0 ? slot : nullptr;
}

void UdpTransport::closeSocket(UdpSocket& socket) {
  if (socket.closing) return;
  socket.closing = true;
  // Queued sends get UV_ECANCELED callbacks first, then the close callback.
  uv_close(reinterpret_cast<uv_handle_t*>(&socket.handle), &onSocketClosed);
}

void UdpTransport::onSocketClosed(uv_handle_t* handle) noexcept {
  auto* socket = static_cast<UdpSocket*>(handle->data);
  UdpTransport* self = socket->owner;
  delete socket;
  self->handleClosed();
}

void UdpTransport::onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  // One buffer serves every socket: libuv reads one socket at a time, and each datagram is done
  // with before its callback returns (what must outlive it is copied).
  UdpTransport* self = static_cast<UdpSocket*>(handle->data)->owner;
  buf->base = reinterpret_cast<char*>(self->_recvBuffer.get());
  buf->len = kRecvChunk * kRecvChunks;
}

void UdpTransport::onRecv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                          const sockaddr* addr, unsigned flags) noexcept {
  auto* socket = static_cast<UdpSocket*>(handle->data);
  UdpTransport* self = socket->owner;
  if (self->_destroying || socket->closing) return;
  if (nread < 0) {
    self->logLine(FERRY_LOG_DEBUG, std::string("receive error: ") + uv_strerror(static_cast<int>(nread)));
    return;
  }
  if (addr == nullptr) return;  // nothing read, or the end of a recvmmsg batch
  guarded(self, "receive", [&] {
    sockaddr_storage from{};
    std::memcpy(&from, addr, addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    if ((flags & UV_UDP_PARTIAL) != 0) {
      self->dropped(self->_counters.dropped_malformed, "datagram larger than the buffer", from);
      return;
    }
    self->received(*socket, reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread),
                   from);
  });
}

// --- Datagrams out. ---

int UdpTransport::sendDatagram(UdpSocket& socket, const sockaddr_storage& peer,
                               const uint8_t* data, size_t size) {
  ++_counters.datagrams_sent;
  _counters.bytes_sent += size;
#ifdef FERRY_UDP_FAULT_LAYER
  if (_faultTx) return sendThroughFaults(socket, peer, data, size);
#endif
  return rawSend(socket, peer, data, size);
}

int UdpTransport::rawSend(UdpSocket& socket, const sockaddr_storage& peer, const uint8_t* data,
                          size_t size) {
  if (socket.closing) return UV_EBADF;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(const_cast<uint8_t*>(data)),
                             static_cast<unsigned>(size));
  const sockaddr* address = reinterpret_cast<const sockaddr*>(&peer);
  int rc = uv_udp_try_send(&socket.handle, &buf, 1, address);
  if (rc >= 0) return 0;
  if (rc != UV_EAGAIN) {
    ++_counters.send_errors;
    if (rc != UV_EMSGSIZE) {
      logLine(FERRY_LOG_DEBUG, "sending " + std::to_string(size) + " bytes to " +
                                   formatAddress(peer) + " failed: " + uv_strerror(rc));
    }
    return rc;
  }
  // The socket buffer is full, or earlier datagrams are still queued: queue this one behind.
  if (_kernelQueued + size > kMaxKernelQueue) {
    ++_counters.send_queue_drops;
    return 0;
  }
  auto queued = std::make_unique<QueuedSend>();
  queued->owner = this;
  queued->size = size;
  queued->bytes.reset(new uint8_t[size]);
  std::memcpy(queued->bytes.get(), data, size);
  queued->request.data = queued.get();
  uv_buf_t copy = uv_buf_init(reinterpret_cast<char*>(queued->bytes.get()), static_cast<unsigned>(size));
  rc = uv_udp_send(&queued->request, &socket.handle, &copy, 1, address, &onSent);
  if (rc != 0) {
    ++_counters.send_errors;
    return rc;
  }
  _kernelQueued += size;
  queued.release();  // onSent frees it
  return 0;
}

void UdpTransport::onSent(uv_udp_send_t* request, int status) noexcept {
  std::unique_ptr<QueuedSend> queued(static_cast<QueuedSend*>(request->data));
  UdpTransport* self = queued->owner;
  self->_kernelQueued -= queued->size;
  if (status < 0 && status != UV_ECANCELED) ++self->_counters.send_errors;
}

void UdpTransport::sendUnvalidated(UdpSocket& socket, const sockaddr_storage& peer,
                                   const uint8_t* data, size_t size) {
  _counters.unvalidated_bytes_sent += size;
  ++_counters.unvalidated_datagrams_sent;
  sendDatagram(socket, peer, data, size);
}

int UdpTransport::transmit(Session& session, const uint8_t* data, size_t size) {
  auto* socket = static_cast<UdpSocket*>(session.socket());
  return sendDatagram(*socket, session.peer(), data, size);
}

#ifdef FERRY_UDP_FAULT_LAYER
// --- The fault layer (test build only). ---

void UdpTransport::receiveThroughFaults(UdpSocket& socket, const uint8_t* data, size_t size,
                                        const sockaddr_storage& from) {
  FaultCopy copies[2];
  size_t count = _faultRx->decide(size, copies);
  for (size_t i = 0; i < count && !_destroying && !socket.closing; ++i) {
    const FaultCopy& copy = copies[i];
    if (copy.delayNs > 0) {
      hold(false, socket, from, data, copy);
    } else if (copy.length == size && copy.flipBit < 0) {
      process(socket, data, size, from);
    } else {
      std::vector<uint8_t> changed(data, data + copy.length);
      if (copy.flipBit >= 0) changed[static_cast<size_t>(copy.flipBit / 8)] ^= uint8_t(1u << (copy.flipBit % 8));
      process(socket, changed.data(), changed.size(), from);
    }
  }
}

int UdpTransport::sendThroughFaults(UdpSocket& socket, const sockaddr_storage& peer,
                                    const uint8_t* data, size_t size) {
  FaultCopy copies[2];
  size_t count = _faultTx->decide(size, copies);
  int result = 0;
  for (size_t i = 0; i < count; ++i) {
    const FaultCopy& copy = copies[i];
    if (copy.delayNs > 0) {
      hold(true, socket, peer, data, copy);
      continue;
    }
    if (copy.length == size && copy.flipBit < 0) {
      int err = rawSend(socket, peer, data, size);
      if (i == 0) result = err;
      continue;
    }
    std::vector<uint8_t> changed(data, data + copy.length);
    if (copy.flipBit >= 0) changed[static_cast<size_t>(copy.flipBit / 8)] ^= uint8_t(1u << (copy.flipBit % 8));
    rawSend(socket, peer, changed.data(), changed.size());
  }
  return result;
}

void UdpTransport::hold(bool outgoing, UdpSocket& socket, const sockaddr_storage& peer,
                        const uint8_t* data, const FaultCopy& copy) {
  HeldDatagram held;
  held.outgoing = outgoing;
  held.socket = &socket;
  held.peer = peer;
  held.bytes.assign(data, data + copy.length);
  if (copy.flipBit >= 0) {
    held.bytes[static_cast<size_t>(copy.flipBit / 8)] ^= uint8_t(1u << (copy.flipBit % 8));
  }
  _held.emplace(uv_hrtime() + copy.delayNs, std::move(held));
  armFaultTimer();
}

void UdpTransport::armFaultTimer() {
  if (_held.empty() || _destroying) return;
  uv_update_time(_loop);
  uint64_t t = uv_hrtime();
  uint64_t due = _held.begin()->first;
  uint64_t delayMs = due > t ? (due - t + kNsPerMs - 1) / kNsPerMs : 0;
  uv_timer_start(&_faultTimer, &onFaultTimer, delayMs, 0);
}

void UdpTransport::onFaultTimer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<UdpTransport*>(timer->data);
  guarded(self, "fault timer", [&] {
    uint64_t t = uv_hrtime() + kGranularityNs;
    std::vector<HeldDatagram> due;
    while (!self->_held.empty() && self->_held.begin()->first <= t) {
      due.push_back(std::move(self->_held.begin()->second));
      self->_held.erase(self->_held.begin());
    }
    for (HeldDatagram& held : due) {
      if (self->_destroying) return;
      if (held.outgoing) {
        self->rawSend(*held.socket, held.peer, held.bytes.data(), held.bytes.size());
      } else {
        self->process(*held.socket, held.bytes.data(), held.bytes.size(), held.peer);
      }
    }
    self->armFaultTimer();
  });
}
#endif

// --- Datagrams in. ---

void UdpTransport::received(UdpSocket& socket, const uint8_t* data, size_t size,
                            const sockaddr_storage& from) {
#ifdef FERRY_UDP_FAULT_LAYER
  if (_faultRx) return receiveThroughFaults(socket, data, size, from);
#endif
  process(socket, data, size, from);
}

void UdpTransport::unvalidated(size_t size) noexcept {
  _counters.unvalidated_bytes_received += size;
  ++_counters.unvalidated_datagrams_received;
}

void UdpTransport::dropped(uint64_t& counter, const char* why, const sockaddr_storage& from) {
  ++counter;
  logLine(FERRY_LOG_DEBUG, std::string("dropped a datagram from ") + formatAddress(from) + ": " + why);
}

void UdpTransport::process(UdpSocket& socket, const uint8_t* data, size_t size,
                           const sockaddr_storage& from) {
  if (_destroying || socket.closing) return;
  ++_counters.datagrams_received;
  _counters.bytes_received += size;
  Header header;
  const uint8_t* frames = nullptr;
  size_t framesSize = 0;
  DecodeError error = decodePacket(data, size, header, frames, framesSize);
  if (error != DecodeError::none) {
    unvalidated(size);
    uint64_t& counter = error == DecodeError::badCrc       ? _counters.dropped_crc
                        : error == DecodeError::badVersion ? _counters.dropped_version
                                                           : _counters.dropped_malformed;
    dropped(counter, decodeErrorName(error), from);
    return;
  }
  switch (header.type) {
    case PacketType::hello:
      handleHello(socket, header, frames, framesSize, size, from);
      break;
    case PacketType::cookie:
      handleCookie(socket, header, frames, framesSize, from);
      break;
    case PacketType::handshake:
      handleHandshake(socket, header, frames, framesSize, from);
      break;
    case PacketType::reject:
      unvalidated(size);
      handleReject(socket, header, frames, framesSize, from);
      break;
    case PacketType::shortHeader:
      handleShort(socket, header, frames, framesSize, size, from);
      break;
  }
}

Session* UdpTransport::findSession(uint64_t localId) const {
  auto found = _sessions.find(localId);
  return found == _sessions.end() ? nullptr : found->second.get();
}

Session* UdpTransport::routed(UdpSocket& socket, uint64_t localId, const sockaddr_storage& from) {
  Session* session = findSession(localId);
  if (session == nullptr) return nullptr;
  // Sessions at level NONE are pinned to their 4-tuple (A3.11).
  if (session->socket() != &socket || !sameEndpoint(session->peer(), from)) return nullptr;
  return session;
}

void UdpTransport::handleHello(UdpSocket& socket, const Header& header, const uint8_t* frames,
                               size_t framesSize, size_t size, const sockaddr_storage& from) {
  ++_counters.hellos_received;
  unvalidated(size);
  if (!socket.listener) {
    dropped(_counters.dropped_unexpected, "HELLO on a socket that does not listen", from);
    return;
  }
  if (size < kBaseDatagramSize) {
    // Unpadded HELLOs would let a spoofer get COOKIEs out of small datagrams.
    dropped(_counters.dropped_unexpected, "HELLO shorter than 1200 bytes", from);
    return;
  }
  Reader in(frames, framesSize);
  Frame frame;
  Params params;
  bool haveParams = false;
  bool haveCrypto = false;
  while (readFrame(in, frame)) {
    if (frame.type == FrameType::padding) continue;
    if (frame.type == FrameType::helloParams && !haveParams) {
      haveParams = readParams(frame.params, frame.paramsSize, params);
      if (!haveParams) break;
    } else if (frame.type == FrameType::crypto && !haveCrypto && frame.crypto.offset == 0 &&
               frame.crypto.length == 0) {
      haveCrypto = true;  // the `none` provider's empty token
    } else {
      haveParams = false;
      break;
    }
  }
  if (in.failed() || !haveParams || !params.hasNonce || header.dst != 0 || header.src == 0) {
    dropped(_counters.dropped_malformed, "malformed HELLO", from);
    return;
  }
  if (!Session::usableParams(params)) {
    dropped(_counters.dropped_unexpected, "HELLO with parameters this server cannot use", from);
    return;
  }
  std::string key = helloKey(from, header.src);
  if (auto found = _helloIndex.find(key); found != _helloIndex.end()) {
    // The client repeats itself: the HANDSHAKE went missing. The address is validated already.
    found->second->onHelloAgain(header.pn);
    markDirty(*found->second);
    return;
  }
  uint64_t t = uv_hrtime();
  if (!params.hasCookie || !_cookies->verify(from, params.nonce, header.src, params.cookie, t)) {
    // Stateless: a COOKIE, smaller than the HELLO, and nothing remembered.
    if (!_cookieLimiter.allow(from, t)) {
      dropped(_counters.cookies_rate_limited, "COOKIE rate limit", from);
      return;
    }
    uint8_t buffer[kLongHeaderSize + 1 + kCookieSize + 8 + kCrcSize];
    Writer out(buffer, sizeof(buffer));
    writeLongHeader(out, PacketType::cookie, header.src, 0, 0);
    uint8_t cookie[kCookieSize];
    _cookies->make(from, params.nonce, header.src, t, cookie);
    writeCookieFrame(out, cookie, _epoch);
    writeCrc(out);
    if (out.overflow() || out.size() > size) return;
    ++_counters.cookies_sent;
    sendUnvalidated(socket, from, out.data(), out.size());
    return;
  }
  if (!haveCrypto) {
    dropped(_counters.dropped_malformed, "HELLO with a cookie but no CRYPTO frame", from);
    return;
  }
  if (!admitServerSession(from)) return;
  if (_halfOpen >= _options.halfOpenMax) {
    dropped(_counters.half_open_refused, "half-open sessions at their limit", from);
    return;
  }
  std::unique_ptr<Session> owned = makeSession(SessionConfig::Role::server, socket, from);
  Session& session = *owned;
  _sessions.emplace(session.localId(), std::move(owned));
  _helloIndex.emplace(std::move(key), &session);
  SourceSessions& source = _bySource[hostKey(from)];
  ++source.sessions;
  source.halfOpen.push_back(&session);
  ++_halfOpen;
  ++_counters.server_sessions_created;
  session.startServer(params, header.pn, header.src);
  markDirty(session);
}

void UdpTransport::handleCookie(UdpSocket& socket, const Header& header, const uint8_t* frames,
                                size_t framesSize, const sockaddr_storage& from) {
  Session* session = routed(socket, header.dst, from);
  if (session == nullptr || session->role() != SessionConfig::Role::client) {
    dropped(_counters.dropped_unexpected, "COOKIE for no handshake of ours", from);
    return;
  }
  Reader in(frames, framesSize);
  Frame frame;
  Frame cookie;
  bool haveCookie = false;
  while (readFrame(in, frame)) {
    if (frame.type == FrameType::padding) continue;
    if (frame.type != FrameType::cookie || haveCookie) {
      haveCookie = false;
      break;
    }
    cookie = frame;
    haveCookie = true;
  }
  if (in.failed() || !haveCookie) {
    dropped(_counters.dropped_malformed, "malformed COOKIE", from);
    return;
  }
  session->onCookie(cookie);
  markDirty(*session);
}

void UdpTransport::handleHandshake(UdpSocket& socket, const Header& header,
                                   const uint8_t* frames, size_t framesSize,
                                   const sockaddr_storage& from) {
  Session* session = routed(socket, header.dst, from);
  if (session == nullptr) {
    dropped(findSession(header.dst) == nullptr ? _counters.dropped_unknown_session
                                               : _counters.dropped_wrong_address,
            "HANDSHAKE for no session of ours", from);
    return;
  }
  session->onHandshakePacket(header, frames, framesSize);
  if (session->state() != Session::State::finished && !_destroying) markDirty(*session);
}

void UdpTransport::handleReject(UdpSocket& socket, const Header& header, const uint8_t* frames,
                                size_t framesSize, const sockaddr_storage& from) {
  Reader in(frames, framesSize);
  Frame frame;
  bool haveReject = readFrame(in, frame) && frame.type == FrameType::reject;
  if (!haveReject || !in.atEnd()) {
    dropped(_counters.dropped_malformed, "malformed REJECT", from);
    return;
  }
  // A REJECT names the session id we address the peer with, and echoes the packet number that
  // drew it: without crypto, that is what an off-path attacker cannot guess. Never answered.
  auto [first, last] = _byRemote.equal_range(header.dst);
  for (auto it = first; it != last; ++it) {
    Session* session = it->second;
    if (session->socket() != &socket || !sameEndpoint(session->peer(), from)) continue;
    if (session->onReject(header.pn, frame.epoch)) return;
  }
  dropped(_counters.rejects_ignored, "REJECT for no session of ours", from);
}

void UdpTransport::handleShort(UdpSocket& socket, const Header& header, const uint8_t* frames,
                               size_t framesSize, size_t size, const sockaddr_storage& from) {
  Session* session = routed(socket, header.dst, from);
  if (session == nullptr) {
    unvalidated(size);
    if (findSession(header.dst) != nullptr) {
      dropped(_counters.dropped_wrong_address, "a session's packet from another address", from);
      return;
    }
    dropped(_counters.dropped_unknown_session, "packet for an unknown session", from);
    maybeReject(socket, header, size, from);
    return;
  }
  session->onShortPacket(header, frames, framesSize);
  if (session->state() != Session::State::finished && !_destroying) markDirty(*session);
}

void UdpTransport::maybeReject(UdpSocket& socket, const Header& header, size_t size,
                               const sockaddr_storage& from) {
  if (size < kRejectSize) return;  // a REJECT would be larger than what drew it
  if (!_rejectLimiter.allow(from, uv_hrtime())) {
    ++_counters.rejects_rate_limited;
    return;
  }
  uint8_t buffer[kRejectSize];
  Writer out(buffer, sizeof(buffer));
  writeLongHeader(out, PacketType::reject, header.dst, 0, header.pn);
  writeReject(out, kRejectUnknownSession, _epoch);
  writeCrc(out);
  if (out.overflow() || out.size() > size) return;
  ++_counters.rejects_sent;
  sendUnvalidated(socket, from, out.data(), out.size());
}

// --- Sessions. ---

uint64_t UdpTransport::newSessionId() const {
  for (;;) {
    uint64_t id = 0;
    if (RAND_bytes(reinterpret_cast<uint8_t*>(&id), sizeof(id)) != 1) throw std::bad_alloc();
    if (id != 0 && _sessions.count(id) == 0) return id;
  }
}

std::shared_ptr<CongestionController> UdpTransport::controllerFor(const sockaddr_storage& peer) {
  std::string key = hostKey(peer);
  auto found = _controllers.find(key);
  if (found != _controllers.end()) {
    if (auto shared = found->second.lock()) return shared;
  }
  auto controller = std::make_shared<CongestionController>(kBaseDatagramSize);
  _controllers[key] = controller;
  // Forget controllers of hosts no session talks to any more.
  for (auto it = _controllers.begin(); it != _controllers.end();) {
    it = it->second.expired() ? _controllers.erase(it) : std::next(it);
  }
  return controller;
}

std::unique_ptr<Session> UdpTransport::makeSession(SessionConfig::Role role, UdpSocket& socket,
                                                   const sockaddr_storage& peer) {
  SessionConfig config;
  config.role = role;
  config.localId = newSessionId();
  config.peer = peer;
  config.socket = &socket;
  config.controller = controllerFor(peer);
  config.options = &_options;
  config.maxMessageSize = _maxMessageSize;
  config.epoch = _epoch;
  config.closeToken = newSessionId();  // random and non-zero; unrelated to the id itself
  config.clientInstance = clientInstanceId();
  config.pathMaxDatagram = pathMaxDatagram(peer);
  config.peerText = formatAddress(peer);
  return std::make_unique<Session>(*this, std::move(config));
}

std::string UdpTransport::helloKey(const sockaddr_storage& from, uint64_t clientSession) {
  std::string key = hostKey(from);
  uint16_t port = portOf(from);
  key.append(reinterpret_cast<const char*>(&port), sizeof(port));
  key.append(reinterpret_cast<const char*>(&clientSession), sizeof(clientSession));
  return key;
}

ferry_peer_info_v1 UdpTransport::peerInfo(const Session& session, std::string& text) const {
  text = session.peerText();
  ferry_peer_info_v1 info{};
  info.struct_size = sizeof(info);
  info.address = text.c_str();
  return info;
}

void UdpTransport::established(Session& session) {
  _byRemote.emplace(session.remoteId(), &session);
  if (session.role() == SessionConfig::Role::server) {
    --_halfOpen;
    forgetHalfOpen(session);
    ferry_conn_id conn = _nextConn++;
    session.setConn(conn);
    _connections.emplace(conn, &session);
    if (_destroying) return;
    std::string text;
    ferry_peer_info_v1 info = peerInfo(session, text);
    _events.accepted(_events.context, conn, &info);
    return;
  }
  if (_destroying || session.conn() == 0) return;
  std::string text;
  ferry_peer_info_v1 info = peerInfo(session, text);
  _events.connected(_events.context, session.conn(), 0, &info);
}

void UdpTransport::message(Session& session, const uint8_t* data, size_t size) {
  if (_destroying || session.conn() == 0) return;
  _events.received(_events.context, session.conn(), data, size);
}

void UdpTransport::ended(Session& session, int status) {
  ferry_conn_id conn = session.conn();
  if (conn == 0) return;
  session.setConn(0);
  _connections.erase(conn);
  if (_destroying) return;
  if (session.established()) {
    _events.closed(_events.context, conn, status);
  } else {
    _events.connected(_events.context, conn, status, nullptr);
  }
}

void UdpTransport::finished(Session& session) {
  if (session.conn() != 0) {
    _connections.erase(session.conn());
    session.setConn(0);
  }
  if (session.role() == SessionConfig::Role::server) {
    if (!session.established()) {
      --_halfOpen;
      forgetHalfOpen(session);
    }
    auto source = _bySource.find(hostKey(session.peer()));
    if (source != _bySource.end() && --source->second.sessions == 0) _bySource.erase(source);
    for (auto it = _helloIndex.begin(); it != _helloIndex.end(); ++it) {
      if (it->second == &session) {
        _helloIndex.erase(it);
        break;
      }
    }
  }
  auto [first, last] = _byRemote.equal_range(session.remoteId());
  for (auto it = first; it != last; ++it) {
    if (it->second == &session) {
      _byRemote.erase(it);
      break;
    }
  }
  if (auto at = _deadlineOf.find(&session); at != _deadlineOf.end()) {
    _deadlines.erase(at->second);
    _deadlineOf.erase(at);
  }
  _dirty.erase(&session);
  _blocked.erase(&session);
  auto found = _sessions.find(session.localId());
  if (found != _sessions.end()) {
    _graveyard.push_back(std::move(found->second));
    _sessions.erase(found);
  }
  if (!_idleActive && !_destroying) {
    _idleActive = true;
    uv_idle_start(&_idle, &onIdle);
  }
}

bool UdpTransport::admitServerSession(const sockaddr_storage& from) {
  auto found = _bySource.find(hostKey(from));
  if (found == _bySource.end()) return true;
  SourceSessions& source = found->second;
  if (source.halfOpen.size() >= _options.halfOpenPerAddress) {
    // Its oldest handshake goes: an address cannot hold more, and a client of it that starts
    // again still gets in.
    Session& oldest = *source.halfOpen.front();
    ++_counters.half_open_evicted;
    oldest.abandon(false);
    finished(oldest);
    return true;
  }
  if (source.sessions >= _options.sessionsPerAddress) {
    dropped(_counters.sessions_refused_per_address, "sessions from one address at their limit",
            from);
    return false;
  }
  return true;
}

void UdpTransport::forgetHalfOpen(Session& session) {
  auto source = _bySource.find(hostKey(session.peer()));
  if (source == _bySource.end()) return;
  auto& halfOpen = source->second.halfOpen;
  auto at = std::find(halfOpen.begin(), halfOpen.end(), &session);
  if (at != halfOpen.end()) halfOpen.erase(at);
}

void UdpTransport::markDirty(Session& session) {
  if (_destroying || session.state() == Session::State::finished) return;
  _dirty.insert(&session);
  if (!_idleActive) {
    _idleActive = true;
    uv_idle_start(&_idle, &onIdle);
  }
}

void UdpTransport::defer(Deferred::Kind kind, ferry_conn_id conn, int status) {
  _deferred.push_back({kind, conn, status});
  if (!_idleActive) {
    _idleActive = true;
    uv_idle_start(&_idle, &onIdle);
  }
}

void UdpTransport::deadlineChanged(Session& session) {
  if (_destroying || session.state() == Session::State::finished) return;
  uint64_t deadline = session.deadline();
  auto at = _deadlineOf.find(&session);
  if (at != _deadlineOf.end()) {
    if (at->second->first == deadline) return;
    _deadlines.erase(at->second);
    _deadlineOf.erase(at);
  }
  if (deadline == 0) return;
  _deadlineOf.emplace(&session, _deadlines.emplace(deadline, &session));
  if (_armedAt == 0 || deadline < _armedAt) armTimer(deadline);
}

void UdpTransport::armTimer(uint64_t deadline) {
  // Fresh loop time, so the timer's millisecond base is not a stale iteration start.
  uv_update_time(_loop);
  uint64_t t = uv_hrtime();
  uint64_t delayMs = deadline > t ? (deadline - t + kNsPerMs - 1) / kNsPerMs : 0;
  uv_timer_start(&_timer, &onTimer, delayMs, 0);
  _armedAt = deadline;
}

void UdpTransport::runDue() {
  uint64_t t = uv_hrtime() + kGranularityNs;
  std::vector<Session*> due;
  for (auto it = _deadlines.begin(); it != _deadlines.end() && it->first <= t; ++it) {
    due.push_back(it->second);
  }
  for (Session* session : due) {
    if (_destroying) return;
    if (session->state() == Session::State::finished) continue;
    session->onTimer();
    if (_destroying) return;
    if (session->state() != Session::State::finished) {
      session->flush();
      deadlineChanged(*session);
    }
  }
}

void UdpTransport::onTimer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<UdpTransport*>(timer->data);
  guarded(self, "timer", [&] {
    self->_armedAt = 0;
    self->runDue();
    if (self->_destroying) return;
    // At least a millisecond from here: a deadline still in the past must not make libuv run this
    // callback again in the same timer phase, before any datagram is read.
    if (!self->_deadlines.empty()) {
      self->armTimer(std::max(self->_deadlines.begin()->first, uv_hrtime() + kNsPerMs));
    }
  });
}

void UdpTransport::onIdle(uv_idle_t*) noexcept {
  // Nothing to do here: an active idle handle only keeps the loop from blocking in poll, so that
  // the check phase right after it runs the work table functions queued.
}

void UdpTransport::onCheck(uv_check_t* check) noexcept {
  auto* self = static_cast<UdpTransport*>(check->data);
  guarded(self, "check", [&] { self->check(); });
}

void UdpTransport::check() {
  if (_destroying) return;
  // A few rounds: events raised here may queue more work (a send from inside `closed`).
  for (int round = 0; round < 8 && !_destroying; ++round) {
    for (size_t i = 0; i < _deferred.size() && !_destroying; ++i) {
      Deferred event = _deferred[i];
      if (event.kind == Deferred::Kind::connectFailed) {
        _events.connected(_events.context, event.conn, event.status, nullptr);
      } else {
        _events.closed(_events.context, event.conn, event.status);
      }
    }
    if (_destroying) return;
    _deferred.clear();
    for (Session* session : std::vector<Session*>(_blocked.begin(), _blocked.end())) {
      if (session->controller().canSend(session->blockedOn())) {
        _blocked.erase(session);
        _dirty.insert(session);
      }
    }
    if (_dirty.empty()) break;
    std::vector<Session*> dirty(_dirty.begin(), _dirty.end());
    _dirty.clear();
    for (Session* session : dirty) {
      if (_destroying) return;
      if (session->state() == Session::State::finished) continue;
      session->flush();
    }
  }
  _graveyard.clear();
  if (_deferred.empty() && _dirty.empty() && _idleActive) {
    _idleActive = false;
    uv_idle_stop(&_idle);
  }
}

// --- Table functions. ---

int UdpTransport::listen(const char* address, const char* endpoint, char* endpointOut,
                         size_t endpointCap) {
  sockaddr_storage bindAddress;
  std::string why;
  int err = parseBinding(address, endpoint, true, bindAddress, why);
  if (err != 0) {
    logLine(FERRY_LOG_WARN, "cannot listen: " + why);
    return err;
  }
  UdpSocket* socket = nullptr;
  err = openSocket(bindAddress, true, socket);
  if (err != 0) {
    logLine(FERRY_LOG_WARN, "cannot bind " + formatAddress(bindAddress) + ": " + uv_strerror(err));
    return err;
  }
  sockaddr_storage name{};
  int length = sizeof(name);
  err = uv_udp_getsockname(&socket->handle, reinterpret_cast<sockaddr*>(&name), &length);
  std::string bound = err == 0 ? std::to_string(portOf(name)) : "";
  if (err == 0 && endpointOut != nullptr) {
    if (bound.size() >= endpointCap) {
      err = UV_ENOBUFS;
    } else {
      std::memcpy(endpointOut, bound.c_str(), bound.size() + 1);
    }
  }
  if (err != 0) {
    _sockets.erase(std::find(_sockets.begin(), _sockets.end(), socket));
    closeSocket(*socket);
    return err;
  }
  logLine(FERRY_LOG_INFO, "listening on " + quoted(address) + " port " + bound);
  return 0;
}

int UdpTransport::connect(const char* address, const char* endpoint, uint32_t timeoutMs,
                          ferry_conn_id* out) {
  if (out == nullptr) return UV_EINVAL;
  sockaddr_storage peer;
  std::string why;
  int err = parseBinding(address, endpoint, false, peer, why);
  if (err != 0) {
    logLine(FERRY_LOG_WARN, "cannot connect: " + why);
    return err;
  }
  UdpSocket* socket = clientSocket(peer.ss_family, err);
  if (socket == nullptr) {
    logLine(FERRY_LOG_WARN, "cannot open a socket to reach " + formatAddress(peer) + ": " +
                                uv_strerror(err));
    return err;
  }
  std::unique_ptr<Session> owned = makeSession(SessionConfig::Role::client, *socket, peer);
  Session& session = *owned;
  ferry_conn_id conn = _nextConn++;
  session.setConn(conn);
  _sessions.emplace(session.localId(), std::move(owned));
  _connections.emplace(conn, &session);
  session.startClient(uv_hrtime() + uint64_t{timeoutMs} * kNsPerMs);
  markDirty(session);
  *out = conn;
  return 0;
}

int UdpTransport::send(ferry_conn_id conn, const uint8_t* data, size_t size) {
  if (size > _maxMessageSize) return UV_EMSGSIZE;
  if (data == nullptr && size > 0) return UV_EINVAL;
  auto found = _connections.find(conn);
  if (found == _connections.end()) return UV_ENOTCONN;
  int err = found->second->send(data, size);
  if (err == 0) markDirty(*found->second);
  return err;
}

void UdpTransport::close(ferry_conn_id conn) {
  auto found = _connections.find(conn);
  if (found == _connections.end()) return;
  Session& session = *found->second;
  _connections.erase(found);
  session.setConn(0);
  if (session.established()) {
    session.closeByHost();
    defer(Deferred::Kind::closed, conn, 0);
  } else {
    // The host gives up on a connect: the connection never existed for it.
    session.abandon(false);
    finished(session);
    defer(Deferred::Kind::connectFailed, conn, UV_ECANCELED);
  }
}

size_t UdpTransport::reportCounters(ferry_counter_v1* out, size_t cap) const {
  if (std::getenv("FERRY_UDP_DESCRIBE") != nullptr) {
    for (const auto& [id, session] : _sessions) logLine(FERRY_LOG_WARN, session->describe());
  }
  Counters c = _counters;
  c.now_sessions = _sessions.size();
  c.now_half_open = _halfOpen;
  c.now_reassembly_bytes = _budget.used;
  c.now_kernel_queue_bytes = _kernelQueued;
  for (const auto& [id, session] : _sessions) {
    c.now_send_queue_bytes += session->sendQueueBytes();
    c.now_packets_outstanding += session->packetsOutstanding();
    if (session->state() == Session::State::open) {
      c.now_max_datagram_size = std::max<uint64_t>(c.now_max_datagram_size, session->maxDatagramSize());
      c.now_smoothed_rtt_us = std::max<uint64_t>(c.now_smoothed_rtt_us, session->rtt().smoothed() / 1000);
    }
  }
  for (const auto& [key, weak] : _controllers) {
    if (auto controller = weak.lock()) {
      ++c.now_controllers;
      c.now_bytes_in_flight += controller->bytesInFlight();
    }
  }
  size_t count = 0;
  auto report = [&](const char* name, uint64_t value) {
    if (count < cap) out[count] = {name, value};
    ++count;
  };
#define FERRY_UDP_REPORT(name) report(#name, c.name);
  FERRY_UDP_COUNTERS(FERRY_UDP_REPORT)
#undef FERRY_UDP_REPORT
#ifdef FERRY_UDP_FAULT_LAYER
  FaultCounts tx = _retiredFaultTx;
  FaultCounts rx = _retiredFaultRx;
  if (_faultTx) addFaultCounts(tx, _faultTx->counts());
  if (_faultRx) addFaultCounts(rx, _faultRx->counts());
  FaultLayerCounters f;
  f.fault_tx_dropped = tx.dropped;
  f.fault_tx_duplicated = tx.duplicated;
  f.fault_tx_delayed = tx.delayed;
  f.fault_tx_truncated = tx.truncated;
  f.fault_tx_corrupted = tx.corrupted;
  f.fault_tx_oversized = tx.oversized;
  f.fault_rx_dropped = rx.dropped;
  f.fault_rx_duplicated = rx.duplicated;
  f.fault_rx_delayed = rx.delayed;
  f.fault_rx_truncated = rx.truncated;
  f.fault_rx_corrupted = rx.corrupted;
  f.fault_rx_oversized = rx.oversized;
  f.now_fault_held = _held.size();
#define FERRY_UDP_REPORT(name) report(#name, f.name);
  FERRY_UDP_FAULT_COUNTERS(FERRY_UDP_REPORT)
#undef FERRY_UDP_REPORT
#endif
  return count;
}

#ifdef FERRY_UDP_FAULT_LAYER
bool UdpTransport::setFault(const char* spec, std::string& why) {
  FaultConfig fault;
  std::vector<std::string> problems;
  parseFault(spec, fault, problems);
  if (!problems.empty()) {
    why = problems.front();
    return false;
  }
  if (_faultTx) addFaultCounts(_retiredFaultTx, _faultTx->counts());
  if (_faultRx) addFaultCounts(_retiredFaultRx, _faultRx->counts());
  _faultTx.reset();
  _faultRx.reset();
  if (fault.tx.active()) {
    _faultTx = std::make_unique<FaultInjector>(fault.tx, fault.seed * 2654435761u + 2 * _ordinal);
  }
  if (fault.rx.active()) {
    _faultRx =
        std::make_unique<FaultInjector>(fault.rx, fault.seed * 2654435761u + 2 * _ordinal + 1);
  }
  return true;
}
#endif

// --- The ABI. ---

// The table functions that only forward to the instance.
using UdpAbi = AbiGlue<UdpTransport>;

// The options `settings` (RuntimeOptions::transportSettings) and FERRY_UDP_OPTIONS give, or the
// first problem (a phrase that names the setting) and where it was.
bool readOptions(const char* settings, Options& options, std::string& why) {
  std::vector<std::string> problems;
  parseOptions(settings, options, problems);
  if (!problems.empty()) {
    why = problems.front();
    return false;
  }
  if (const char* override = std::getenv("FERRY_UDP_OPTIONS")) {
    parseOptions(override, options, problems);
    if (!problems.empty()) {
      why = "FERRY_UDP_OPTIONS: " + problems.front();
      return false;
    }
  }
  return true;
}

int checkSettings(const char* settings, char* whyOut, size_t whyCap) noexcept {
  return checkSettingsText(settings, whyOut, whyCap,
                           [](const char* text, std::vector<std::string>& problems) {
                             Options options;
                             parseOptions(text, options, problems);
                           });
}

void hostLog(const ferry_host_v1* host, int level, const std::string& line) noexcept {
  host->log(host->context, level, "udp", line.c_str());
}

int createWithSettings(const ferry_host_v1* host, uv_loop_t* loop,
                       const ferry_transport_events_v1* events, const char* settings,
                       ferry_transport** out) noexcept {
  int err = validateCreate(host, loop, events, out);
  if (err != 0) return err;
  try {
    Options options;
    std::string why;
    if (!readOptions(settings, options, why)) {
      hostLog(host, FERRY_LOG_ERROR, "settings refused, no instance created: " + why);
      return UV_EINVAL;
    }
    if (const char* override = std::getenv("FERRY_UDP_OPTIONS")) {
      hostLog(host, FERRY_LOG_INFO,
              std::string("FERRY_UDP_OPTIONS overrides the settings: ") + override);
    }
    auto transport = std::make_unique<UdpTransport>(host, loop, *events, options);
#ifdef FERRY_UDP_FAULT_LAYER
    if (const char* spec = std::getenv("FERRY_UDP_FAULT")) {
      if (!transport->setFault(spec, why)) {
        hostLog(host, FERRY_LOG_ERROR, "FERRY_UDP_FAULT refused, no instance created: " + why);
        return UV_EINVAL;
      }
      if (*spec != '\0') {
        hostLog(host, FERRY_LOG_WARN, std::string("fault injection is on: FERRY_UDP_FAULT=") + spec);
      }
    }
#else
    if (std::getenv("FERRY_UDP_FAULT") != nullptr) {
      hostLog(host, FERRY_LOG_WARN,
              "FERRY_UDP_FAULT is ignored: this udp plugin has no fault layer (that is the "
              "test-only build in the build tree's transports/udp/fault-layer)");
    }
#endif
    err = transport->start();
    if (err != 0) return err;
    *out = UdpAbi::wrap(transport.release());
    return 0;
  } catch (const std::bad_alloc&) {
    return UV_ENOMEM;
  } catch (...) {
    return UV_EIO;
  }
}

int create(const ferry_host_v1* host, uv_loop_t* loop, const ferry_transport_events_v1* events,
           ferry_transport** out) noexcept {
  return createWithSettings(host, loop, events, "", out);
}

int counters(ferry_transport* transport, ferry_counter_v1* out, size_t cap) noexcept {
  UdpTransport* self = UdpAbi::unwrap(transport);
  if (self == nullptr || (out == nullptr && cap > 0)) return UV_EINVAL;
  return guardedCall(self, "counters",
                     [&] { return static_cast<int>(self->reportCounters(out, cap)); });
}

// connection_info: the session's RTT estimate and its losses.
int UdpTransport::connectionInfo(ferry_conn_id conn, ferry_connection_info_v1& out) const {
  auto found = _connections.find(conn);
  if (found == _connections.end() || found->second->state() != Session::State::open) {
    return UV_ENOTCONN;
  }
  const Session& session = *found->second;
  out.rtt_us = session.rtt().smoothed() / 1000;
  out.rtt_var_us = session.rtt().variance() / 1000;
  out.packets_lost = session.packetsLost();
  out.bytes_retransmitted = session.bytesRetransmitted();
  return 0;
}

const ferry_transport_v1 kTable = {
    .struct_size = sizeof(ferry_transport_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .max_message_size = kMaxMessageSize,
    .create = &create,
    .destroy = &UdpAbi::destroy,
    .listen = &UdpAbi::listen,
    .connect = &UdpAbi::connect,
    .send = &UdpAbi::send,
    .close = &UdpAbi::close,
    .check_binding = &checkInetBinding,
    .strerror = &transportStrerror,
    // Not offered: a session's state belongs to the loop thread (see PROTOCOL.md, "Threads").
    .send_any_thread = nullptr,
    .listen_with_flags = nullptr,
    // A network transport over datagrams: cheaper than tcp (no handshake per connection beyond
    // the cookie's, no head-of-line blocking between messages), dearer than a local pipe.
    .capabilities = FERRY_TRANSPORT_DATAGRAM,
    .cost_rank = 200,
    .create_with_settings = &createWithSettings,
    .check_settings = &checkSettings,
    .counters = &counters,
    .connection_info = &UdpAbi::connectionInfo,
};

const ferry_plugin_v1 kDescriptor = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_TRANSPORT,
    .name = "udp",
#ifdef FERRY_UDP_FAULT_LAYER
    .description = "UDP with a fault layer (test-only build): reliable ordered sessions",
#else
    .description = "UDP: numeric IPv4/IPv6 address, decimal port; reliable ordered sessions",
#endif
    .table = &kTable,
};

}  // namespace
}  // namespace ferry::transports::udp

FERRY_PLUGIN_EXPORT const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1* host) {
  using namespace ferry::transports;
  if (!hostCovers(host, offsetof(ferry_host_v1, log) + sizeof(host->log))) return nullptr;
  return &udp::kDescriptor;
}

#ifdef FERRY_UDP_FAULT_LAYER
FERRY_PLUGIN_EXPORT int ferry_udp_test_set_fault_v1(ferry_transport* transport, const char* spec) {
  using namespace ferry::transports;
  using namespace ferry::transports::udp;
  if (transport == nullptr) return UV_EINVAL;
  UdpTransport* self = UdpAbi::unwrap(transport);
  return guardedCall(self, "set fault", [&] {
    std::string why;
    if (self->setFault(spec != nullptr ? spec : "", why)) return 0;
    self->logLine(FERRY_LOG_WARN, "test fault spec refused: " + why);
    return static_cast<int>(UV_EINVAL);
  });
}
#endif
