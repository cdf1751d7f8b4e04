#include "transport-harness.h"

#include <cstring>

namespace ferry::transporttest {

namespace {

// Marks the harness as inside a table function for the duration of one call.
class TableCall {
public:
  explicit TableCall(Harness& harness) : _harness(harness) { ++_harness.tableCallDepth; }
  ~TableCall() { --_harness.tableCallDepth; }
  TableCall(const TableCall&) = delete;
  TableCall& operator=(const TableCall&) = delete;

private:
  Harness& _harness;
};

}  // namespace

Bytes pattern(size_t size, uint32_t seed) {
  Bytes out(size);
  uint32_t state = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    out[i] = static_cast<uint8_t>(state);
  }
  return out;
}

uint64_t digest(const uint8_t* data, size_t size) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i) {
    hash ^= data[i];
    hash *= 0x100000001b3ull;
  }
  return hash ^ size;
}

// --- Instance. ---

Instance::Instance(Harness& harness, const ferry_transport_v1& table, const ferry_host_v1* host,
                   const std::optional<std::string>& settings)
    : _harness(harness), _table(table) {
  ferry_transport_events_v1 events{};
  events.struct_size = sizeof(events);
  events.context = this;
  events.accepted = &onAccepted;
  events.connected = &onConnected;
  events.received = &onReceivedEvent;
  events.closed = &onClosed;
  TableCall call(_harness);
  int err = 0;
  if (settings) {
    BOOST_REQUIRE_MESSAGE(table.struct_size >= offsetof(ferry_transport_v1, create_with_settings) +
                                                   sizeof(void*) &&
                              table.create_with_settings != nullptr,
                          "the plugin does not offer create_with_settings");
    err = table.create_with_settings(host, _harness.loop(), &events, settings->c_str(),
                                     &_transport);
  } else {
    err = table.create(host, _harness.loop(), &events, &_transport);
  }
  BOOST_REQUIRE_MESSAGE(err == 0, "create failed: " << table.strerror(err));
  BOOST_REQUIRE(_transport != nullptr);
}

int Instance::tryListen(const std::string& address, const std::string& endpoint,
                        std::string* bound, size_t endpointCap, uint32_t flags) {
  std::vector<char> out(endpointCap + 1, '\x7f');
  if (flags != 0) {
    BOOST_REQUIRE_MESSAGE(_table.struct_size >= offsetof(ferry_transport_v1, listen_with_flags) +
                                                      sizeof(void*) &&
                              _table.listen_with_flags != nullptr,
                          "the plugin does not offer listen_with_flags");
  }
  TableCall call(_harness);
  int err = flags != 0 ? _table.listen_with_flags(_transport, address.c_str(), endpoint.c_str(),
                                                   flags, out.data(), endpointCap)
                       : _table.listen(_transport, address.c_str(), endpoint.c_str(), out.data(),
                                        endpointCap);
  if (err == 0) {
    BOOST_CHECK_MESSAGE(std::memchr(out.data(), '\0', endpointCap) != nullptr,
                        "listen wrote no NUL-terminated endpoint within endpoint_cap");
    if (bound != nullptr) *bound = out.data();
  }
  BOOST_CHECK_MESSAGE(out[endpointCap] == '\x7f', "listen wrote past endpoint_cap");
  return err;
}

std::string Instance::listen(const std::string& address, const std::string& endpoint) {
  std::string bound;
  int err = tryListen(address, endpoint, &bound);
  BOOST_REQUIRE_MESSAGE(err == 0, "listen on '" << address << "' endpoint '" << endpoint
                                                << "' failed: " << _table.strerror(err));
  BOOST_REQUIRE_MESSAGE(!bound.empty(), "listen reported an empty endpoint");
  return bound;
}

int Instance::tryConnect(const std::string& address, const std::string& endpoint,
                         uint32_t timeoutMs, ferry_conn_id* conn) {
  TableCall call(_harness);
  int err = _table.connect(_transport, address.c_str(), endpoint.c_str(), timeoutMs, conn);
  if (err == 0) {
    BOOST_CHECK_MESSAGE(*conn != 0, "connect returned connection id 0");
    BOOST_CHECK_MESSAGE(_seen.insert(*conn).second, "connect reused connection id " << *conn);
    _pendingConnects.insert(*conn);
  }
  return err;
}

ferry_conn_id Instance::connect(const std::string& address, const std::string& endpoint,
                                uint32_t timeoutMs) {
  ferry_conn_id conn = 0;
  int err = tryConnect(address, endpoint, timeoutMs, &conn);
  BOOST_REQUIRE_MESSAGE(err == 0, "connect to '" << address << "' endpoint '" << endpoint
                                                 << "' failed: " << _table.strerror(err));
  return conn;
}

int Instance::send(ferry_conn_id conn, const Bytes& message) {
  TableCall call(_harness);
  return _table.send(_transport, conn, message.data(), message.size());
}

int Instance::sendAnyThread(ferry_conn_id conn, const Bytes& message) {
  // No Boost.Test here (it is not thread-safe): the table was found on the test thread.
  return _table.send_any_thread(_transport, conn, message.data(), message.size());
}

int Instance::receiveAnyThread(ferry_conn_id conn, int wakeFd, uint32_t timeoutMs,
                               const std::function<bool(const uint8_t*, size_t)>& take,
                               const Bytes* request) {
  // No Boost.Test here either.
  auto offer = [](void* context, const uint8_t* data, size_t size) -> int {
    return (*static_cast<const std::function<bool(const uint8_t*, size_t)>*>(context))(data, size)
               ? 1
               : 0;
  };
  return _table.receive_any_thread(_transport, conn, request ? request->data() : nullptr,
                                   request ? request->size() : 0, wakeFd, timeoutMs, offer,
                                   const_cast<std::function<bool(const uint8_t*, size_t)>*>(&take));
}

void Instance::close(ferry_conn_id conn) {
  TableCall call(_harness);
  _table.close(_transport, conn);
}

void Instance::destroy() {
  if (destroyCalled) return;
  destroyCalled = true;
  TableCall call(_harness);
  _table.destroy(_transport, &onDone, this);
}

size_t Instance::receivedCount(ferry_conn_id conn) const {
  if (keepDigestsOnly) {
    auto found = digests.find(conn);
    return found == digests.end() ? 0 : found->second.size();
  }
  auto found = received.find(conn);
  return found == received.end() ? 0 : found->second.size();
}

std::string Instance::peerAddress(ferry_conn_id conn) const {
  for (const auto& [id, peer] : accepted) {
    if (id == conn) return peer.address;
  }
  auto found = connected.find(conn);
  return found != connected.end() && found->second.peer ? found->second.peer->address : "";
}

bool Instance::established(ferry_conn_id conn) const { return _open.count(conn) != 0; }

bool Instance::eventAllowed(const char* event, ferry_conn_id conn) {
  ++events;
  bool ok = true;
  if (std::this_thread::get_id() != _harness.thread) {
    BOOST_ERROR(event << " for connection " << conn << " came on another thread");
    ok = false;
  }
  if (_harness.tableCallDepth > 0) {
    BOOST_ERROR(event << " for connection " << conn << " came from inside a table function");
    ok = false;
  }
  if (destroyCalled) {
    BOOST_ERROR(event << " for connection " << conn << " came after destroy");
    ok = false;
  }
  if (conn == 0) {
    BOOST_ERROR(event << " names connection id 0");
    ok = false;
  }
  return ok;
}

PeerRecord Instance::record(const ferry_peer_info_v1* peer) {
  PeerRecord out;
  out.structSize = peer->struct_size;
  out.address = peer->address != nullptr ? peer->address : "";
  if (peer->address == nullptr) BOOST_ERROR("peer info without an address");
  out.hasCredentials = peer->has_credentials;
  out.uid = peer->uid;
  out.gid = peer->gid;
  out.pid = peer->pid;
  if (peer->struct_size < sizeof(ferry_peer_info_v1)) {
    BOOST_ERROR("peer info struct_size " << peer->struct_size << " is too small");
  }
  return out;
}

void Instance::onAccepted(void* context, ferry_conn_id conn, const ferry_peer_info_v1* peer) {
  auto* self = static_cast<Instance*>(context);
  if (!self->eventAllowed("accepted", conn)) return;
  if (!self->_seen.insert(conn).second) BOOST_ERROR("accepted reuses connection id " << conn);
  if (peer == nullptr) {
    BOOST_ERROR("accepted without peer info");
    return;
  }
  self->_open.insert(conn);
  self->accepted.emplace_back(conn, record(peer));
}

void Instance::onConnected(void* context, ferry_conn_id conn, int status,
                           const ferry_peer_info_v1* peer) {
  auto* self = static_cast<Instance*>(context);
  if (!self->eventAllowed("connected", conn)) return;
  if (self->_pendingConnects.erase(conn) == 0) {
    BOOST_ERROR("connected for connection " << conn << ", which is no pending connect");
    return;
  }
  ConnectedRecord result;
  result.status = status;
  if (status == 0) {
    if (peer == nullptr) {
      BOOST_ERROR("connected without peer info");
    } else {
      result.peer = record(peer);
    }
    self->_open.insert(conn);
  } else {
    if (status > 0) BOOST_ERROR("connected with a positive status " << status);
    if (peer != nullptr) BOOST_ERROR("a failed connected carries peer info");
  }
  self->connected[conn] = result;
}

void Instance::onReceivedEvent(void* context, ferry_conn_id conn, const uint8_t* data,
                               size_t size) {
  auto* self = static_cast<Instance*>(context);
  if (!self->eventAllowed("received", conn)) return;
  if (self->_open.count(conn) == 0) {
    BOOST_ERROR("received on connection " << conn << ", which is not established");
    return;
  }
  if (size > self->_table.max_message_size) BOOST_ERROR("received more than max_message_size");
  if (size > 0 && data == nullptr) BOOST_ERROR("received with a null pointer");
  if (self->keepDigestsOnly) {
    self->digests[conn].emplace_back(size, digest(data, size));
  } else {
    self->received[conn].emplace_back(data, data + size);
  }
  if (self->onReceived) self->onReceived(conn, data, size);
}

void Instance::onClosed(void* context, ferry_conn_id conn, int status) {
  auto* self = static_cast<Instance*>(context);
  if (!self->eventAllowed("closed", conn)) return;
  if (self->_open.erase(conn) == 0) {
    BOOST_ERROR("closed for connection " << conn << ", which is not established");
    return;
  }
  if (status > 0) BOOST_ERROR("closed with a positive status " << status);
  self->closed[conn] = status;
}

void Instance::onDone(void* arg) {
  auto* self = static_cast<Instance*>(arg);
  if (std::this_thread::get_id() != self->_harness.thread) {
    BOOST_ERROR("done came on another thread");
  }
  if (self->_harness.tableCallDepth > 0) BOOST_ERROR("done came from inside a table function");
  ++self->doneCalls;
}

// --- Harness. ---

Harness::Harness() : _loop(std::make_unique<uv_loop_t>()) {
  BOOST_REQUIRE(uv_loop_init(_loop.get()) == 0);
  BOOST_REQUIRE(uv_timer_init(_loop.get(), &_deadline) == 0);
}

Harness::~Harness() {
  for (auto& instance : _instances) instance->destroy();
  bool allDone = runBounded(
      [&] {
        for (auto& instance : _instances) {
          if (instance->doneCalls == 0) return false;
        }
        return true;
      },
      kPatience);
  BOOST_CHECK_MESSAGE(allDone, "destroy did not call done on every instance");
  for (auto& instance : _instances) {
    BOOST_CHECK_MESSAGE(instance->doneCalls <= 1,
                        "done was called " << instance->doneCalls << " times");
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&_deadline), nullptr);
  uv_run(_loop.get(), UV_RUN_NOWAIT);
  int closed = uv_loop_close(_loop.get());
  BOOST_CHECK_MESSAGE(closed == 0, "the loop still has handles after every instance is destroyed");
  if (closed != 0) {
    // Walk what was left behind into the log, then leak the loop: handles still point into it.
    uv_walk(
        _loop.get(),
        [](uv_handle_t* handle, void*) {
          BOOST_TEST_MESSAGE("left behind: a " << uv_handle_type_name(uv_handle_get_type(handle))
                                               << " handle");
        },
        nullptr);
    (void)_loop.release();
  }
}

bool Harness::runBounded(const std::function<bool()>& condition, milliseconds limit) {
  bool expired = false;
  _deadline.data = &expired;
  // The limit counts from now, not from the loop's cached time of its last iteration.
  uv_update_time(_loop.get());
  // libuv (1.44) runs due timers at the start of uv_run, before it polls. A deadline that fires
  // there leaves no timer to bound the poll, and UV_RUN_ONCE would sleep until some descriptor
  // woke the loop: uv_stop makes that poll return at once.
  uv_timer_start(
      &_deadline,
      [](uv_timer_t* timer) {
        *static_cast<bool*>(timer->data) = true;
        uv_stop(timer->loop);
      },
      static_cast<uint64_t>(limit.count()), 0);
  while (!condition() && !expired) uv_run(_loop.get(), UV_RUN_ONCE);
  uv_timer_stop(&_deadline);
  return condition();
}

void Harness::runUntil(const std::function<bool()>& condition, milliseconds limit,
                       const std::string& what) {
  BOOST_REQUIRE_MESSAGE(runBounded(condition, limit),
                        "waited " << limit.count() << " ms for " << what << " in vain");
}

void Harness::runFor(milliseconds duration) {
  runBounded([] { return false; }, duration);
}

void Harness::destroy(Instance& instance) {
  instance.destroy();
  runUntil([&] { return instance.doneCalls == 1; }, kPatience, "done from the destroyed instance");
}

void Harness::destroyAll() {
  for (auto& instance : _instances) instance->destroy();
  runUntil(
      [&] {
        for (auto& instance : _instances) {
          if (instance->doneCalls == 0) return false;
        }
        return true;
      },
      kPatience, "done from every destroyed instance");
}

Link connectPair(Harness& harness, Instance& server, Instance& client, const std::string& address,
                 const std::string& endpoint, milliseconds patience) {
  size_t acceptedBefore = server.accepted.size();
  Link link;
  link.client = client.connect(address, endpoint, static_cast<uint32_t>(patience.count()));
  harness.runUntil(
      [&] {
        return server.accepted.size() > acceptedBefore && client.connected.count(link.client);
      },
      patience, "accepted and connected");
  int status = client.connected[link.client].status;
  BOOST_REQUIRE_MESSAGE(status == 0, "connect failed: " << client.table().strerror(status));
  BOOST_REQUIRE_EQUAL(server.accepted.size(), acceptedBefore + 1);
  link.server = server.accepted.back().first;
  return link;
}

}  // namespace ferry::transporttest
