#include "hub.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <future>
#include <limits>

#include "../apartment-impl.h"
#include "../log.h"
#include "../orpc/frame.h"
#include "../pending-call.h"
#include "../plugin-loader.h"
#include "../runtime-impl.h"
#include "../stats.h"
#include "../thread-state.h"

namespace ferry::detail {

namespace {

// Connect attempts give up after this long (the call's own deadline may be shorter).
constexpr uint32_t kConnectTimeoutMs = 5000;

// The event trampolines: on the I/O loop, never throwing into the plugin.
template <typename Fn>
void guarded(const char* what, Fn&& fn) noexcept {
  try {
    fn();
  } catch (const std::exception& e) {
    FERRY_LOG(error, "transport event " << what << " failed: " << e.what());
  } catch (...) {
    FERRY_LOG(error, "transport event " << what << " failed");
  }
}

}  // namespace

struct TransportHub::Instance {
  TransportHub* hub = nullptr;
  uint32_t index = 0;
  std::string name;
  const ferry_transport_v1* table = nullptr;
  TransportTraits traits;
  ferry_transport* transport = nullptr;
  ferry_transport_events_v1 events{};
};

namespace {

// The kernel's word on the peer, when the transport gives it.
void takeCredentials(orpc::LinkInfo& info, const ferry_peer_info_v1* peer) noexcept {
  if (peer != nullptr && peer->struct_size >= sizeof(ferry_peer_info_v1) && peer->has_credentials) {
    info.hasCredentials = true;
    info.uid = peer->uid;
    info.gid = peer->gid;
    info.pid = peer->pid;
  }
}

}  // namespace

uint32_t TransportHub::capabilitiesOf(const Instance& instance) noexcept {
  const TransportTraits& t = instance.traits;
  return (t.localOnly ? FERRY_TRANSPORT_LOCAL_ONLY : 0u) |
         (t.datagram ? FERRY_TRANSPORT_DATAGRAM : 0u) |
         (t.kernelCredentials ? FERRY_TRANSPORT_KERNEL_CREDENTIALS : 0u) |
         (t.pathAddresses ? FERRY_TRANSPORT_PATH_ADDRESSES : 0u);
}

struct TransportHub::Connection {
  Instance* instance = nullptr;
  ferry_conn_id id = 0;
  std::string key;  // outbound: the binding's text; inbound: ""
  bool open = false;
  orpc::LinkInfo info;
  LinkTraffic traffic;
  std::vector<std::vector<uint8_t>> queued;  // frames sent before it opened
  // connect() callers waiting for the connection to open (completed empty) or fail.
  std::vector<std::shared_ptr<PendingCall>> openWaiters;
  // Why this process closed it for a protocol error (reject); empty otherwise.
  std::string rejected;

  LinkId link() const noexcept { return {instance->index, id}; }
};

namespace {
// The endpoint's clock ticks each second, or four times per ping period when that is shorter.
uint64_t tickMillis(const RuntimeOptions& options) {
  auto quarter = std::chrono::duration_cast<std::chrono::milliseconds>(options.pingPeriod / 4);
  return static_cast<uint64_t>(std::clamp<int64_t>(quarter.count(), 1, 1000));
}
}  // namespace

TransportHub::TransportHub(RuntimeImpl& runtime) : _runtime(runtime) {}

TransportHub::~TransportHub() {
  stop();
  if (_wakeFd >= 0) ::close(_wakeFd);
}

bool TransportHub::start(const RuntimeOptions& options, orpc::LinkEvents& events) {
  if (!options.outOfProcess) return false;
  _events = &events;
  PluginRegistry& plugins = PluginRegistry::instance();
  std::vector<const LoadedPlugin*> chosen;
  for (const LoadedPlugin& p : plugins.loaded()) {
    if (p.kind != FERRY_PLUGIN_TRANSPORT) continue;
    bool wanted = options.transports.empty() ||
                  std::find(options.transports.begin(), options.transports.end(), p.name) !=
                      options.transports.end();
    if (wanted) chosen.push_back(&p);
  }
  for (const std::string& name : options.transports) {
    if (plugins.tryFindTransport(name) == nullptr) {
      FERRY_LOG(warn, "RuntimeOptions::transports names '" << name
                                                             << "', which is not loaded (check "
                                                                "FERRY_PLUGIN_PATH)");
    }
  }
  if (chosen.empty()) {
    // In-process only. Say so (once a process) when it is for want of plugins, not by the
    // options' choice.
    static std::atomic<bool> warned{false};
    if (options.transports.empty() && !warned.exchange(true)) {
      FERRY_LOG(warn, "no transport plugin is loaded, so other processes cannot reach this one: "
                          << plugins.describeSearch()
                          << "; set FERRY_PLUGIN_PATH to the directory that holds "
                             "ferry-transport-*.so, or RuntimeOptions::outOfProcess = false for "
                             "an in-process runtime");
    }
    return false;
  }

  FERRY_UV(uv_loop_init(&_loop));
  if (_wakeFd < 0) _wakeFd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  FERRY_UV(_wakeFd >= 0 ? 0 : uv_translate_sys_error(errno));
  FERRY_UV(uv_poll_init(&_loop, &_wakeWatch, _wakeFd));
  _wakeWatch.data = this;
  FERRY_UV(uv_poll_start(&_wakeWatch, UV_READABLE, &TransportHub::onWake));
  {
    std::lock_guard lock(_tasksMutex);
    _tasksWoken = false;
  }
  // The endpoint's clock: reply cache expiry, registration retries.
  FERRY_UV(uv_timer_init(&_loop, &_tick));
  _tick.data = this;
  FERRY_UV(uv_timer_start(&_tick, [](uv_timer_t* t) {
    auto* hub = static_cast<TransportHub*>(t->data);
    guarded("tick", [&] { hub->_events->tick(Clock::now()); });
  }, tickMillis(options), tickMillis(options)));
  FERRY_UV(uv_prepare_init(&_loop, &_prepare));
  _prepare.data = this;
  FERRY_UV(uv_prepare_start(&_prepare, [](uv_prepare_t* p) {
    static_cast<TransportHub*>(p->data)->_loopState->iterations.fetch_add(1, std::memory_order_release);
  }));
  uv_unref(reinterpret_cast<uv_handle_t*>(&_prepare));
  _started = true;
  _loopState->spin = options.loopSpin;
  _loopState->fd.store(uv_backend_fd(&_loop), std::memory_order_release);

  // Instances are created and listen on the loop thread; start() waits for the bindings.
  std::mutex readyMutex;
  std::condition_variable readyCv;
  bool ready = false;
  std::vector<std::pair<StringBindingData, uint32_t>> bound;  // with its transport's cost rank
  post([&] {
    for (const LoadedPlugin* p : chosen) {
      auto instance = std::make_unique<Instance>();
      instance->hub = this;
      instance->index = static_cast<uint32_t>(_instances.size());
      instance->name = p->name;
      instance->table = static_cast<const ferry_transport_v1*>(p->descriptor->table);
      instance->traits = traitsOf(*instance->table);
      Instance* self = instance.get();
      instance->events.struct_size = sizeof(ferry_transport_events_v1);
      instance->events.context = self;
      instance->events.accepted = [](void* c, ferry_conn_id conn, const ferry_peer_info_v1* peer) {
        auto* i = static_cast<Instance*>(c);
        guarded("accepted", [&] { i->hub->onAccepted(*i, conn, peer); });
      };
      instance->events.connected = [](void* c, ferry_conn_id conn, int status,
                                      const ferry_peer_info_v1* peer) {
        auto* i = static_cast<Instance*>(c);
        guarded("connected", [&] { i->hub->onConnected(*i, conn, status, peer); });
      };
      instance->events.received = [](void* c, ferry_conn_id conn, const uint8_t* data,
                                     size_t size) {
        auto* i = static_cast<Instance*>(c);
        guarded("received", [&] { i->hub->onReceived(*i, conn, data, size); });
      };
      instance->events.closed = [](void* c, ferry_conn_id conn, int status) {
        auto* i = static_cast<Instance*>(c);
        guarded("closed", [&] { i->hub->onClosed(*i, conn, status); });
      };
      int rc = createTransport(*p, PluginRegistry::host(), &_loop, &instance->events, options,
                               &instance->transport);
      if (rc < 0) continue;
      const TransportTraits& traits = instance->traits;
      std::vector<std::pair<std::string, std::string>> listens;
      if (traits.pathAddresses) {
        listens.emplace_back(options.pipeDirectory, options.pipeEndpoint);
      } else {
        for (const std::string& address : options.listenAddresses) {
          listens.emplace_back(address, options.listenPort);
        }
      }
      for (auto& [address, endpoint] : listens) {
        char bound_endpoint[256] = {};
        const ferry_transport_v1* table = instance->table;
        bool forAll = traits.pathAddresses && options.pipeForAllUsers;
        if (forAll && (table->struct_size < offsetof(ferry_transport_v1, listen_with_flags) +
                                                sizeof(void*) ||
                       table->listen_with_flags == nullptr)) {
          FERRY_LOG(error, "the " << p->name << " plugin cannot open its socket to every local "
                           "user (RuntimeOptions::pipeForAllUsers); install the plugin of this "
                           "ferry version");
          continue;
        }
        rc = forAll ? table->listen_with_flags(instance->transport, address.c_str(),
                                               endpoint.c_str(), FERRY_LISTEN_ALL_LOCAL_USERS,
                                               bound_endpoint, sizeof bound_endpoint)
                    : table->listen(instance->transport, address.c_str(), endpoint.c_str(),
                                    bound_endpoint, sizeof bound_endpoint);
        if (rc < 0) {
          FERRY_LOG(error, "transport " << p->name << " cannot listen on '" << address << "' ["
                                        << endpoint << "]: " << instance->table->strerror(rc));
          continue;
        }
        std::string advertised =
            traits.pathAddresses && address.empty() ? runtimeDirectory() : address;
        bound.push_back({{p->name, advertised, bound_endpoint}, traits.costRank});
        FERRY_LOG(info, "listening on " << bindingText(bound.back().first));
      }
      _instances.push_back(std::move(instance));
    }
    std::lock_guard lock(readyMutex);
    ready = true;
    readyCv.notify_one();
  });
  _thread = std::thread([this] { runLoop(); });
  {
    std::unique_lock lock(readyMutex);
    readyCv.wait(lock, [&] { return ready; });
  }
  // Cheapest first, by the ranks the transports declare.
  std::stable_sort(bound.begin(), bound.end(),
                   [](const auto& a, const auto& b) { return a.second < b.second; });
  {
    std::lock_guard lock(_mutex);
    _bindings.clear();
    for (auto& [binding, rank] : bound) _bindings.push_back(std::move(binding));
  }
  {
    std::unique_lock gate(_directGate);
    _directAllowed = true;
  }
  return true;
}

void TransportHub::runLoop() noexcept {
  stats().ioThreads.fetch_add(1, std::memory_order_relaxed);
  uv_run(&_loop, UV_RUN_DEFAULT);
  stats().ioThreads.fetch_sub(1, std::memory_order_relaxed);
}

void TransportHub::stop() noexcept {
  if (!_started) return;
  {
    std::lock_guard lock(_tasksMutex);
    if (_stopping) return;
  }
  {
    // Threads reading their own responses leave the gate (their reads return 0, woken).
    std::lock_guard lock(_readersMutex);
    _readersClosed = true;
    for (int fd : _readers) wakeEventFd(fd);
  }
  {
    // No thread writes (or reads) directly once the instances start closing.
    std::unique_lock gate(_directGate);
    _directAllowed = false;
  }
  // Close every instance on the loop; when all are done, close the async handle so uv_run ends.
  post([this] {
    auto remaining = std::make_shared<size_t>(_instances.size());
    auto finish = [this] {
      {
        std::lock_guard lock(_tasksMutex);
        _stopping = true;
      }
      while (!_connections.empty()) {
        end(*_connections.begin()->second, orpc::LinkEnd::shutdown, "the runtime is shutting down");
      }
      uv_close(reinterpret_cast<uv_handle_t*>(&_tick), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&_prepare), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&_wakeWatch), nullptr);
    };
    if (*remaining == 0) {
      finish();
      return;
    }
    struct Done {
      std::shared_ptr<size_t> remaining;
      std::function<void()> finish;
    };
    for (auto& instance : _instances) {
      auto* done = new Done{remaining, finish};
      instance->table->destroy(instance->transport, [](void* arg) {
        std::unique_ptr<Done> d(static_cast<Done*>(arg));
        if (--*d->remaining == 0) d->finish();
      }, done);
    }
  });
  if (_thread.joinable()) _thread.join();
  _instances.clear();
  // No thread polls the loop from now on (one in poll() already wakes on its own eventfd, when
  // its call fails with the hub, or at its timeout).
  _loopState->fd.store(-1, std::memory_order_release);
  int rc = uv_loop_close(&_loop);
  if (rc != 0) {
    stats().leakedLoopHandles.fetch_add(1, std::memory_order_relaxed);
    FERRY_LOG(error, "the transport loop did not close: " << uv_err_name(rc));
  }
  _started = false;
}

bool TransportHub::stopping() const noexcept {
  std::shared_lock gate(_directGate);
  return !_directAllowed;
}

void TransportHub::post(std::function<void()> fn) {
  bool wake;
  {
    std::lock_guard lock(_tasksMutex);
    FERRY_REQUIRE(_started && !_stopping, Errc::shuttingDown,
                  "the transports of this process are not running (the runtime is stopping, or "
                  "runs no transport)");
    _tasks.push_back(std::move(fn));
    wake = !std::exchange(_tasksWoken, true);
  }
  // Outside the lock, so the woken I/O thread does not wait for it.
  if (wake) wakeEventFd(_wakeFd);
}

void TransportHub::onWake(uv_poll_t* handle, int, int) {
  auto* hub = static_cast<TransportHub*>(handle->data);
  drainEventFd(hub->_wakeFd);
  {
    // From here a post() writes the eventfd again: what it queues after this drain is not lost.
    std::lock_guard lock(hub->_tasksMutex);
    hub->_tasksWoken = false;
  }
  hub->drainTasks();
}

void TransportHub::drainTasks() noexcept {
  for (;;) {
    std::function<void()> task;
    {
      std::lock_guard lock(_tasksMutex);
      if (_tasks.empty()) return;
      task = std::move(_tasks.front());
      _tasks.pop_front();
    }
    guarded("task", task);
  }
}

std::vector<StringBindingData> TransportHub::bindings() const {
  std::lock_guard lock(_mutex);
  return _bindings;
}

std::vector<std::string> TransportHub::transports() const {
  std::vector<std::string> out;
  for (const StringBindingData& b : bindings()) {
    if (std::find(out.begin(), out.end(), b.protseq) == out.end()) out.push_back(b.protseq);
  }
  return out;
}

bool TransportHub::hasTransport(const std::string& protseq) const {
  auto names = transports();
  return std::find(names.begin(), names.end(), protseq) != names.end();
}


// ---- connections (I/O thread) ------------------------------------------------------------------

TransportHub::Connection* TransportHub::connectionFor(const StringBindingData& binding,
                                                      std::string* why) {
  std::string key = bindingText(binding);
  auto it = _byKey.find(key);
  if (it != _byKey.end()) return it->second;
  Instance* instance = nullptr;
  for (auto& i : _instances) {
    if (i->name == binding.protseq) instance = i.get();
  }
  if (instance == nullptr) {
    if (why != nullptr) *why = "the " + binding.protseq + " transport is not running in this process";
    return nullptr;
  }
  ferry_conn_id id = 0;
  int rc = instance->table->connect(instance->transport, binding.address.c_str(),
                                    binding.endpoint.c_str(), kConnectTimeoutMs, &id);
  if (rc < 0) {
    FERRY_LOG(warn, "cannot connect to " << key << ": " << instance->table->strerror(rc));
    if (why != nullptr) *why = instance->table->strerror(rc);
    return nullptr;
  }
  auto connection = std::make_unique<Connection>();
  connection->instance = instance;
  connection->id = id;
  connection->key = key;
  connection->info.outbound = true;
  connection->info.binding = binding;
  connection->info.distance =
      instance->traits.localOnly ? MarshalContext::local : MarshalContext::differentMachine;
  connection->info.transportCapabilities = capabilitiesOf(*instance);
  connection->info.protseq = instance->name;
  connection->info.peer = key;
  Connection* raw = connection.get();
  _connections[{instance->index, id}] = std::move(connection);
  _byKey[key] = raw;
  FERRY_LOG(debug, "connecting to " << key);
  return raw;
}

TransportHub::Connection* TransportHub::find(LinkId link) {
  auto it = _connections.find({link.transport, link.conn});
  return it == _connections.end() ? nullptr : it->second.get();
}

std::vector<TransportCounters> TransportHub::counters() {
  if (!_started) return {};
  auto collect = [this] {
    std::vector<TransportCounters> out;
    for (const auto& instance : _instances) {
      if (!instance->traits.counters || instance->transport == nullptr) continue;
      std::vector<ferry_counter_v1> read(64);
      int n = instance->table->counters(instance->transport, read.data(), read.size());
      if (n > static_cast<int>(read.size())) {
        read.resize(static_cast<size_t>(n));
        n = instance->table->counters(instance->transport, read.data(), read.size());
      }
      if (n < 0) continue;
      TransportCounters entry;
      entry.transport = instance->name;
      for (size_t i = 0; i < std::min(static_cast<size_t>(n), read.size()); ++i) {
        entry.counters.emplace_back(read[i].name != nullptr ? read[i].name : "", read[i].value);
      }
      out.push_back(std::move(entry));
    }
    return out;
  };
  if (std::this_thread::get_id() == _thread.get_id()) return collect();
  auto promise = std::make_shared<std::promise<std::vector<TransportCounters>>>();
  auto future = promise->get_future();
  post([promise, collect] {
    try {
      promise->set_value(collect());
    } catch (...) {
      promise->set_exception(std::current_exception());
    }
  });
  FERRY_REQUIRE(future.wait_for(std::chrono::seconds(5)) == std::future_status::ready,
                Errc::unavailable,
                "the transport I/O thread did not answer for its counters within 5 seconds; it "
                "is stopping or stuck");
  return future.get();
}

std::optional<TransportHub::LinkFigures> TransportHub::figures(LinkId link) {
  Connection* connection = find(link);
  if (connection == nullptr) return std::nullopt;
  LinkFigures out;
  out.messagesSent = connection->traffic.messagesSent.load(std::memory_order_relaxed);
  out.bytesSent = connection->traffic.bytesSent.load(std::memory_order_relaxed);
  out.messagesReceived = connection->traffic.messagesReceived.load(std::memory_order_relaxed);
  out.bytesReceived = connection->traffic.bytesReceived.load(std::memory_order_relaxed);
  Instance& instance = *connection->instance;
  if (connection->open && instance.traits.connectionInfo) {
    ferry_connection_info_v1 path{};
    path.struct_size = sizeof path;
    if (instance.table->connection_info(instance.transport, connection->id, &path) == 0) {
      out.path = path;
    }
  }
  return out;
}

void TransportHub::sendFrame(Connection& connection, std::vector<uint8_t> frame) {
  if (!connection.open) {
    connection.queued.push_back(std::move(frame));
    return;
  }
  const ferry_transport_v1* table = connection.instance->table;
  int rc = table->send(connection.instance->transport, connection.id, frame.data(), frame.size());
  if (rc == 0) connection.traffic.sent(frame.size());
  if (rc < 0) {
    std::string why = "send on " + (connection.key.empty() ? connection.instance->name : connection.key) +
                      " failed: " + table->strerror(rc);
    if (rc == UV_ENOBUFS) {
      why += " (the peer has not read what was sent to it before; the transport's "
             "send_queue_limit setting bounds what waits for it)";
    }
    _events->sendFailed(connection.link(), orpc::frameCallId(frame), why);
  }
}

void TransportHub::onAccepted(Instance& instance, ferry_conn_id conn,
                              const ferry_peer_info_v1* peer) {
  auto connection = std::make_unique<Connection>();
  connection->instance = &instance;
  connection->id = conn;
  connection->open = true;
  // A pipe peer is on this host; tcp/udp peers may be anywhere.
  // A peer over a local-only transport is on this host; others may be anywhere.
  connection->info.distance =
      instance.traits.localOnly ? MarshalContext::local : MarshalContext::differentMachine;
  connection->info.transportCapabilities = capabilitiesOf(instance);
  takeCredentials(connection->info, peer);
  connection->info.protseq = instance.name;
  if (peer != nullptr && peer->address != nullptr) connection->info.peer = peer->address;
  FERRY_LOG(debug, "accepted " << instance.name << " connection from "
                               << (peer != nullptr && peer->address != nullptr ? peer->address : "?"));
  Connection* raw = connection.get();
  _connections[{instance.index, conn}] = std::move(connection);
  {
    std::unique_lock traffic(_trafficGate);
    _directTraffic[raw->link()] = &raw->traffic;
  }
  _events->opened(raw->link(), raw->info);
}

void TransportHub::onConnected(Instance& instance, ferry_conn_id conn, int status,
                               const ferry_peer_info_v1* peer) {
  Connection* connection = find({instance.index, conn});
  if (connection == nullptr) return;
  if (status < 0) {
    return end(*connection, orpc::LinkEnd::neverOpened,
               "could not connect to " + connection->key + ": " + instance.table->strerror(status));
  }
  connection->open = true;
  // The server's credentials: a client's security provider checks who it reached.
  takeCredentials(connection->info, peer);
  {
    std::unique_lock traffic(_trafficGate);
    _directTraffic[connection->link()] = &connection->traffic;
  }
  {
    std::lock_guard lock(_openMutex);
    _openByKey[connection->key] = connection->link();
  }
  _events->opened(connection->link(), connection->info);
  for (auto& waiter : std::exchange(connection->openWaiters, {})) waiter->deliverReceived(nullptr);
  for (auto& frame : std::exchange(connection->queued, {})) sendFrame(*connection, std::move(frame));
}

void TransportHub::onReceived(Instance& instance, ferry_conn_id conn, const uint8_t* data,
                              size_t size) {
  Connection* connection = find({instance.index, conn});
  if (connection == nullptr) return;
  connection->traffic.received(size);
  _events->received({instance.index, conn}, data, size);
}

void TransportHub::onClosed(Instance& instance, ferry_conn_id conn, int status) {
  Connection* connection = find({instance.index, conn});
  if (connection == nullptr) return;
  std::string which = connection->key.empty() ? instance.name : connection->key;
  // Closed by this process for a protocol error: what it sent last (a response) may not have
  // arrived, and the peer, which did not go away, sends its calls again on a new connection, where
  // the reply cache must still answer them. Lost, not closed cleanly.
  if (!connection->rejected.empty()) {
    return end(*connection, orpc::LinkEnd::lost,
               "the connection " + which + " was closed: " + connection->rejected);
  }
  // UV_ETIMEDOUT: the peer went silent (transport.h).
  if (status == UV_ETIMEDOUT) {
    return end(*connection, orpc::LinkEnd::silent,
               "the connection " + which + " went silent: nothing came from the peer within the " +
                   instance.name + " transport's idle timeout (its idle_timeout_ms setting)");
  }
  std::string why = "the connection " + which + " closed" +
                    (status < 0 ? std::string(": ") + instance.table->strerror(status) : "");
  end(*connection, status < 0 ? orpc::LinkEnd::lost : orpc::LinkEnd::closed, why);
}

void TransportHub::end(Connection& connection, orpc::LinkEnd how, const std::string& why) {
  LinkId link = connection.link();
  {
    std::unique_lock traffic(_trafficGate);
    _directTraffic.erase(link);
  }
  if (!connection.key.empty()) {
    {
      std::lock_guard lock(_openMutex);
      auto open = _openByKey.find(connection.key);
      if (open != _openByKey.end() && open->second == link) _openByKey.erase(open);
    }
    auto byKey = _byKey.find(connection.key);
    if (byKey != _byKey.end() && byKey->second == &connection) _byKey.erase(byKey);
  }
  for (auto& waiter : std::exchange(connection.openWaiters, {})) waiter->fail(Errc::unavailable, why);
  // The connection leaves the tables before the endpoint hears of it: calls it sends again take a
  // new connection.
  auto owned = std::move(_connections[{link.transport, link.conn}]);
  _connections.erase({link.transport, link.conn});
  _events->ended(link, owned->info, how, why);
}

// ---- orpc::Network -----------------------------------------------------------------------------

std::optional<TransportHub::LinkId> TransportHub::linkTo(const StringBindingData& binding,
                                                         std::string* why) {
  Connection* connection = connectionFor(binding, why);
  if (connection == nullptr) return std::nullopt;
  return connection->link();
}

void TransportHub::send(LinkId link, std::vector<uint8_t> frame) {
  if (Connection* connection = find(link)) {
    sendFrame(*connection, std::move(frame));
  } else {
    FERRY_LOG(debug, "a frame for a connection that closed was dropped");
  }
}

void TransportHub::reject(LinkId link, const std::string& why) {
  Connection* connection = find(link);
  if (connection == nullptr) return;
  stats().protocolErrors.fetch_add(1, std::memory_order_relaxed);
  FERRY_LOG(warn, "protocol error on a " << connection->instance->name
                                         << " connection, closing it: " << why);
  connection->rejected = why.empty() ? "a protocol error" : why;
  connection->instance->table->close(connection->instance->transport, connection->id);
}

std::optional<TransportHub::LinkId> TransportHub::openLink(const std::string& bindingKey) {
  std::lock_guard lock(_openMutex);
  auto it = _openByKey.find(bindingKey);
  if (it == _openByKey.end()) return std::nullopt;
  return it->second;
}

bool TransportHub::sendNow(LinkId link, std::span<const uint8_t> frame) {
  std::shared_lock gate(_directGate);
  if (!_directAllowed || link.transport >= _instances.size()) return false;
  Instance& i = *_instances[link.transport];
  if (!i.traits.sendAnyThread) return false;
  if (i.table->send_any_thread(i.transport, link.conn, frame.data(), frame.size()) != 0) {
    return false;
  }
  std::shared_lock counts(_trafficGate);
  if (auto traffic = _directTraffic.find(link); traffic != _directTraffic.end()) {
    traffic->second->sent(frame.size());
  }
  return true;
}

orpc::ReadOutcome TransportHub::receiveNow(LinkId link, std::span<const uint8_t> request,
                                           int wakeFd, std::chrono::milliseconds timeout,
                                           orpc::FrameTaker take, void* context) {
  std::shared_lock gate(_directGate);
  if (!_directAllowed || link.transport >= _instances.size()) return orpc::ReadOutcome::cannot;
  Instance& i = *_instances[link.transport];
  if (!i.traits.receiveAnyThread) return orpc::ReadOutcome::cannot;
  {
    std::lock_guard lock(_readersMutex);
    if (_readersClosed) return orpc::ReadOutcome::cannot;
    _readers.push_back(wakeFd);
  }
  // Counted once the read is over: the connection may end meanwhile, and its counts with it.
  struct Reading {
    orpc::FrameTaker take;
    void* context;
    uint64_t messages = 0;
    uint64_t bytes = 0;
  } reading{take, context};
  auto offer = [](void* arg, const uint8_t* data, size_t size) -> int {
    auto* r = static_cast<Reading*>(arg);
    if (!r->take(r->context, data, size)) return 0;
    ++r->messages;
    r->bytes += size;
    return 1;
  };
  uint32_t ms = static_cast<uint32_t>(
      std::clamp<int64_t>(timeout.count(), 0, std::numeric_limits<int32_t>::max()));
  int rc = i.table->receive_any_thread(i.transport, link.conn,
                                       request.empty() ? nullptr : request.data(), request.size(),
                                       wakeFd, ms, offer, &reading);
  {
    std::lock_guard lock(_readersMutex);
    _readers.erase(std::find(_readers.begin(), _readers.end(), wakeFd));
  }
  {
    std::shared_lock counts(_trafficGate);
    if (auto traffic = _directTraffic.find(link); traffic != _directTraffic.end()) {
      if (rc >= 0 && !request.empty()) traffic->second->sent(request.size());
      traffic->second->messagesReceived.fetch_add(reading.messages, std::memory_order_relaxed);
      traffic->second->bytesReceived.fetch_add(reading.bytes, std::memory_order_relaxed);
    }
  }
  if (rc > 0) return orpc::ReadOutcome::taken;
  return rc == 0 ? orpc::ReadOutcome::waited : orpc::ReadOutcome::cannot;
}

void TransportHub::connect(const StringBindingData& binding) {
  ApartmentImpl* current = threadState().apartment;
  ApartmentImpl& home = current != nullptr ? *current : static_cast<ApartmentImpl&>(_runtime.mta());
  // The transport gives up after kConnectTimeoutMs and says why; this bound is the backstop.
  Deadline deadline =
      std::min(callDeadline(), Clock::now() + std::chrono::milliseconds(kConnectTimeoutMs + 1000));
  auto pending = std::make_shared<PendingCall>(home.shared_from_this(), deadline, CausalityId());
  std::string key = bindingText(binding);
  post([this, key, binding, pending] {
    std::string why;
    Connection* connection = connectionFor(binding, &why);
    if (connection == nullptr) {
      pending->fail(Errc::unavailable, "cannot connect to " + key + ": " + why);
    } else if (connection->open) {
      pending->deliverReceived(nullptr);
    } else {
      connection->openWaiters.push_back(pending);
    }
  });
  if (!pending->done()) home.wait(*pending);
  pending->throwIfFailed();
}

}  // namespace ferry::detail
