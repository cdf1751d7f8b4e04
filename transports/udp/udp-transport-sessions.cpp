// The udp instance (udp-transport.h): the session table, the timer and the check phase.
#include "udp-transport.h"

#include <unistd.h>

namespace ferry::transports::udp {

namespace {

// 128 random bits per process (A3.1 client_instance): diagnostics on the server's side.
const uint8_t* clientInstanceId() {
  static const auto id = [] {
    std::array<uint8_t, kInstanceIdSize> bytes{};
    RAND_bytes(bytes.data(), static_cast<int>(bytes.size()));
    return bytes;
  }();
  return id.data();
}

}  // namespace

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

template <typename Raise>
void UdpTransport::callHost(Raise&& raise) {
  ++_inHost;
  {
    std::lock_guard pending(_pendingMutex);
    _pendingHostEvents.fetch_add(1, std::memory_order_relaxed);
  }
  _mutex.unlock();
  struct Relock {
    UdpTransport& self;
    ~Relock() {
      self._mutex.lock();
      --self._inHost;
      {
        std::lock_guard pending(self._pendingMutex);
        self._pendingHostEvents.fetch_sub(1, std::memory_order_relaxed);
      }
      // Sessions send_any_thread marked, and messages it handed off (the check phase drains
      // them), meanwhile.
      bool handedOff = self._pendingAny.load(std::memory_order_acquire);
      if ((handedOff || !self._dirty.empty()) && !self._destroying) self.startIdle();
    }
  } relock{*this};
  raise();
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
    setSendable(conn, session.peerMaxMessage());
    std::string text;
    ferry_peer_info_v1 info = peerInfo(session, text);
    callHost([&] { _events.accepted(_events.context, conn, &info); });
    return;
  }
  if (_destroying || session.conn() == 0) return;
  std::string text;
  ferry_peer_info_v1 info = peerInfo(session, text);
  ferry_conn_id conn = session.conn();
  setSendable(conn, session.peerMaxMessage());
  callHost([&] { _events.connected(_events.context, conn, 0, &info); });
}

void UdpTransport::message(Session& session, const uint8_t* data, size_t size) {
  if (_destroying || session.conn() == 0) return;
  ferry_conn_id conn = session.conn();
  callHost([&] { _events.received(_events.context, conn, data, size); });
}

void UdpTransport::ended(Session& session, int status) {
  ferry_conn_id conn = session.conn();
  if (conn == 0) return;
  session.setConn(0);
  _connections.erase(conn);
  forgetSendable(conn);
  if (_destroying) return;
  if (session.established()) {
    callHost([&] { _events.closed(_events.context, conn, status); });
  } else {
    callHost([&] { _events.connected(_events.context, conn, status, nullptr); });
  }
}

void UdpTransport::finished(Session& session) {
  if (session.conn() != 0) {
    _connections.erase(session.conn());
    forgetSendable(session.conn());
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
  if (!_destroying) startIdle();
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
  startIdle();
}

void UdpTransport::defer(Deferred::Kind kind, ferry_conn_id conn, int status) {
  _deferred.push_back({kind, conn, status});
  startIdle();
}

void UdpTransport::startIdle() {
  if (_idleActive) return;
  if (_offLoop) {
    wakeLoop();
    return;
  }
  _idleActive = true;
  uv_idle_start(&_idle, &onIdle);
}

void UdpTransport::wakeLoop() {
  if (_wakePending || _destroying) return;
  _wakePending = true;
  uv_async_send(&_wake);
}

void UdpTransport::onWake(uv_async_t* async) noexcept {
  auto* self = static_cast<UdpTransport*>(async->data);
  guarded(self, "wake", [&] {
    std::lock_guard lock(self->_mutex);
    self->woken();
  });
}

void UdpTransport::onHandOffWake(uv_poll_t* poll, int, int) noexcept {
  auto* self = static_cast<UdpTransport*>(poll->data);
  guarded(self, "hand-off wake", [&] {
    // Read before the drain: a write this consumes was made after its message was queued.
    uint64_t count;
    (void)!::read(self->_handOffFd, &count, sizeof count);
    std::lock_guard lock(self->_mutex);
    self->woken();
  });
}

void UdpTransport::woken() {
  _wakePending = false;
  if (_destroying) return;
  drainPending();
  std::vector<HandedOff> handedOff;
  handedOff.swap(_handedOff);
  _handedOffBytes = 0;
  for (HandedOff& datagram : handedOff) {
    rawSend(*datagram.socket, datagram.peer, datagram.bytes.data(), datagram.bytes.size());
  }
  if (!_deadlines.empty() && (_armedAt == 0 || _deadlines.begin()->first < _armedAt)) {
    armTimer(_deadlines.begin()->first);
  }
  if (!_dirty.empty()) startIdle();
#ifdef FERRY_UDP_FAULT_LAYER
  armFaultTimer();
#endif
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
  if (_armedAt != 0 && deadline >= _armedAt) return;
  if (_offLoop) {
    wakeLoop();  // the loop arms its timer for the earliest deadline
  } else {
    armTimer(deadline);
  }
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
    std::lock_guard lock(self->_mutex);
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
  guarded(self, "check", [&] {
    std::lock_guard lock(self->_mutex);
    self->check();
  });
}

void UdpTransport::check() {
  if (_destroying) return;
  // A few rounds: events raised here may queue more work (a send from inside `closed`).
  for (int round = 0; round < 8 && !_destroying; ++round) {
    for (size_t i = 0; i < _deferred.size() && !_destroying; ++i) {
      Deferred event = _deferred[i];
      if (event.kind == Deferred::Kind::connectFailed) {
        callHost([&] { _events.connected(_events.context, event.conn, event.status, nullptr); });
      } else {
        callHost([&] { _events.closed(_events.context, event.conn, event.status); });
      }
    }
    if (_destroying) return;
    _deferred.clear();
    drainPending();
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
  if (_deferred.empty() && _dirty.empty() && !_pendingAny.load(std::memory_order_acquire) &&
      _idleActive) {
    _idleActive = false;
    uv_idle_stop(&_idle);
  }
}

}  // namespace ferry::transports::udp
