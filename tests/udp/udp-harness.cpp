#include "udp-harness.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace ferry::udptest {

namespace {

class TableCall {
public:
  explicit TableCall(Harness& harness) : _harness(harness) { ++_harness.tableCallDepth; }
  ~TableCall() { --_harness.tableCallDepth; }
  TableCall(const TableCall&) = delete;
  TableCall& operator=(const TableCall&) = delete;

private:
  Harness& _harness;
};

// Log lines at or above FERRY_UDP_TEST_LOG (error, warn, info, debug; default warn) go to stderr.
int logThreshold() {
  static const int threshold = [] {
    const char* level = std::getenv("FERRY_UDP_TEST_LOG");
    if (level == nullptr) return FERRY_LOG_WARN;
    if (std::strcmp(level, "debug") == 0) return FERRY_LOG_DEBUG;
    if (std::strcmp(level, "info") == 0) return FERRY_LOG_INFO;
    if (std::strcmp(level, "error") == 0) return FERRY_LOG_ERROR;
    return FERRY_LOG_WARN;
  }();
  return threshold;
}

void hostLog(void*, int level, const char* plugin, const char* message) {
  if (level > logThreshold()) return;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::fprintf(stderr, "[%s %d] %s\n", plugin, level, message);
}

}  // namespace

ScopedEnv::ScopedEnv(const char* name, const std::string& value) : _name(name) {
  if (const char* old = std::getenv(name)) _old = old;
  if (value.empty()) {
    unsetenv(name);
  } else {
    setenv(name, value.c_str(), 1);
  }
}

ScopedEnv::~ScopedEnv() {
  if (_old) {
    setenv(_name, _old->c_str(), 1);
  } else {
    unsetenv(_name);
  }
}

const ferry_host_v1* host() {
  static const ferry_host_v1 services = [] {
    ferry_host_v1 h{};
    h.struct_size = sizeof(h);
    h.abi_version = FERRY_PLUGIN_ABI_VERSION;
    h.log = &hostLog;
    h.runtime_dir = "/tmp";
    return h;
  }();
  return &services;
}

namespace {

// The module named by the `index`th path after `--` on the command line.
std::string modulePath(size_t index) {
  auto& suite = boost::unit_test::framework::master_test_suite();
  std::vector<std::string> paths;
  for (int i = 1; i < suite.argc; ++i) {
    std::string arg = suite.argv[i];
    if (arg != "--" && !arg.empty() && arg[0] != '-') paths.push_back(arg);
  }
  BOOST_REQUIRE_MESSAGE(paths.size() > index,
                        "name the udp modules after --: the test-only build with the fault layer, "
                        "then the shipping one (udp-test -- fault-layer/ferry-transport-udp.so "
                        "ferry-transport-udp.so)");
  return paths[index];
}

Plugin load(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  BOOST_REQUIRE_MESSAGE(handle != nullptr, "dlopen " << path << ": " << dlerror());
  auto entry = reinterpret_cast<ferry_plugin_entry_v1_fn>(dlsym(handle, FERRY_PLUGIN_ENTRY_V1_SYMBOL));
  BOOST_REQUIRE(entry != nullptr);
  const ferry_plugin_v1* descriptor = entry(host());
  BOOST_REQUIRE(descriptor != nullptr);
  BOOST_REQUIRE(descriptor->kind == FERRY_PLUGIN_TRANSPORT);
  BOOST_REQUIRE(std::strcmp(descriptor->name, "udp") == 0);
  Plugin p;
  p.table = static_cast<const ferry_transport_v1*>(descriptor->table);
  BOOST_REQUIRE(p.table->struct_size >= offsetof(ferry_transport_v1, counters) + sizeof(void*));
  BOOST_REQUIRE(p.table->counters != nullptr);
  BOOST_REQUIRE(p.table->create_with_settings != nullptr);
  p.setFault = reinterpret_cast<ferry_udp_test_set_fault_v1_fn>(
      dlsym(handle, FERRY_UDP_TEST_SET_FAULT_V1_SYMBOL));
  // Never dlclose: the ABI says plugins stay loaded.
  return p;
}

}  // namespace

const Plugin& plugin() {
  static const Plugin loaded = [] {
    Plugin p = load(modulePath(0));
    BOOST_REQUIRE_MESSAGE(p.setFault != nullptr,
                          "the first module is not the udp plugin's test-only build: it does not "
                          "export " FERRY_UDP_TEST_SET_FAULT_V1_SYMBOL);
    return p;
  }();
  return loaded;
}

const Plugin& shippingPlugin() {
  static const Plugin loaded = load(modulePath(1));
  return loaded;
}

std::vector<ferry_counter_v1> readCounters(const Plugin& plugin, ferry_transport* transport) {
  std::vector<ferry_counter_v1> list(128);
  int count = plugin.table->counters(transport, list.data(), list.size());
  BOOST_REQUIRE(count >= 0);
  if (static_cast<size_t>(count) > list.size()) {
    list.resize(static_cast<size_t>(count));
    count = plugin.table->counters(transport, list.data(), list.size());
    BOOST_REQUIRE(count >= 0 && static_cast<size_t>(count) == list.size());
  }
  list.resize(static_cast<size_t>(count));
  return list;
}

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

Bytes tagged(uint32_t stream, uint32_t index, size_t size) {
  Bytes message = pattern(size < 8 ? 0 : size - 8, stream * 100003u + index);
  Bytes tag(8);
  for (int i = 0; i < 4; ++i) {
    tag[i] = static_cast<uint8_t>(stream >> (8 * i));
    tag[4 + i] = static_cast<uint8_t>(index >> (8 * i));
  }
  message.insert(message.begin(), tag.begin(), tag.end());
  return message;
}

// --- Instance. ---

Instance::Instance(Harness& harness, const Plugin& module, const std::string& options,
                   const std::string& fault)
    : _harness(harness), _module(module) {
  ferry_transport_events_v1 events{};
  events.struct_size = sizeof(events);
  events.context = this;
  events.accepted = &onAccepted;
  events.connected = &onConnected;
  events.received = &onReceivedEvent;
  events.closed = &onClosed;
  TableCall call(_harness);
  int err = _module.table->create_with_settings(host(), _harness.loop(), &events,
                                                 options.c_str(), &_transport);
  BOOST_REQUIRE_MESSAGE(err == 0, "create failed: " << _module.table->strerror(err));
  if (!fault.empty()) setFault(fault);
}

std::string Instance::listen(const std::string& address, const std::string& endpoint) {
  char bound[64] = {};
  TableCall call(_harness);
  int err = _module.table->listen(_transport, address.c_str(), endpoint.c_str(), bound,
                                   sizeof(bound));
  BOOST_REQUIRE_MESSAGE(err == 0, "listen failed: " << _module.table->strerror(err));
  return bound;
}

ferry_conn_id Instance::connect(const std::string& address, const std::string& endpoint,
                                uint32_t timeoutMs) {
  ferry_conn_id conn = 0;
  TableCall call(_harness);
  int err = _module.table->connect(_transport, address.c_str(), endpoint.c_str(), timeoutMs,
                                    &conn);
  BOOST_REQUIRE_MESSAGE(err == 0, "connect failed: " << _module.table->strerror(err));
  BOOST_REQUIRE(conn != 0);
  BOOST_REQUIRE_MESSAGE(_seen.insert(conn).second, "connection id " << conn << " reused");
  _pending.insert(conn);
  return conn;
}

int Instance::send(ferry_conn_id conn, const Bytes& message) {
  TableCall call(_harness);
  return _module.table->send(_transport, conn, message.data(), message.size());
}

void Instance::close(ferry_conn_id conn) {
  TableCall call(_harness);
  _module.table->close(_transport, conn);
}

void Instance::destroy() {
  if (destroyCalled) return;
  destroyCalled = true;
  TableCall call(_harness);
  _module.table->destroy(_transport, &onDone, this);
}

UdpCounters Instance::counters() const {
  BOOST_REQUIRE(!destroyCalled);
  UdpCounters out;
  size_t known = 0;
  std::vector<ferry_counter_v1> list = readCounters(_module, _transport);
  for (const ferry_counter_v1& counter : list) {
    std::string name = counter.name;
#define FERRY_UDP_TEST_READ(field)  \
  if (name == #field) {             \
    out.field = counter.value;      \
    ++known;                        \
  }
    FERRY_UDP_COUNTERS(FERRY_UDP_TEST_READ)
    FERRY_UDP_FAULT_COUNTERS(FERRY_UDP_TEST_READ)
#undef FERRY_UDP_TEST_READ
  }
  BOOST_REQUIRE_MESSAGE(known == list.size(), "the plugin reports counters this test does not know");
  return out;
}

void Instance::setFault(const std::string& spec) {
  BOOST_REQUIRE_MESSAGE(_module.setFault != nullptr, "this module has no fault layer");
  BOOST_REQUIRE(_module.setFault(_transport, spec.c_str()) == 0);
}

size_t Instance::receivedCount(ferry_conn_id conn) const {
  if (keepDigestsOnly) {
    auto found = digests.find(conn);
    return found == digests.end() ? 0 : found->second.size();
  }
  auto found = received.find(conn);
  return found == received.end() ? 0 : found->second.size();
}

bool Instance::eventAllowed(const char* event, ferry_conn_id conn) {
  bool ok = true;
  if (std::this_thread::get_id() != _harness.thread) {
    BOOST_ERROR(event << " came on another thread");
    ok = false;
  }
  if (_harness.tableCallDepth > 0) {
    BOOST_ERROR(event << " for " << conn << " came from inside a table function");
    ok = false;
  }
  if (destroyCalled) {
    BOOST_ERROR(event << " for " << conn << " came after destroy");
    ok = false;
  }
  if (conn == 0) {
    BOOST_ERROR(event << " names connection id 0");
    ok = false;
  }
  return ok;
}

void Instance::onAccepted(void* context, ferry_conn_id conn, const ferry_peer_info_v1* peer) {
  auto* self = static_cast<Instance*>(context);
  if (!self->eventAllowed("accepted", conn)) return;
  if (!self->_seen.insert(conn).second) BOOST_ERROR("accepted reuses id " << conn);
  if (peer == nullptr || peer->address == nullptr) {
    BOOST_ERROR("accepted without a peer");
  } else {
    self->peers[conn] = peer->address;
  }
  self->_open.insert(conn);
  self->accepted.push_back(conn);
}

void Instance::onConnected(void* context, ferry_conn_id conn, int status,
                           const ferry_peer_info_v1* peer) {
  auto* self = static_cast<Instance*>(context);
  if (!self->eventAllowed("connected", conn)) return;
  if (self->_pending.erase(conn) == 0) {
    BOOST_ERROR("connected for " << conn << ", which is no pending connect");
    return;
  }
  if (status == 0) {
    if (peer == nullptr || peer->address == nullptr) {
      BOOST_ERROR("connected without a peer");
    } else {
      self->peers[conn] = peer->address;
    }
    self->_open.insert(conn);
  } else if (peer != nullptr) {
    BOOST_ERROR("a failed connected carries a peer");
  }
  self->connected[conn] = status;
}

void Instance::onReceivedEvent(void* context, ferry_conn_id conn, const uint8_t* data,
                               size_t size) {
  auto* self = static_cast<Instance*>(context);
  if (!self->eventAllowed("received", conn)) return;
  if (self->_open.count(conn) == 0) {
    BOOST_ERROR("received on " << conn << ", which is not established");
    return;
  }
  if (data == nullptr) BOOST_ERROR("received with a null pointer");
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
    BOOST_ERROR("closed for " << conn << ", which is not established");
    return;
  }
  self->closed[conn] = status;
}

void Instance::onDone(void* arg) {
  auto* self = static_cast<Instance*>(arg);
  if (self->_harness.tableCallDepth > 0) BOOST_ERROR("done came from inside a table function");
  ++self->doneCalls;
}

// --- Harness. ---

Harness::Harness() : _loop(std::make_unique<uv_loop_t>()) {
  (void)plugin();
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
      milliseconds(30000));
  BOOST_CHECK_MESSAGE(allDone, "destroy did not call done on every instance");
  for (auto& instance : _instances) BOOST_CHECK(instance->doneCalls <= 1);
  uv_close(reinterpret_cast<uv_handle_t*>(&_deadline), nullptr);
  uv_run(_loop.get(), UV_RUN_NOWAIT);
  int closed = uv_loop_close(_loop.get());
  BOOST_CHECK_MESSAGE(closed == 0, "the loop still has handles after every instance is destroyed");
  if (closed != 0) (void)_loop.release();
}

Instance& Harness::instance(const std::string& options, const std::string& fault) {
  _instances.push_back(std::make_unique<Instance>(*this, plugin(), options, fault));
  return *_instances.back();
}

Instance& Harness::shippingInstance(const std::string& options) {
  _instances.push_back(std::make_unique<Instance>(*this, shippingPlugin(), options, ""));
  return *_instances.back();
}

bool Harness::runBounded(const std::function<bool()>& condition, milliseconds limit) {
  bool expired = false;
  _deadline.data = &expired;
  uv_timer_start(
      &_deadline, [](uv_timer_t* timer) { *static_cast<bool*>(timer->data) = true; },
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
  runUntil([&] { return instance.doneCalls == 1; }, milliseconds(30000), "done");
}

Link connectPair(Harness& harness, Instance& server, Instance& client, const std::string& port,
                 milliseconds patience) {
  size_t before = server.accepted.size();
  Link link;
  link.client = client.connect("127.0.0.1", port, static_cast<uint32_t>(patience.count()));
  harness.runUntil(
      [&] { return server.accepted.size() > before && client.connected.count(link.client); },
      patience, "accepted and connected");
  BOOST_REQUIRE_MESSAGE(client.connected[link.client] == 0,
                        "connect failed: " << plugin().table->strerror(client.connected[link.client]));
  link.server = server.accepted.back();
  return link;
}

// --- RawSocket. ---

RawSocket::RawSocket() {
  _fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(_fd >= 0);
  sockaddr_in name{};
  name.sin_family = AF_INET;
  name.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(bind(_fd, reinterpret_cast<sockaddr*>(&name), sizeof(name)) == 0);
  socklen_t length = sizeof(name);
  BOOST_REQUIRE(getsockname(_fd, reinterpret_cast<sockaddr*>(&name), &length) == 0);
  _port = ntohs(name.sin_port);
  int size = 4 << 20;
  setsockopt(_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

RawSocket::~RawSocket() {
  if (_fd >= 0) ::close(_fd);
}

void RawSocket::sendTo(const std::string& port, const Bytes& datagram) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  ssize_t n = sendto(_fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof(to));
  BOOST_REQUIRE_MESSAGE(n == static_cast<ssize_t>(datagram.size()),
                        "raw send: " << std::strerror(errno));
  bytesSent += datagram.size();
  ++datagramsSent;
}

std::vector<Bytes> RawSocket::receiveAll() {
  std::vector<Bytes> out;
  for (;;) {
    uint8_t buffer[65536];
    ssize_t n = recv(_fd, buffer, sizeof(buffer), 0);
    if (n < 0) break;
    out.emplace_back(buffer, buffer + n);
    bytesReceived += static_cast<uint64_t>(n);
    ++datagramsReceived;
  }
  return out;
}

}  // namespace ferry::udptest
