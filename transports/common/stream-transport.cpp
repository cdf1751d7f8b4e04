#include "stream-internal.h"

#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "settings.h"

namespace ferry::transports {

namespace {

// Whom the connection caps count a peer against: its user when the kernel says who it is, else
// its address without the port ("127.0.0.1:40312" -> "127.0.0.1", "[::1]:5000" -> "[::1]").
std::string sourceOf(const PeerDescription& peer) {
  if (peer.hasCredentials) return "uid " + std::to_string(peer.uid);
  size_t colon = peer.address.rfind(':');
  return colon == std::string::npos ? peer.address : peer.address.substr(0, colon);
}

// How often the idle and stalled-message timeouts are checked: a quarter of the shorter one,
// within [10 ms, 1 s]; 0 when neither is set.
uint64_t sweepIntervalMs(const StreamLimits& limits) {
  uint64_t shortest = 0;
  for (uint64_t ms : {limits.idleTimeoutMs, limits.frameTimeoutMs}) {
    if (ms != 0 && (shortest == 0 || ms < shortest)) shortest = ms;
  }
  if (shortest == 0) return 0;
  return std::clamp<uint64_t>(shortest / 4, 10, 1000);
}

}  // namespace

StreamTransport::StreamTransport(const char* pluginName, const ferry_host_v1* host,
                                 uv_loop_t* loop, const ferry_transport_events_v1& events,
                                 const StreamLimits& limits)
    : _pluginName(pluginName),
      _host(host),
      _loop(loop),
      _events(events),
      _limits(limits),
      _receiveBudget(limits.receiveBudget),
      _readBuffer(allocateBytes(kReadBufferSize)) {
  // The any-thread send path hands leftovers to the loop through this handle. Without it,
  // sendAnyThread still works whenever the socket takes a whole frame at once.
  if (uv_async_init(_loop, &_handoverAsync, &onHandover) == 0) {
    _handoverAsync.data = this;
    _handoverOpen = true;
    ++_liveHandles;
  }
  // The read set of the outgoing connections (stream-lease.cpp). Without it libuv reads them.
  _readSetFd = epoll_create1(EPOLL_CLOEXEC);
  if (_readSetFd >= 0 && uv_poll_init(_loop, &_readSetWatch, _readSetFd) == 0) {
    _readSetWatch.data = this;
    _readSetOpen = true;
    ++_liveHandles;
    uv_poll_start(&_readSetWatch, UV_READABLE, &onReadSet);
  } else if (_readSetFd >= 0) {
    ::close(_readSetFd);
    _readSetFd = -1;
  }
  if (uint64_t interval = sweepIntervalMs(_limits); interval != 0) {
    if (uv_timer_init(_loop, &_sweepTimer) == 0) {
      _sweepTimer.data = this;
      _sweepOpen = true;
      ++_liveHandles;
      uv_timer_start(&_sweepTimer, &onSweep, interval, interval);
      uv_unref(reinterpret_cast<uv_handle_t*>(&_sweepTimer));
    }
  }
}

int checkStreamSettings(const char* settings, char* whyOut, size_t whyCap) noexcept {
  return checkSettingsText(settings, whyOut, whyCap,
                           [](const char* text, std::vector<std::string>& problems) {
                             StreamLimits limits;
                             parseStreamLimits(text, limits, problems);
                           });
}

StreamTransport::~StreamTransport() {
  // Its watch is closed by now (destroy()); the descriptor is the instance's to close.
  if (_readSetFd >= 0) ::close(_readSetFd);
}

void StreamTransport::log(int level, const std::string& message) const noexcept {
  try {
    if (_host->log != nullptr) _host->log(_host->context, level, _pluginName, message.c_str());
  } catch (...) {
    // The host broke the ABI by throwing; there is nobody left to tell.
  }
}

int StreamTransport::openHandle(Listener& listener) {
  int err = initHandle(listener.handle);
  if (err != 0) return err;
  listener.handle.handle.data = &listener;
  listener.handleOpen = true;
  ++_liveHandles;
  return 0;
}

int StreamTransport::openHandle(Connection& connection) {
  int err = initHandle(connection.handle);
  if (err != 0) return err;
  connection.handle.handle.data = &connection;
  ++connection.openHandles;
  ++_liveHandles;
  return 0;
}

// --- Table functions. ---

int StreamTransport::listen(const char* address, const char* endpoint, char* endpointOut,
                            size_t endpointCap, uint32_t flags) {
  if (address == nullptr || endpoint == nullptr) return UV_EINVAL;
  if ((flags & ~listenFlags()) != 0) {
    log(FERRY_LOG_WARN, "cannot listen: this transport offers no such listen flag");
    return UV_ENOTSUP;
  }
  auto owned = std::make_unique<Listener>(this);
  owned->flags = flags;
  _listeners.push_back(owned.get());
  Listener* listener = owned.release();
  std::string bound;
  int err = 0;
  try {
    err = bindListener(*listener, address, endpoint, bound);
  } catch (...) {
    _listeners.pop_back();
    closeListener(*listener);
    throw;
  }
  if (err == 0) {
    err = uv_listen(&listener->handle.stream, SOMAXCONN, &onConnection);
    if (err != 0) log(FERRY_LOG_WARN, "cannot listen on " + quoted(address) + " endpoint " +
                                          quoted(bound.c_str()) + ": " + uv_strerror(err));
  }
  if (err == 0 && endpointOut != nullptr) {
    if (bound.size() >= endpointCap) {
      err = UV_ENOBUFS;
    } else {
      std::memcpy(endpointOut, bound.c_str(), bound.size() + 1);
    }
  }
  if (err != 0) {
    _listeners.pop_back();
    closeListener(*listener);
    return err;
  }
  log(FERRY_LOG_INFO, "listening on " + quoted(address) + " endpoint " + quoted(bound.c_str()));
  return 0;
}

int StreamTransport::connect(const char* address, const char* endpoint, uint32_t timeoutMs,
                             ferry_conn_id* connOut) {
  if (address == nullptr || endpoint == nullptr || connOut == nullptr) return UV_EINVAL;
  ferry_conn_id id = _nextId++;
  auto owned = std::make_unique<Connection>(this, id, _limits.maxMessageSize, &_receiveBudget);
  _connections.emplace(id, owned.get());
  Connection& connection = *owned.release();
  int err = 0;
  try {
    err = startConnect(connection, address, endpoint);
  } catch (...) {
    closeConnection(connection, Connection::Report::nothing, UV_ENOMEM);
    throw;
  }
  if (err == 0) {
    // Cannot fail for a valid loop; checked all the same.
    err = uv_timer_init(_loop, &connection.connectTimer);
    if (err == 0) {
      connection.connectTimer.data = &connection;
      connection.timerOpen = true;
      ++connection.openHandles;
      ++_liveHandles;
      err = uv_timer_start(&connection.connectTimer, &onConnectTimeout, timeoutMs, 0);
    }
  }
  if (err != 0) {
    // No id was handed out, so no event may follow.
    closeConnection(connection, Connection::Report::nothing, err);
    return err;
  }
  *connOut = id;
  return 0;
}

void StreamTransport::close(ferry_conn_id conn) {
  auto found = _connections.find(conn);
  if (found == _connections.end()) return;
  Connection& connection = *found->second;
  if (connection.state == Connection::State::connecting) {
    // The connection never existed for the host: it hears `connected` with an error, not `closed`.
    closeConnection(connection, Connection::Report::connectFailed, UV_ECANCELED);
  } else {
    closeConnection(connection, Connection::Report::closed, 0);
  }
}

void StreamTransport::destroy(void (*done)(void*), void* arg) {
  if (_destroying) {
    log(FERRY_LOG_ERROR, "destroy called twice on one instance; the second call is ignored");
    return;
  }
  _destroying = true;
  _done = done;
  _doneArg = arg;
  while (!_listeners.empty()) {
    Listener* listener = _listeners.back();
    _listeners.pop_back();
    closeListener(*listener);
  }
  while (!_connections.empty()) {
    closeConnection(*_connections.begin()->second, Connection::Report::nothing, 0);
  }
  if (_sweepOpen) {
    _sweepOpen = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&_sweepTimer), &onFinalClosed);
  }
  if (_readSetOpen) {
    _readSetOpen = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&_readSetWatch), &onFinalClosed);
  }
  {
    std::lock_guard lock(_directMutex);
    _handovers.clear();
    _returnedReads.clear();
    if (_handoverOpen) {
      _handoverOpen = false;
      uv_close(reinterpret_cast<uv_handle_t*>(&_handoverAsync), &onFinalClosed);
    }
  }
  uv_idle_init(_loop, &_finalHandle);
  _finalHandle.data = this;
  ++_liveHandles;
  uv_close(reinterpret_cast<uv_handle_t*>(&_finalHandle), &onFinalClosed);
}

// --- Connection life. ---

void StreamTransport::closeConnection(Connection& connection, Connection::Report report,
                                      int status) {
  if (connection.state == Connection::State::closing) return;
  closeDirect(connection.id);
  endLeasedReads(connection);
  _connections.erase(connection.id);
  if (connection.state == Connection::State::open) {
    _counters.now_connections.fetch_sub(1, std::memory_order_relaxed);
  }
  if (connection.accepted) {
    auto source = _acceptedBySource.find(connection.source);
    if (source != _acceptedBySource.end() && --source->second == 0) _acceptedBySource.erase(source);
    --_acceptedOpen;
    connection.accepted = false;
  }
  connection.state = Connection::State::closing;
  connection.report = report;
  connection.reportStatus = status;
  if (connection.openHandles == 0) {
    // Its handle was never initialized: no callback will come to free it.
    delete &connection;
    return;
  }
  if (connection.timerOpen) {
    connection.timerOpen = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&connection.connectTimer), &onConnectionHandleClosed);
  }
  // Cancels a pending connect (onConnectDone gets UV_ECANCELED) and queued writes (onWritten
  // gets UV_ECANCELED), both before the close callback.
  uv_close(&connection.handle.handle, &onConnectionHandleClosed);
}

void StreamTransport::closeListener(Listener& listener) {
  if (!listener.handleOpen) {
    delete &listener;
    return;
  }
  // For a pipe, libuv unlinks the socket file here, before it closes the descriptor.
  uv_close(&listener.handle.handle, &onListenerClosed);
}

void StreamTransport::handleClosed() {
  if (--_liveHandles > 0 || !_destroying) return;
  void (*done)(void*) = _done;
  void* arg = _doneArg;
  delete this;
  reportDestroyed(done, arg);
}

ferry_peer_info_v1 StreamTransport::peerInfo(const PeerDescription& peer) noexcept {
  ferry_peer_info_v1 info{};
  info.struct_size = sizeof(info);
  info.address = peer.address.c_str();
  info.has_credentials = peer.hasCredentials ? 1 : 0;
  info.uid = peer.uid;
  info.gid = peer.gid;
  info.pid = peer.pid;
  return info;
}

bool StreamTransport::admit(const std::string& source) {
  auto found = _acceptedBySource.find(source);
  size_t fromSource = found == _acceptedBySource.end() ? 0 : found->second;
  if (fromSource >= _limits.maxConnectionsPerPeer) {
    _counters.connections_refused_per_peer.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // The reserve is for peers with no connection yet: one busy peer cannot take the last ones.
  size_t reserveFrom = _limits.maxConnections - _limits.connectionReserve;
  if (_acceptedOpen >= _limits.maxConnections || (_acceptedOpen >= reserveFrom && fromSource > 0)) {
    _counters.connections_refused_limit.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void StreamTransport::accept(Listener& listener) {
  ferry_conn_id id = _nextId++;
  auto owned =
      std::make_unique<Connection>(this, id, _limits.maxMessageSize, &_receiveBudget);
  _connections.emplace(id, owned.get());
  Connection& connection = *owned.release();
  int err = openHandle(connection);
  if (err == 0) err = uv_accept(&listener.handle.stream, &connection.handle.stream);
  PeerDescription peer;
  if (err == 0) err = establish(connection, &listener, peer);
  if (err == 0) {
    peer.source = sourceOf(peer);
    if (!admit(peer.source)) {
      // Counted; logged at debug only, since a flood of them would flood the log too.
      log(FERRY_LOG_DEBUG, "refused a connection from " + peer.address +
                               ": over max_connections or max_connections_per_peer");
      closeConnection(connection, Connection::Report::nothing, 0);
      return;
    }
    err = uv_read_start(&connection.handle.stream, &onAlloc, &onRead);
  }
  if (err != 0) {
    log(FERRY_LOG_WARN, "dropped an incoming connection: " + std::string(uv_strerror(err)));
    closeConnection(connection, Connection::Report::nothing, err);
    return;
  }
  connection.accepted = true;
  connection.source = peer.source;
  ++_acceptedBySource[peer.source];
  ++_acceptedOpen;
  _counters.connections_accepted.fetch_add(1, std::memory_order_relaxed);
  _counters.now_connections.fetch_add(1, std::memory_order_relaxed);
  connection.lastActivityMs = uv_now(_loop);
  connection.state = Connection::State::open;
  openDirect(connection);
  ferry_peer_info_v1 info = peerInfo(peer);
  _events.accepted(_events.context, id, &info);
}

void StreamTransport::connectDone(Connection& connection, int status) {
  // Already decided (timed out, closed, destroyed): UV_ECANCELED from uv_close lands here too.
  if (connection.state != Connection::State::connecting) return;
  if (connection.timerOpen) {
    connection.timerOpen = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&connection.connectTimer), &onConnectionHandleClosed);
  }
  if (status < 0) {
    closeConnection(connection, Connection::Report::connectFailed, status);
    return;
  }
  PeerDescription peer;
  int err = establish(connection, nullptr, peer);
  // A waiting thread may read an outgoing connection itself (stream-lease.cpp); libuv reads it
  // when the read set cannot take it.
  if (err == 0 && !startLeasedReads(connection)) {
    err = uv_read_start(&connection.handle.stream, &onAlloc, &onRead);
  }
  if (err != 0) {
    closeConnection(connection, Connection::Report::connectFailed, err);
    return;
  }
  _counters.now_connections.fetch_add(1, std::memory_order_relaxed);
  connection.lastActivityMs = uv_now(_loop);
  connection.state = Connection::State::open;
  openDirect(connection);
  ferry_peer_info_v1 info = peerInfo(peer);
  _events.connected(_events.context, connection.id, 0, &info);
}

bool StreamTransport::deliver(void* context, const uint8_t* data, size_t size) {
  auto* connection = static_cast<Connection*>(context);
  StreamTransport* self = connection->owner;
  connection->frameStartMs = 0;
  self->_counters.messages_received.fetch_add(1, std::memory_order_relaxed);
  self->_events.received(self->_events.context, connection->id, data, size);
  // The host may have closed the connection or destroyed the instance meanwhile.
  return connection->state == Connection::State::open;
}

void StreamTransport::readDone(Connection& connection, ssize_t nread, const uv_buf_t* buf) {
  if (nread == 0 || connection.state != Connection::State::open) return;
  if (nread < 0) return streamEnded(connection, static_cast<int>(nread));
  const auto* data = reinterpret_cast<const uint8_t*>(buf->base);
  // onAlloc handed out the shared buffer, or the split message's own.
  bytesArrived(connection, data, static_cast<size_t>(nread),
               data == _readBuffer.get() ? ReadInto::sharedBuffer : ReadInto::splitMessage);
}

void StreamTransport::bytesArrived(Connection& connection, const uint8_t* data, size_t size,
                                   ReadInto into) {
  if (connection.state != Connection::State::open) return;
  uint64_t now = uv_now(_loop);
  connection.lastActivityMs = now;
  int err = 0;
  try {
    switch (into) {
      case ReadInto::sharedBuffer:
        err = connection.reader.feed(data, size, &deliver, &connection, &_readBuffer,
                                     kReadBufferSize);
        break;
      case ReadInto::splitMessage:
        err = connection.reader.filled(size, &deliver, &connection);
        break;
      case ReadInto::elsewhere:
        err = connection.reader.feed(data, size, &deliver, &connection);
        break;
    }
  } catch (const std::bad_alloc&) {
    err = UV_ENOMEM;
  } catch (...) {
    // Thrown through `received` by the host: the rest of these bytes is lost, and with it the
    // framing of this stream.
    err = UV_EIO;
  }
  if (err < 0 && connection.state == Connection::State::open) {
    std::string why = uv_strerror(err);
    if (err == UV_EMSGSIZE) {
      _counters.closed_oversized.fetch_add(1, std::memory_order_relaxed);
      why = "the peer announced a message larger than the maximum of " +
            std::to_string(_limits.maxMessageSize) + " bytes (max_message_size)";
    } else if (err == UV_ENOBUFS) {
      _counters.closed_over_budget.fetch_add(1, std::memory_order_relaxed);
      why = "the " + std::to_string(_limits.receiveBudget) +
            " bytes for partly received messages (receive_budget) are taken";
    }
    log(FERRY_LOG_WARN, describeConnection(connection.id) + " closed: " + why);
    closeConnection(connection, Connection::Report::closed, err);
    return;
  }
  if (connection.reader.midFrame() && connection.frameStartMs == 0) {
    connection.frameStartMs = now;
  }
}

void StreamTransport::streamEnded(Connection& connection, int status) {
  if (connection.state != Connection::State::open) return;
  if (status == UV_EOF) {
    // The peer closed cleanly, unless it stopped in the middle of a message.
    status = connection.reader.midFrame() ? UV_EPROTO : 0;
    if (status != 0) {
      _counters.closed_truncated.fetch_add(1, std::memory_order_relaxed);
      log(FERRY_LOG_WARN, describeConnection(connection.id) + ": the peer closed in the middle "
                                                              "of a message");
    }
  }
  closeConnection(connection, Connection::Report::closed, status);
}

// --- libuv callbacks. ---

void StreamTransport::onConnection(uv_stream_t* server, int status) noexcept {
  auto* listener = static_cast<Listener*>(server->data);
  StreamTransport* self = listener->owner;
  guarded(self, "accept", [&] {
    if (status < 0) {
      self->_counters.accept_errors.fetch_add(1, std::memory_order_relaxed);
      self->log(FERRY_LOG_WARN,
                std::string("accepting a connection failed: ") + uv_strerror(status));
      return;
    }
    self->accept(*listener);
  });
}

void StreamTransport::onConnectDone(uv_connect_t* request, int status) noexcept {
  auto* connection = static_cast<Connection*>(request->handle->data);
  guarded(connection->owner, "connect",
          [&] { connection->owner->connectDone(*connection, status); });
}

void StreamTransport::onConnectTimeout(uv_timer_t* timer) noexcept {
  auto* connection = static_cast<Connection*>(timer->data);
  StreamTransport* self = connection->owner;
  guarded(self, "connect timeout", [&] {
    if (connection->state != Connection::State::connecting) return;
    self->log(FERRY_LOG_INFO, describeConnection(connection->id) + ": connect timed out");
    self->closeConnection(*connection, Connection::Report::connectFailed, UV_ETIMEDOUT);
  });
}

std::span<uint8_t> StreamTransport::readSpace(Connection& connection, ReadInto& into) {
  // The rest of a split message goes straight to its buffer, once copied (by the kernel).
  std::span<uint8_t> target = connection.state == Connection::State::open
                                  ? connection.reader.readTarget()
                                  : std::span<uint8_t>();
  if (!target.empty()) {
    into = ReadInto::splitMessage;
    return target;
  }
  // The last shared buffer went to a split message: another.
  if (!_readBuffer) _readBuffer = allocateBytes(kReadBufferSize);
  into = ReadInto::sharedBuffer;
  return {_readBuffer.get(), kReadBufferSize};
}

void StreamTransport::onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* connection = static_cast<Connection*>(handle->data);
  std::span<uint8_t> space;
  try {
    ReadInto into;
    space = connection->owner->readSpace(*connection, into);
  } catch (const std::bad_alloc&) {
    // Without memory, libuv reports UV_ENOBUFS to onRead, which closes the connection.
  }
  buf->base = reinterpret_cast<char*>(space.data());
  buf->len = space.size();
}

void StreamTransport::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* connection = static_cast<Connection*>(stream->data);
  guarded(connection->owner, "read", [&] { connection->owner->readDone(*connection, nread, buf); });
}

void StreamTransport::onListenerClosed(uv_handle_t* handle) noexcept {
  auto* listener = static_cast<Listener*>(handle->data);
  StreamTransport* self = listener->owner;
  delete listener;
  self->handleClosed();
}

void StreamTransport::onConnectionHandleClosed(uv_handle_t* handle) noexcept {
  auto* connection = static_cast<Connection*>(handle->data);
  StreamTransport* self = connection->owner;
  if (handle == &connection->handle.handle && !self->_destroying) {
    // The connection's last event; the host may call back into the instance, even destroy it
    // (it is freed only by a later close callback).
    guarded(self, "close", [&] {
      const ferry_transport_events_v1& events = self->_events;
      if (connection->report == Connection::Report::connectFailed) {
        events.connected(events.context, connection->id, connection->reportStatus, nullptr);
      } else if (connection->report == Connection::Report::closed) {
        events.closed(events.context, connection->id, connection->reportStatus);
      }
    });
  }
  if (--connection->openHandles == 0) delete connection;
  self->handleClosed();
}

void StreamTransport::onSweep(uv_timer_t* timer) noexcept {
  auto* self = static_cast<StreamTransport*>(timer->data);
  guarded(self, "timeouts", [&] { self->sweep(); });
}

void StreamTransport::sweep() {
  uint64_t now = uv_now(_loop);
  std::vector<std::pair<Connection*, bool>> overdue;  // (connection, stalled rather than idle)
  for (auto& [id, connection] : _connections) {
    if (connection->state != Connection::State::open) continue;
    if (_limits.frameTimeoutMs != 0 && connection->frameStartMs != 0 &&
        now - connection->frameStartMs >= _limits.frameTimeoutMs) {
      overdue.emplace_back(connection, true);
    } else if (_limits.idleTimeoutMs != 0 && connection->accepted &&
               now - connection->lastActivityMs >= _limits.idleTimeoutMs) {
      overdue.emplace_back(connection, false);
    }
  }
  for (auto [connection, stalled] : overdue) {
    if (stalled) {
      _counters.closed_stalled_frame.fetch_add(1, std::memory_order_relaxed);
      log(FERRY_LOG_INFO, describeConnection(connection->id) + " closed: a message stayed "
                              "incomplete for " + std::to_string(_limits.frameTimeoutMs) +
                              " ms (frame_timeout_ms)");
    } else {
      _counters.closed_idle.fetch_add(1, std::memory_order_relaxed);
      log(FERRY_LOG_DEBUG, describeConnection(connection->id) + " closed: idle for " +
                               std::to_string(_limits.idleTimeoutMs) + " ms (idle_timeout_ms)");
    }
    closeConnection(*connection, Connection::Report::closed, UV_ETIMEDOUT);
  }
}

int StreamTransport::connectionInfo(ferry_conn_id conn, ferry_connection_info_v1& out) {
  auto found = _connections.find(conn);
  if (found == _connections.end() || found->second->state != Connection::State::open) {
    return UV_ENOTCONN;
  }
  return pathInfo(*found->second, out);
}

int StreamTransport::counters(ferry_counter_v1* out, size_t cap) {
  _counters.now_receive_buffer_bytes.store(_receiveBudget.used(), std::memory_order_relaxed);
  size_t n = 0;
#define FERRY_STREAM_COUNTER_REPORT(name)                                        \
  if (out != nullptr && n < cap) {                                               \
    out[n] = ferry_counter_v1{#name, _counters.name.load(std::memory_order_relaxed)}; \
  }                                                                              \
  ++n;
  FERRY_STREAM_COUNTERS(FERRY_STREAM_COUNTER_REPORT)
#undef FERRY_STREAM_COUNTER_REPORT
  return static_cast<int>(n);
}

void StreamTransport::onFinalClosed(uv_handle_t* handle) noexcept {
  static_cast<StreamTransport*>(handle->data)->handleClosed();
}

}  // namespace ferry::transports
