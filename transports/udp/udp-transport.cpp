// The udp instance (udp-transport.h): its life, and the table functions it implements.
#include "udp-transport.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace ferry::transports::udp {

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

UdpTransport::~UdpTransport() {
  // Its poll handle is closed (or was never initialized): no watcher is left on the descriptor.
  if (_handOffFd >= 0) ::close(_handOffFd);
}

int UdpTransport::start() {
  if (RAND_bytes(reinterpret_cast<uint8_t*>(&_epoch), sizeof(_epoch)) != 1) return UV_EIO;
  _cookies = std::make_unique<CookieJar>(_epoch, _options.cookieLifetimeMs * kNsPerMs,
                                         _options.cookieRotateMs * kNsPerMs, uv_hrtime());
  _recvBuffer.reset(new uint8_t[kRecvChunk * kRecvChunks]);
  int err = uv_async_init(_loop, &_wake, &onWake);
  if (err != 0) return err;
  _wake.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&_wake));
  ++_liveHandles;
  _handOffFd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (_handOffFd < 0) return uv_translate_sys_error(errno);
  err = uv_poll_init(_loop, &_handOffWatch, _handOffFd);
  if (err != 0) return err;  // the destructor closes the descriptor
  _handOffWatch.data = this;
  // Cannot fail for a descriptor uv_poll_init took: it is no other watcher's.
  uv_poll_start(&_handOffWatch, UV_READABLE, &onHandOffWake);
  uv_unref(reinterpret_cast<uv_handle_t*>(&_handOffWatch));
  ++_liveHandles;
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
    if (t - _debugWindowStart.load(std::memory_order_relaxed) > 1000 * kNsPerMs) {
      _debugWindowStart.store(t, std::memory_order_relaxed);
      _debugLines.store(0, std::memory_order_relaxed);
    }
    if (_debugLines.fetch_add(1, std::memory_order_relaxed) + 1 > kDebugLinesPerSecond) return;
  }
  try {
    _host->log(_host->context, level, "udp", message.c_str());
  } catch (...) {
  }
}

void UdpTransport::destroy(void (*done)(void*), void* arg) {
  std::lock_guard lock(_mutex);
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
  _handedOff.clear();
  _handedOffBytes = 0;
  {
    // No hand-off from here on: _wake and _handOffWatch are closed below, the descriptor of the
    // second only by the destructor, as handOff() writes it after releasing the lock. The ABI
    // allows no send_any_thread once destroy() was called (core's hub closes its gate for
    // direct sends before it destroys an instance); a call that raced this one anyway finds the
    // descriptor open until the instance is freed.
    std::lock_guard pending(_pendingMutex);
    _pendingClosed = true;
    _pending.clear();
    _pendingBytes = 0;
    _pendingAny.store(false, std::memory_order_relaxed);
    _sendable.clear();
  }
  for (UdpSocket* socket : _sockets) closeSocket(*socket);
  for (uv_handle_t* handle :
       {reinterpret_cast<uv_handle_t*>(&_timer), reinterpret_cast<uv_handle_t*>(&_check),
        reinterpret_cast<uv_handle_t*>(&_idle), reinterpret_cast<uv_handle_t*>(&_wake),
        reinterpret_cast<uv_handle_t*>(&_handOffWatch)}) {
    uv_close(handle, &onHandleClosed);
  }
#ifdef FERRY_UDP_FAULT_LAYER
  _held.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&_faultTimer), &onHandleClosed);
#endif
}

void UdpTransport::handleClosed() {
  {
    std::lock_guard lock(_mutex);
    if (--_liveHandles > 0 || !_destroying) return;
  }
  void (*done)(void*) = _done;
  void* arg = _doneArg;
  delete this;
  reportDestroyed(done, arg);
}

void UdpTransport::onHandleClosed(uv_handle_t* handle) noexcept {
  static_cast<UdpTransport*>(handle->data)->handleClosed();
}

// --- Table functions. ---

int UdpTransport::listen(const char* address, const char* endpoint, char* endpointOut,
                         size_t endpointCap) {
  std::lock_guard lock(_mutex);
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
  std::lock_guard lock(_mutex);
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
  std::lock_guard lock(_mutex);
  // Messages handed off before this one go first.
  if (drainPending()) startIdle();
  auto found = _connections.find(conn);
  if (found == _connections.end()) return UV_ENOTCONN;
  int err = found->second->send(data, size);
  if (err == 0) markDirty(*found->second);
  return err;
}

int UdpTransport::sendAnyThread(ferry_conn_id conn, const uint8_t* data, size_t size) {
  if (size > _maxMessageSize) return UV_EMSGSIZE;
  if (data == nullptr && size > 0) return UV_EINVAL;
  if (std::optional<int> handed = handOff(conn, data, size, false)) return *handed;
  std::unique_lock lock(_mutex, std::try_to_lock);
  if (!lock.owns_lock()) {
    if (std::optional<int> handed = handOff(conn, data, size, true)) return *handed;
    lock.lock();  // the hand-off is full: wait, as send() does
    ++_counters.any_thread_waits;
  }
  if (_destroying) return UV_ENOTCONN;
  // Messages handed off before this one go first.
  bool drained = drainPending();
  auto found = _connections.find(conn);
  if (found == _connections.end()) {
    if (drained && _inHost == 0) wakeLoop();
    return UV_ENOTCONN;
  }
  Session& session = *found->second;
  bool behindOthers = session.hasSendable() || session.packetsOutstanding() > 0;
  int err = session.send(data, size);
  if (err == UV_ENOTCONN) forgetSendable(conn);
  if (err != 0) {
    if (drained && _inHost == 0) wakeLoop();
    return err;
  }
  if (_inHost > 0) {
    // The loop is inside an event, between two steps of some session's work: it flushes once
    // the event returns (callHost).
    _dirty.insert(&session);
    ++_counters.any_thread_queued;
    return 0;
  }
  if (behindOthers || size > kSenderFlushMax) {
    // Queued behind data that waits for the window, pacing or the loop's flush, sent while packets
    // of the session are unacknowledged (calls in flight: the loop, which takes their ACKs, sends
    // on), or too large for a few datagrams (the hand-off was full): the loop sends it, and this
    // thread does not hold the lock through dozens of sendto calls while the loop waits with the
    // ACKs that open the window.
    _dirty.insert(&session);
    ++_counters.any_thread_queued;
    wakeLoop();
    return 0;
  }
  ++_counters.any_thread_flushed;
  _offLoop = true;
  session.flush();
  _offLoop = false;
  if (drained) wakeLoop();
  return 0;
}

std::optional<int> UdpTransport::handOff(ferry_conn_id conn, const uint8_t* data, size_t size,
                                         bool lockBusy) {
  // A message larger than kSenderFlushMax the loop sends in any case: it is copied without the
  // instance lock, which the loop would otherwise wait for through the copy. The count of host
  // events is a hint, read again under the lock: a loop that enters an event after this finds
  // the lock free, and send_any_thread queues under it.
  bool anyway = lockBusy || size > kSenderFlushMax;
  if (!anyway && _pendingHostEvents.load(std::memory_order_relaxed) == 0) return std::nullopt;
  {
    std::lock_guard lock(_pendingMutex);
    if (_pendingClosed) return UV_ENOTCONN;
    if (!anyway && _pendingHostEvents.load(std::memory_order_relaxed) == 0) return std::nullopt;
    auto found = _sendable.find(conn);
    if (found == _sendable.end()) return UV_ENOTCONN;
    if (size > found->second) return UV_EMSGSIZE;
    if (_pendingBytes + size > _options.globalBudget) return std::nullopt;
    _pendingBytes += size;  // reserved while the message is copied
  }
  std::unique_lock lock(_pendingMutex, std::defer_lock);
  try {
    PendingMessage message;
    message.conn = conn;
    message.size = size;
    if (size > 0) {
      message.bytes.reset(new uint8_t[size]);
      std::memcpy(message.bytes.get(), data, size);
    }
    lock.lock();
    if (_pendingClosed) return UV_ENOTCONN;
    _pending.push_back(std::move(message));
  } catch (...) {
    if (!lock.owns_lock()) lock.lock();
    if (!_pendingClosed) _pendingBytes -= size;
    throw;
  }
  _pendingAny.store(true, std::memory_order_release);
  // The loop drains when its event returns; otherwise the first message wakes it, and it drains
  // the queue with whatever joined it meanwhile. The write comes after the unlock, so the woken
  // loop does not wait for _pendingMutex; a drain that runs before it finds the message anyway
  // (onHandOffWake reads the descriptor before it drains), and the late write wakes the loop
  // once for nothing.
  bool wake = _pending.size() == 1 && _pendingHostEvents.load(std::memory_order_relaxed) == 0;
  lock.unlock();
  if (wake) {
    uint64_t one = 1;
    // Fails only with EAGAIN, at a counter near 2^64: the descriptor is readable then anyway.
    while (::write(_handOffFd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
  return 0;
}

bool UdpTransport::drainPending() {
  if (!_pendingAny.load(std::memory_order_acquire)) return false;
  {
    std::lock_guard lock(_pendingMutex);
    _draining.swap(_pending);
    for (const PendingMessage& message : _draining) _pendingBytes -= message.size;
    _pendingAny.store(false, std::memory_order_relaxed);
  }
  // Emptied however this ends (a session that cannot allocate drops the rest).
  struct Clear {
    std::vector<PendingMessage>& batch;
    ~Clear() { batch.clear(); }
  } clear{_draining};
  bool queued = false;
  for (PendingMessage& message : _draining) {
    ++_counters.any_thread_handed_off;
    auto found = _connections.find(message.conn);
    // A connection closed meanwhile: the message goes as any message queued on it.
    if (found == _connections.end()) continue;
    Session& session = *found->second;
    int err = session.send(std::move(message.bytes), message.size);
    if (err == UV_ENOTCONN) forgetSendable(message.conn);
    if (err != 0) continue;
    _dirty.insert(&session);
    queued = true;
  }
  return queued;
}

void UdpTransport::setSendable(ferry_conn_id conn, uint64_t maxMessage) {
  std::lock_guard lock(_pendingMutex);
  _sendable[conn] = maxMessage;
}

void UdpTransport::forgetSendable(ferry_conn_id conn) {
  std::lock_guard lock(_pendingMutex);
  _sendable.erase(conn);
}

void UdpTransport::close(ferry_conn_id conn) {
  std::lock_guard lock(_mutex);
  auto found = _connections.find(conn);
  if (found == _connections.end()) return;
  Session& session = *found->second;
  _connections.erase(found);
  forgetSendable(conn);
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

// connection_info: the session's RTT estimate and its losses.
int UdpTransport::connectionInfo(ferry_conn_id conn, ferry_connection_info_v1& out) const {
  // Senders on other threads update the session's recovery state (send_any_thread).
  std::lock_guard lock(_mutex);
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

size_t UdpTransport::reportCounters(ferry_counter_v1* out, size_t cap) const {
  std::lock_guard lock(_mutex);
  // Each session's state goes to the host's debug log: what a reader of the counters needs to
  // explain them (a stalled window, a growing queue), and nothing a user must turn on first.
  for (const auto& [id, session] : _sessions) {
    std::string text = session->describe();
    for (size_t start = 0; start < text.size();) {
      size_t end = std::min(text.find('\n', start), text.size());
      logLine(FERRY_LOG_DEBUG, text.substr(start, end - start));
      start = end + 1;
    }
  }
  Counters c = _counters;
  c.now_sessions = _sessions.size();
  c.now_half_open = _halfOpen;
  c.now_reassembly_bytes = _budget.used;
  c.now_kernel_queue_bytes = _kernelQueued;
  {
    std::lock_guard pending(_pendingMutex);
    c.now_handoff_bytes = _pendingBytes;
  }
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
  std::lock_guard lock(_mutex);
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

}  // namespace ferry::transports::udp
