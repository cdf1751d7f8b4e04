#include "hub.h"

#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include "../apartment-impl.h"
#include "../log.h"
#include "../message.h"
#include "../orpc/frame.h"
#include "../orpc/remote-channel.h"
#include "../pending-call.h"
#include "../plugin-loader.h"
#include "../runtime-impl.h"
#include "../stats.h"
#include "../thread-state.h"
#include "resolver.capnp.h"

namespace ferry::detail {

namespace {

using orpc::FrameKind;
using orpc::decodeFrame;
using orpc::encodeBareFrame;
using orpc::encodeFrame;
using orpc::kFrameHeader;
using orpc::kMaxMessageBytes;

// Connect attempts give up after this long (the call's own deadline may be shorter).
constexpr uint32_t kConnectTimeoutMs = 5000;

// A served call's response, sent back on the connection it came from.
class NetworkReplySink final : public ReplySink {
public:
  NetworkReplySink(TransportHub& hub, orpc::LinkId link, uint64_t caller, uint64_t callId)
      : _hub(hub), _link(link), _caller(caller), _callId(callId) {}

  void deliver(std::unique_ptr<OutgoingResponse> response) noexcept override {
    _hub.sendResponse(_link, _caller, _callId, std::move(response));
  }

  void fail(Errc code, std::string message) noexcept override {
    try {
      deliver(errorResponse(code, message));
    } catch (const std::exception& e) {
      FERRY_LOG(error, "could not send an error response: " << e.what());
    }
  }

private:
  TransportHub& _hub;
  orpc::LinkId _link;
  uint64_t _caller;
  uint64_t _callId;
};

}  // namespace

struct TransportHub::Instance {
  TransportHub* hub = nullptr;
  uint32_t index = 0;
  std::string name;
  const ferry_transport_v1* table = nullptr;
  ferry_transport* transport = nullptr;
  ferry_transport_events_v1 events{};
};

struct TransportHub::Connection {
  Instance* instance = nullptr;
  ferry_conn_id id = 0;
  std::string key;  // outbound: the binding; inbound: ""
  StringBindingData binding;  // outbound
  uint64_t caller = 0;  // inbound: the process whose requests it carries (Request.caller)
  bool outbound = false;
  bool open = false;
  MarshalContext distance = MarshalContext::differentMachine;
  // The peer's kernel-verified credentials (pipe connections), for the local security provider.
  bool hasCredentials = false;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int32_t pid = 0;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> queued;  // (call id, frame)
  std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> resolves;
  // connect() callers waiting for the connection to open (completed empty) or fail.
  std::vector<std::shared_ptr<PendingCall>> openWaiters;
};

namespace {

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

TransportHub::TransportHub(RuntimeImpl& runtime) : _runtime(runtime) {}

TransportHub::~TransportHub() { stop(); }

void TransportHub::start(const RuntimeOptions& options) {
  if (!options.outOfProcess) return;
  // ferryd itself registers nowhere.
  if (!options.acceptRegistrations) _registration = FerrydRegistration(ferrydSetting(options));
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
    return;
  }

  FERRY_UV(uv_loop_init(&_loop));
  FERRY_UV(uv_async_init(&_loop, &_async, &TransportHub::onAsync));
  _async.data = this;
  _replies = std::make_unique<orpc::ReplyCache>(orpc::ReplyCache::Limits{
      .perCaller = options.replyCachePerCaller, .retention = options.replyRetention});
  FERRY_UV(uv_timer_init(&_loop, &_expiry));
  _expiry.data = this;
  FERRY_UV(uv_timer_start(&_expiry, [](uv_timer_t* t) {
    static_cast<TransportHub*>(t->data)->_replies->expire(Clock::now());
  }, 1000, 1000));
  FERRY_UV(uv_timer_init(&_loop, &_reregister));
  _reregister.data = this;
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
  std::vector<StringBindingData> bound;
  post([&] {
    for (const LoadedPlugin* p : chosen) {
      auto instance = std::make_unique<Instance>();
      instance->hub = this;
      instance->index = static_cast<uint32_t>(_instances.size());
      instance->name = p->name;
      instance->table = static_cast<const ferry_transport_v1*>(p->descriptor->table);
      Instance* self = instance.get();
      instance->events.struct_size = sizeof(ferry_transport_events_v1);
      instance->events.context = self;
      instance->events.accepted = [](void* c, ferry_conn_id conn, const ferry_peer_info_v1* peer) {
        auto* i = static_cast<Instance*>(c);
        guarded("accepted", [&] { i->hub->onAccepted(*i, conn, peer); });
      };
      instance->events.connected = [](void* c, ferry_conn_id conn, int status,
                                      const ferry_peer_info_v1*) {
        auto* i = static_cast<Instance*>(c);
        guarded("connected", [&] { i->hub->onConnected(*i, conn, status); });
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
      int rc = instance->table->create(PluginRegistry::host(), &_loop, &instance->events,
                                       &instance->transport);
      if (rc < 0) {
        FERRY_LOG(error, "transport " << p->name << " failed to start: "
                                      << instance->table->strerror(rc));
        continue;
      }
      std::vector<std::pair<std::string, std::string>> listens;
      if (p->name == "pipe") {
        listens.emplace_back(options.pipeDirectory, options.pipeEndpoint);
      } else {
        for (const std::string& address : options.listenAddresses) {
          listens.emplace_back(address, options.listenPort);
        }
      }
      for (auto& [address, endpoint] : listens) {
        char bound_endpoint[256] = {};
        const ferry_transport_v1* table = instance->table;
        bool forAll = p->name == "pipe" && options.pipeForAllUsers;
        if (forAll && (table->struct_size < offsetof(ferry_transport_v1, listen_with_flags) +
                                                sizeof(void*) ||
                       table->listen_with_flags == nullptr)) {
          FERRY_LOG(error, "the pipe plugin cannot open its socket to every local user "
                           "(RuntimeOptions::pipeForAllUsers); install the pipe plugin of this "
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
            p->name == "pipe" ? (address.empty() ? runtimeDirectory() : address) : address;
        bound.push_back({p->name, advertised, bound_endpoint});
        FERRY_LOG(info, "listening on " << bindingText(bound.back()));
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
  // Cheapest first: pipe, then the datagram transport, then streams.
  auto rank = [](const std::string& protseq) {
    return protseq == "pipe" ? 0 : protseq == "udp" ? 1 : protseq == "tcp" ? 2 : 3;
  };
  std::stable_sort(bound.begin(), bound.end(), [&](const auto& a, const auto& b) {
    return rank(a.protseq) < rank(b.protseq);
  });
  {
    std::lock_guard lock(_mutex);
    _bindings = std::move(bound);
  }
  {
    std::unique_lock gate(_directGate);
    _directAllowed = true;
  }

  if (_registration.enabled()) {
    FERRY_LOG(info, "registering apartments with ferryd at " << _registration.key());
  }
}

namespace {

std::vector<uint8_t> registrationFrame(const Resolution& resolution) {
  capnp::MallocMessageBuilder message(256);
  writeResolution(message.initRoot<wire::Registration>().initResolution(), resolution);
  return encodeFrame(FrameKind::registration, 0, Oxid(), message);
}

std::vector<uint8_t> withdrawalFrame(Oxid oxid) {
  capnp::MallocMessageBuilder message(16);
  message.initRoot<wire::ResolveRequest>().setOxid(oxid.value);
  return encodeFrame(FrameKind::withdrawal, 0, Oxid(), message);
}

}  // namespace

void TransportHub::announce(Oxid oxid, Ipid remUnknown) {
  if (!_registration.enabled() || !_started) return;
  try {
    post([this, oxid, remUnknown] { tellResolver(oxid, &remUnknown); });
  } catch (const Error& e) {
    FERRY_LOG(debug, "not told to ferryd: " << e.what());
  }
}

void TransportHub::withdraw(Oxid oxid) {
  if (!_registration.enabled() || !_started) return;
  try {
    post([this, oxid] { tellResolver(oxid, nullptr); });
  } catch (const Error& e) {
    FERRY_LOG(debug, "not told to ferryd: " << e.what());
  }
}

Resolution TransportHub::localResolution(Oxid oxid, Ipid remUnknown) const {
  return Resolution{oxid, remUnknown, bindings(), _runtime.processId, _runtime.hostId};
}

void TransportHub::tellResolver(Oxid oxid, const Ipid* remUnknown) {
  if (remUnknown != nullptr) {
    _registration.announce(oxid, *remUnknown);
  } else if (!_registration.withdraw(oxid)) {
    return;
  }
  // While ferryd is unreachable the retry registers what is announced by then.
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&_reregister))) return;
  auto it = _byKey.find(_registration.key());
  if (it == _byKey.end()) return connectResolver();
  sendFrame(*it->second, remUnknown != nullptr ? registrationFrame(localResolution(oxid, *remUnknown))
                                               : withdrawalFrame(oxid));
}

void TransportHub::connectResolver() {
  {
    std::shared_lock gate(_directGate);
    if (!_directAllowed) return;  // stopping
  }
  // Checked first so that a ferryd that is not running costs no connect attempt (and no log
  // line from the transport) per retry.
  const StringBindingData& ferryd = _registration.ferryd();
  std::string path = ferryd.address + "/" + ferryd.endpoint;
  if (access(path.c_str(), F_OK) != 0) {
    return resolverLost("its socket " + path + " does not exist: " + std::strerror(errno));
  }
  Connection* connection = connectionFor(_registration.key(), ferryd);
  if (connection == nullptr) return resolverLost("the pipe transport cannot connect to it");
  for (auto& [oxid, ipid] : _registration.announced()) {
    sendFrame(*connection, registrationFrame(localResolution(oxid, ipid)));
  }
}

void TransportHub::resolverLost(const std::string& why) {
  {
    std::shared_lock gate(_directGate);
    if (!_directAllowed) return;  // stopping
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&_reregister))) return;
  bool firstTime = false;
  uint64_t delay = _registration.lost(firstTime);
  if (firstTime) {
    FERRY_LOG(warn, "ferryd at " << _registration.key() << " is not reachable (" << why
                                 << "); this process answers resolve requests for its own "
                                    "apartments and registers them with ferryd when it is back");
  } else {
    FERRY_LOG(debug, "ferryd at " << _registration.key() << " is still not reachable (" << why
                                  << "); next attempt in " << delay << " ms");
  }
  FERRY_UV(uv_timer_start(&_reregister, [](uv_timer_t* t) {
    auto* hub = static_cast<TransportHub*>(t->data);
    guarded("reregister", [&] { hub->connectResolver(); });
  }, delay, 0));
}

bool TransportHub::isResolverConnection(const Connection& connection) const {
  return connection.outbound && _registration.enabled() && connection.key == _registration.key();
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
    // No thread writes directly once the instances start closing.
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
      for (auto& [key, connection] : _connections) {
        failConnection(*connection, Errc::unavailable, "the runtime is shutting down");
      }
      _connections.clear();
      _byKey.clear();
      uv_close(reinterpret_cast<uv_handle_t*>(&_expiry), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&_reregister), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&_prepare), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&_async), nullptr);
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
  _replies->clear();
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

void TransportHub::post(std::function<void()> fn) {
  std::lock_guard lock(_tasksMutex);
  FERRY_REQUIRE(_started && !_stopping, Errc::shuttingDown,
                "the transports of this process are not running (the runtime is stopping, or "
                "runs no transport)");
  _tasks.push_back(std::move(fn));
  uv_async_send(&_async);
}

void TransportHub::onAsync(uv_async_t* handle) { static_cast<TransportHub*>(handle->data)->drainTasks(); }

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

TransportHub::Connection* TransportHub::connectionFor(const std::string& key,
                                                      const StringBindingData& binding,
                                                      std::string* why) {
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
  connection->binding = binding;
  connection->outbound = true;
  Connection* raw = connection.get();
  _connections[{instance->index, id}] = std::move(connection);
  _byKey[key] = raw;
  FERRY_LOG(debug, "connecting to " << key);
  return raw;
}

TransportHub::LinkId TransportHub::linkOf(const Connection& connection) noexcept {
  return {connection.instance->index, connection.id};
}

void TransportHub::sendFrame(Connection& connection, std::vector<uint8_t> frame) {
  uint64_t callId = orpc::frameCallId(frame);
  if (!connection.open) {
    connection.queued.emplace_back(callId, std::move(frame));
    return;
  }
  const ferry_transport_v1* table = connection.instance->table;
  int rc = table->send(connection.instance->transport, connection.id, frame.data(), frame.size());
  if (rc < 0) {
    std::string why = "send on " + connection.key + " failed: " + table->strerror(rc);
    if (auto entry = _calls.take(callId, linkOf(connection))) {
      // A copy sent before may have run.
      entry->call->fail(entry->resends > 0 ? Errc::outcomeUnknown : Errc::unavailable, why);
    } else if (auto r = connection.resolves.find(callId); r != connection.resolves.end()) {
      auto pending = std::move(r->second);
      connection.resolves.erase(r);
      pending->fail(Errc::unavailable, why);
    } else {
      FERRY_LOG(warn, why);
    }
  }
}

void TransportHub::onAccepted(Instance& instance, ferry_conn_id conn,
                              const ferry_peer_info_v1* peer) {
  auto connection = std::make_unique<Connection>();
  connection->instance = &instance;
  connection->id = conn;
  connection->open = true;
  // A pipe peer is on this host; tcp/udp peers may be anywhere.
  connection->distance =
      instance.name == "pipe" ? MarshalContext::local : MarshalContext::differentMachine;
  if (peer != nullptr && peer->struct_size >= sizeof(ferry_peer_info_v1) && peer->has_credentials) {
    connection->hasCredentials = true;
    connection->uid = peer->uid;
    connection->gid = peer->gid;
    connection->pid = peer->pid;
  }
  FERRY_LOG(debug, "accepted " << instance.name << " connection from "
                               << (peer != nullptr && peer->address != nullptr ? peer->address : "?"));
  _connections[{instance.index, conn}] = std::move(connection);
}

void TransportHub::onConnected(Instance& instance, ferry_conn_id conn, int status) {
  auto it = _connections.find({instance.index, conn});
  if (it == _connections.end()) return;
  Connection& connection = *it->second;
  if (status < 0) {
    std::string why = instance.table->strerror(status);
    failConnection(connection, Errc::unavailable, "could not connect to " + connection.key + ": " + why);
    // The exporters resolved to this binding may be gone: they are resolved again.
    _runtime.resolutions().invalidateBinding(connection.binding);
    bool resolver = isResolverConnection(connection);
    _byKey.erase(connection.key);
    _connections.erase(it);
    if (resolver) resolverLost(why);
    return;
  }
  connection.open = true;
  if (isResolverConnection(connection) && _registration.reached()) {
    FERRY_LOG(info, "ferryd at " << _registration.key() << " is back; registered "
                                 << _registration.announced().size()
                                 << " apartments with it again");
  }
  {
    std::lock_guard lock(_openMutex);
    _openByKey[connection.key] = linkOf(connection);
  }
  for (auto& waiter : std::exchange(connection.openWaiters, {})) waiter->deliverReceived(nullptr);
  auto queued = std::move(connection.queued);
  for (auto& [callId, frame] : queued) sendFrame(connection, std::move(frame));
}

void TransportHub::onClosed(Instance& instance, ferry_conn_id conn, int status) {
  auto it = _connections.find({instance.index, conn});
  if (it == _connections.end()) return;
  Connection& connection = *it->second;
  std::string why = "the connection " + (connection.key.empty() ? instance.name : connection.key) +
                    " closed" + (status < 0 ? std::string(": ") + instance.table->strerror(status) : "");
  // A sent request may or may not have run: it is sent again on a new connection, where the
  // exporter's reply cache answers it if it did.
  auto resend = failConnection(connection, Errc::outcomeUnknown, why, status < 0);
  if (connection.outbound && status < 0) _runtime.resolutions().invalidateBinding(connection.binding);
  bool resolver = isResolverConnection(connection);
  if (!connection.key.empty()) _byKey.erase(connection.key);
  _connections.erase(it);
  if (resolver) resolverLost("it closed the connection");
  if (!resend.empty()) resendCalls(std::move(resend), why);
}

std::vector<std::pair<uint64_t, TransportHub::CallEntry>> TransportHub::failConnection(
    Connection& connection, Errc code, const std::string& why, bool lost) {
  // ferryd forgets what a closed connection registered.
  _registry.forget(&connection);
  LinkId link = linkOf(connection);
  if (!connection.key.empty()) {
    std::lock_guard lock(_openMutex);
    auto open = _openByKey.find(connection.key);
    if (open != _openByKey.end() && open->second == link) _openByKey.erase(open);
  }
  // The calls it brought. A clean close means the caller went away: what still runs is
  // canceled (nobody waits for it) and nothing is kept. A lost connection leaves them to finish
  // for the caller's resent copies.
  if (!lost && connection.caller != 0) _replies->dropLink(connection.caller, link);
  // The calls that went out on it: sent again when it was lost, failed otherwise.
  auto resend = _calls.dropLink(link, code, why, code == Errc::outcomeUnknown && connection.outbound);
  auto resolves = std::move(connection.resolves);
  connection.resolves.clear();
  Errc unreached = code == Errc::outcomeUnknown ? Errc::unavailable : code;
  for (auto& [id, pending] : resolves) pending->fail(unreached, why);
  for (auto& waiter : std::exchange(connection.openWaiters, {})) waiter->fail(unreached, why);
  // Frames never sent: their calls were failed or are in `resend`.
  connection.queued.clear();
  return resend;
}

void TransportHub::track(uint64_t callId, CallEntry entry) {
  LinkId link = entry.link;
  std::shared_ptr<OutboundCall> call = entry.call;
  _calls.add(callId, std::move(entry));
  call->setCancelHook([this, link, callId] { sendCancel(link, callId); });
}

void TransportHub::resendCalls(std::vector<std::pair<uint64_t, CallEntry>> calls,
                               const std::string& why) {
  bool stopping;
  {
    std::shared_lock gate(_directGate);
    stopping = !_directAllowed;  // stop() began: the instances are going, no new connections
  }
  for (auto& [callId, entry] : calls) {
    if (entry.call->done()) continue;  // canceled or past its deadline
    if (stopping) {
      entry.call->fail(Errc::outcomeUnknown, why + "; the runtime is shutting down");
      continue;
    }
    std::string key = bindingText(entry.binding);
    Connection* connection = connectionFor(key, entry.binding);
    if (connection == nullptr) {
      entry.call->fail(Errc::outcomeUnknown, why + "; cannot reconnect to " + key);
      continue;
    }
    ++entry.resends;
    orpc::markResent(*entry.frame);
    stats().callsResent.fetch_add(1, std::memory_order_relaxed);
    FERRY_LOG(debug, "sending call " << callId << " again on a new connection to " << key << " ("
                                     << why << ")");
    entry.link = linkOf(*connection);
    std::vector<uint8_t> frame = *entry.frame;
    track(callId, std::move(entry));
    sendFrame(*connection, std::move(frame));
  }
}

void TransportHub::protocolError(Instance& instance, ferry_conn_id conn, const std::string& why) {
  stats().protocolErrors.fetch_add(1, std::memory_order_relaxed);
  FERRY_LOG(warn, "protocol error on a " << instance.name << " connection, closing it: " << why);
  instance.table->close(instance.transport, conn);
}

void TransportHub::onReceived(Instance& instance, ferry_conn_id conn, const uint8_t* data,
                              size_t size) {
  auto it = _connections.find({instance.index, conn});
  if (it == _connections.end()) return;
  Connection& connection = *it->second;
  orpc::Frame frame;
  try {
    frame = decodeFrame(data, size);
  } catch (const Error& e) {
    return protocolError(instance, conn, e.message());
  }
  const orpc::FrameHeader& header = frame.header;
  switch (header.kind) {
    case FrameKind::cancel:
      // Only the connection the response goes to may cancel.
      if (connection.caller != 0) _replies->cancel(connection.caller, header.callId, linkOf(connection));
      return;
    case FrameKind::request:
      return serveRequest(connection, header.callId, header.oxid,
                          (header.flags & orpc::kFrameFlagResent) != 0, std::move(*frame.message));
    case FrameKind::resolve:
      return serveResolve(connection, header.callId, std::move(*frame.message));
    case FrameKind::response:
      return serveResponse(connection, header.callId, std::move(*frame.message));
    case FrameKind::registration:
    case FrameKind::withdrawal:
      if (!_runtime.options.acceptRegistrations || instance.name != "pipe") {
        return protocolError(instance, conn, "registrations are only taken by ferryd, over the pipe");
      }
      return acceptRegistration(connection, std::move(*frame.message),
                                header.kind == FrameKind::registration);
    case FrameKind::resolveReply: {
      auto r = connection.resolves.find(header.callId);
      if (r == connection.resolves.end()) return;
      auto pending = std::move(r->second);
      connection.resolves.erase(r);
      pending->deliverReceived(std::make_unique<IncomingResponse>(std::move(*frame.message)));
      return;
    }
  }
}

void TransportHub::serveResponse(Connection& connection, uint64_t callId, OrpcMessage message) {
  std::shared_ptr<OutboundCall> call = _calls.answer(callId, linkOf(connection));
  if (call == nullptr) {
    FERRY_LOG(debug, "response for an unknown call " << callId << " dropped");
    return;
  }
  call->deliverReceived(std::make_unique<IncomingResponse>(std::move(message)));
}

// ---- serving -----------------------------------------------------------------------------------

void TransportHub::serveRequest(Connection& connection, uint64_t callId, Oxid oxid, bool resent,
                                OrpcMessage message) {
  Instance& instance = *connection.instance;
  LinkId link = linkOf(connection);
  auto request = std::make_unique<IncomingRequest>(std::move(message));
  uint16_t flags;
  uint64_t timeoutMicros;
  uint64_t callerId;
  std::vector<uint64_t> acknowledged;
  try {
    auto root = request->root();
    flags = root.getFlags();
    timeoutMicros = root.getTimeoutMicros();
    callerId = root.getCaller();
    if (root.hasAcknowledged()) {
      auto list = root.getAcknowledged();
      if (list.size() > orpc::CallTable::kMaxAcksPerRequest) {
        return protocolError(instance, connection.id, "a request acknowledges more than 64 calls");
      }
      for (uint64_t id : list) acknowledged.push_back(id);
    }
  } catch (const kj::Exception& e) {
    return protocolError(instance, connection.id,
                         "bad request: " + std::string(kjReason(e.getDescription().cStr())));
  }
  bool oneway = (flags & kRequestFlagOneway) != 0;
  if (oneway != (callId == 0)) return protocolError(instance, connection.id, "call id and oneway flag disagree");
  if (!oneway && callerId == 0) return protocolError(instance, connection.id, "a request without its caller");
  if (callerId != 0) {
    if (connection.caller == 0) connection.caller = callerId;
    if (connection.caller != callerId) {
      return protocolError(instance, connection.id, "requests of two callers on one connection");
    }
  }

  // The reply cache: a call that arrived before never runs again.
  std::shared_ptr<ReplySink> replyTo;
  std::shared_ptr<std::atomic<bool>> canceled;
  if (!oneway) {
    auto admission = _replies->admit(callerId, callId, link, acknowledged, Clock::now());
    using Kind = orpc::ReplyCache::Admission::Kind;
    switch (admission.kind) {
      case Kind::running:
        FERRY_LOG(debug, "call " << callId << " arrived again while it runs");
        return;
      case Kind::replay:
        FERRY_LOG(debug, "call " << callId << " arrived again; its response is sent again");
        return sendResponseFrame(link, std::move(admission.reply));
      case Kind::refuse: {
        // Not through a reply sink: that would record the refusal as the call's response.
        auto response = errorResponse(admission.code, admission.message);
        return sendResponseFrame(link, std::make_shared<const std::vector<uint8_t>>(encodeFrame(
                                           FrameKind::response, callId, Oxid(),
                                           response->message.builder())));
      }
      case Kind::run:
        canceled = std::move(admission.canceled);
        replyTo = std::make_shared<NetworkReplySink>(*this, link, callerId, callId);
        break;
    }
  }

  std::shared_ptr<ApartmentImpl> apartment = _runtime.tryFindApartment(oxid);
  if (apartment == nullptr) {
    if (replyTo) {
      // A resent copy: the process that had the apartment may have run the call before it went.
      replyTo->fail(resent ? Errc::outcomeUnknown : Errc::disconnected,
                    "no apartment " + toString(oxid) + " in this process" +
                        (resent ? " (the call was sent before, to an exporter that is gone)" : ""));
    }
    return;
  }
  // The caller's deadline, relative, capped by this process's own call timeout.
  auto cap = std::chrono::duration_cast<std::chrono::microseconds>(_runtime.options.callTimeout);
  auto left = timeoutMicros == 0 ? cap
                                 : std::min(cap, std::chrono::microseconds(static_cast<int64_t>(
                                                     std::min<uint64_t>(timeoutMicros, INT64_MAX / 2))));
  std::unique_ptr<WorkItem> item = std::make_unique<CallItem>(
      apartment, std::move(*request), Clock::now() + left, connection.distance, replyTo,
      canceled);
  if (!apartment->post(item)) item->abandon();
}

void TransportHub::acceptRegistration(Connection& connection, OrpcMessage message, bool add) {
  Resolution resolution;
  try {
    if (add) {
      resolution = readResolution(message.root<wire::Registration>().getResolution());
    } else {
      resolution.oxid = Oxid(message.root<wire::ResolveRequest>().getOxid());
    }
  } catch (const kj::Exception& e) {
    return protocolError(*connection.instance, connection.id,
                         "malformed registration: " + std::string(kjReason(e.getDescription().cStr())));
  } catch (const Error& e) {
    return protocolError(*connection.instance, connection.id,
                         "malformed registration: " + e.message());
  }
  Oxid oxid = resolution.oxid;
  Registry::Registrant registrant{&connection, connection.hasCredentials, connection.uid,
                                  connection.pid};
  Registry::Registrant owner;
  if (const Registry::Registrant* o = _registry.owner(oxid)) owner = *o;
  Registry::Outcome outcome =
      add ? _registry.add(std::move(resolution), registrant) : _registry.withdraw(oxid, registrant);
  if (outcome == Registry::Outcome::refused) {
    FERRY_LOG(warn, "ferryd: refused to " << (add ? "replace" : "withdraw")
                        << " the registration of OXID " << toString(oxid) << " (pid " << owner.pid
                        << ", uid " << owner.uid << ") for pid " << connection.pid << ", uid "
                        << connection.uid << ": only the registering process may change it");
  } else if (outcome == Registry::Outcome::added) {
    FERRY_LOG(debug, "ferryd: registered " << toString(oxid) << " for pid " << connection.pid);
  }
}

void TransportHub::serveResolve(Connection& connection, uint64_t callId, OrpcMessage message) {
  capnp::MallocMessageBuilder reply(128);
  auto root = reply.initRoot<wire::ResolveReply>();
  try {
    Oxid oxid(message.root<wire::ResolveRequest>().getOxid());
    std::shared_ptr<ApartmentImpl> apartment = oxid ? _runtime.tryFindApartment(oxid) : nullptr;
    if (apartment != nullptr) {
      writeResolution(root.initResolution(), localResolution(oxid, apartment->remUnknownIpid()));
    } else if (const Resolution* registered = _registry.find(oxid)) {
      writeResolution(root.initResolution(), *registered);
    } else {
      writeError(root.initError(), Errc::objectNotRegistered,
                 "unknown OXID " + toString(oxid) + ": no such apartment in this process");
    }
  } catch (const kj::Exception& e) {
    return protocolError(*connection.instance, connection.id,
                         "bad resolve request: " + std::string(kjReason(e.getDescription().cStr())));
  }
  sendFrame(connection, encodeFrame(FrameKind::resolveReply, callId, Oxid(), reply));
}

// ---- client side ------------------------------------------------------------------------------

void TransportHub::sendRequest(const std::string& key, const StringBindingData& binding, Oxid oxid,
                               std::unique_ptr<OutgoingRequest> request, Deadline,
                               std::shared_ptr<OutboundCall> call) {
  uint64_t callId = call ? orpc::CallTable::nextCallId() : 0;
  // The fast path: the connection is open, the caller writes the frame itself.
  std::optional<LinkId> open;
  {
    std::lock_guard lock(_openMutex);
    auto it = _openByKey.find(key);
    if (it != _openByKey.end()) open = it->second;
  }
  auto frame = std::make_shared<std::vector<uint8_t>>();
  try {
    if (call) {
      request->root.setCaller(_runtime.processId);
      // The responses received on this connection since its previous request.
      std::vector<uint64_t> acks = open ? _calls.acknowledgementsFor(*open) : std::vector<uint64_t>{};
      if (!acks.empty()) {
        auto list = request->root.initAcknowledged(static_cast<unsigned>(acks.size()));
        for (unsigned i = 0; i < acks.size(); ++i) list.set(i, acks[i]);
      }
    }
    *frame = encodeFrame(FrameKind::request, callId, oxid, request->message.builder());
  } catch (const std::exception& e) {
    if (call) call->fail(Errc::internal, e.what());
    return;
  }
  if (frame->size() > kMaxMessageBytes + kFrameHeader) {
    if (call) {
      call->fail(Errc::invalidArgument,
                 "the request has " + std::to_string(frame->size() - kFrameHeader) +
                     " bytes, more than the 16 MiB a message may carry; pass large data in "
                     "several calls");
    }
    return;
  }
  if (open) {
    if (call) track(callId, CallEntry{call, *open, frame, binding});
    if (sendDirect(*open, *frame)) return;
    // Not written (closing, or no direct path): the loop connects if needed and sends.
    if (call) _calls.take(callId, *open);
  }
  try {
    post([this, key, binding, callId, call, frame]() mutable {
      Connection* connection = connectionFor(key, binding);
      if (connection == nullptr) {
        if (call) call->fail(Errc::unavailable, "cannot connect to " + key);
        return;
      }
      if (call) track(callId, CallEntry{call, linkOf(*connection), frame, binding});
      sendFrame(*connection, *frame);
    });
  } catch (const Error& e) {
    if (call) call->fail(e.code(), e.message());
  }
}

void TransportHub::sendCancel(LinkId link, uint64_t callId) {
  std::vector<uint8_t> frame = encodeBareFrame(FrameKind::cancel, callId);
  if (sendDirect(link, frame)) return;
  try {
    post([this, link, frame = std::move(frame)]() mutable {
      auto it = _connections.find({link.transport, link.conn});
      if (it != _connections.end()) sendFrame(*it->second, std::move(frame));
    });
  } catch (const Error& e) {
    FERRY_LOG(debug, "cancel not sent: " << e.what());
  }
}

bool TransportHub::sendDirect(LinkId link, const std::vector<uint8_t>& frame) {
  std::shared_lock gate(_directGate);
  if (!_directAllowed || link.transport >= _instances.size()) return false;
  Instance& i = *_instances[link.transport];
  if (i.table->struct_size < offsetof(ferry_transport_v1, send_any_thread) + sizeof(void*) ||
      i.table->send_any_thread == nullptr) {
    return false;
  }
  return i.table->send_any_thread(i.transport, link.conn, frame.data(), frame.size()) == 0;
}

void TransportHub::sendResponse(LinkId link, uint64_t callerId, uint64_t callId,
                                std::unique_ptr<OutgoingResponse> response) {
  std::shared_ptr<const std::vector<uint8_t>> frame;
  try {
    frame = std::make_shared<const std::vector<uint8_t>>(
        encodeFrame(FrameKind::response, callId, Oxid(), response->message.builder()));
  } catch (const std::exception& e) {
    FERRY_LOG(warn, "response not sent: " << e.what());
    return;
  }
  // Kept for a resent copy of the request, and sent where the newest copy came from.
  link = _replies->complete(callerId, callId, link, frame, Clock::now());
  sendResponseFrame(link, std::move(frame));
}

void TransportHub::sendResponseFrame(LinkId link, std::shared_ptr<const std::vector<uint8_t>> frame) {
  // The servant's thread writes the response itself when it can.
  if (sendDirect(link, *frame)) return;
  try {
    post([this, link, frame = std::move(frame)] {
      auto it = _connections.find({link.transport, link.conn});
      if (it == _connections.end()) {
        FERRY_LOG(debug, "the caller's connection closed before its response was sent");
        return;
      }
      sendFrame(*it->second, *frame);
    });
  } catch (const std::exception& e) {
    FERRY_LOG(warn, "response not sent: " << e.what());
  }
}

std::shared_ptr<Channel> TransportHub::channel(const StringBindingData& binding, Oxid oxid,
                                               MarshalContext distance) {
  return std::make_shared<orpc::RemoteChannel>(*this, binding, oxid, distance);
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
    Connection* connection = connectionFor(key, binding, &why);
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

Resolution TransportHub::resolve(const StringBindingData& binding, Oxid oxid) {
  ApartmentImpl* current = threadState().apartment;
  ApartmentImpl& home = current != nullptr ? *current : static_cast<ApartmentImpl&>(_runtime.mta());
  auto pending = std::make_shared<PendingCall>(home.shared_from_this(), callDeadline(), CausalityId());
  uint64_t callId = orpc::CallTable::nextCallId();
  capnp::MallocMessageBuilder request(16);
  request.initRoot<wire::ResolveRequest>().setOxid(oxid.value);
  std::vector<uint8_t> frame = encodeFrame(FrameKind::resolve, callId, Oxid(), request);
  std::string key = bindingText(binding);
  post([this, key, binding, callId, pending, frame = std::move(frame)]() mutable {
    Connection* connection = connectionFor(key, binding);
    if (connection == nullptr) {
      pending->fail(Errc::unavailable, "cannot connect to " + key);
      return;
    }
    connection->resolves[callId] = pending;
    sendFrame(*connection, std::move(frame));
  });
  if (!pending->done()) home.wait(*pending);
  std::unique_ptr<IncomingResponse> raw = pending->takeRaw();
  try {
    auto reply = raw->message().root<wire::ResolveReply>();
    if (reply.isError()) {
      uint16_t code = reply.getError().getCode();
      Errc errc = isKnownErrc(code) && code != 0 ? static_cast<Errc>(code) : Errc::protocolError;
      throw Error(errc, std::string(reply.getError().getMessage().cStr()));
    }
    Resolution out = readResolution(reply.getResolution());
    FERRY_REQUIRE(out.oxid == oxid, Errc::protocolError,
                  "the resolver at {} was asked for exporter {} and answered for {}", key,
                  toString(oxid), toString(out.oxid));
    return out;
  } catch (const kj::Exception& e) {
    FERRY_FAIL(Errc::protocolError,
               "the reply of the resolver at {} is not a valid Cap'n Proto message ({}); it does "
               "not follow the protocol",
               key, kjReason(e.getDescription().cStr()));
  }
}

}  // namespace ferry::detail
