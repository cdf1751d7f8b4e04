#include "transport-hub.h"

#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include "apartment-impl.h"
#include "log.h"
#include "message.h"
#include "pending-call.h"
#include "plugin-loader.h"
#include "resolver.capnp.h"
#include "runtime-impl.h"
#include "stats.h"
#include "thread-state.h"

namespace ferry::detail {

namespace {

constexpr size_t kFrameHeader = 24;
constexpr uint8_t kMagic[4] = {'F', 'R', 'Y', '1'};
enum FrameKind : uint8_t {
  kRequest = 1,
  kResponse = 2,
  kResolve = 3,
  kResolveReply = 4,
  kRegister = 5,
  kUnregister = 6,
  kCancel = 7,
};


// Largest ORPC message accepted from a peer (16 MiB of payload, DESIGN §3).
constexpr size_t kMaxMessageBytes = 16u * 1024 * 1024;
// Connect attempts give up after this long (the call's own deadline may be shorter).
constexpr uint32_t kConnectTimeoutMs = 5000;
// Frame flags bit 0, requests only: sent before on a connection that was lost.
constexpr uint8_t kFrameFlagResent = 1;
// A call whose connection is lost is sent again at most this many times.
constexpr int kMaxResends = 2;
// The reply cache's bounds (core/schema/orpc.capnp).
constexpr size_t kMaxServedCalls = 262144;
constexpr size_t kMaxReplyCacheBytes = 64u * 1024 * 1024;
// Request.acknowledged holds at most this many ids; the rest wait for the following requests.
// A caller keeps at most kMaxAcksKept per connection (beyond, the exporter's entries are left to
// expire), so a burst of up to that many calls is acknowledged in full by the calls that follow
// it, and bursts do not fill the exporter's cache for replyRetention (8 bytes per id: at most
// 512 KiB per connection).
constexpr size_t kMaxAcksPerRequest = 64;
constexpr size_t kMaxAcksKept = 65536;

void putLe64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t getLe64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(in[i]) << (8 * i);
  return v;
}

// A frame without payload (kind 7).
std::vector<uint8_t> encodeBareFrame(uint8_t kind, uint64_t callId) {
  std::vector<uint8_t> frame(kFrameHeader);
  std::memcpy(frame.data(), kMagic, 4);
  frame[4] = kind;
  putLe64(frame.data() + 8, callId);
  return frame;
}

std::vector<uint8_t> encodeFrame(uint8_t kind, uint64_t callId, uint64_t oxid,
                                 capnp::MessageBuilder& message) {
  size_t payload = capnp::computeSerializedSizeInWords(message) * sizeof(capnp::word);
  std::vector<uint8_t> frame(kFrameHeader + payload);
  std::memcpy(frame.data(), kMagic, 4);
  frame[4] = kind;
  putLe64(frame.data() + 8, callId);
  putLe64(frame.data() + 16, oxid);
  kj::ArrayOutputStream out(kj::arrayPtr(frame.data() + kFrameHeader, payload));
  capnp::writeMessage(out, message);
  return frame;
}

std::atomic<uint64_t> gNextCallId{1};

// A served call's response, sent back on the connection it came from.
class NetworkReplySink final : public ReplySink {
public:
  NetworkReplySink(TransportHub& hub, uint32_t instance, ferry_conn_id conn, uint64_t caller,
                   uint64_t callId)
      : _hub(hub), _instance(instance), _conn(conn), _caller(caller), _callId(callId) {}

  void deliver(std::unique_ptr<OutgoingResponse> response) noexcept override {
    _hub.sendResponse(_instance, _conn, _caller, _callId, std::move(response));
  }

  void fail(Errc code, std::string message) noexcept override {
    try {
      auto response = std::make_unique<OutgoingResponse>();
      auto error = response->root.initError();
      error.setCode(static_cast<uint16_t>(code));
      if (message.size() > kMaxErrorMessage) message.resize(kMaxErrorMessage);
      error.setMessage(message);
      deliver(std::move(response));
    } catch (const std::exception& e) {
      FERRY_LOG(error, "could not send an error response: " << e.what());
    }
  }

private:
  TransportHub& _hub;
  uint32_t _instance;
  ferry_conn_id _conn;
  uint64_t _caller;
  uint64_t _callId;
};

void writeResolution(wire::Resolution::Builder out, const Resolution& r) {
  out.setOxid(r.oxid.value);
  out.initRemUnknown().setHi(r.remUnknown.hi);
  out.getRemUnknown().setLo(r.remUnknown.lo);
  auto list = out.initBindings(static_cast<unsigned>(r.bindings.size()));
  for (size_t i = 0; i < r.bindings.size(); ++i) {
    list[i].setProtseq(r.bindings[i].protseq);
    list[i].setAddress(r.bindings[i].address);
    list[i].setEndpoint(r.bindings[i].endpoint);
  }
  out.setProcessId(r.processId);
  out.setHostId(kj::arrayPtr(r.hostId.data(), r.hostId.size()));
}

// Throws protocolError for a resolution no resolver may send.
Resolution readResolution(wire::Resolution::Reader in) {
  Resolution out;
  out.oxid = Oxid(in.getOxid());
  out.remUnknown = Ipid(in.getRemUnknown().getHi(), in.getRemUnknown().getLo());
  out.processId = in.getProcessId();
  auto host = in.getHostId();
  FERRY_REQUIRE(out.oxid && out.remUnknown && host.size() == 16 && in.getBindings().size() <= 32,
                Errc::protocolError,
                "the resolver sent an OXID resolution without exporter id, RemUnknown IPID or a "
                "16-byte host id, or with more than 32 bindings; it does not follow the protocol");
  std::memcpy(out.hostId.data(), host.begin(), 16);
  for (auto b : in.getBindings()) {
    out.bindings.push_back({std::string(b.getProtseq().cStr()), std::string(b.getAddress().cStr()),
                            std::string(b.getEndpoint().cStr())});
  }
  return out;
}

}  // namespace

std::string bindingText(const StringBindingData& b) {
  return b.protseq + ":" + b.address + "[" + b.endpoint + "]";
}

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
  if (!options.acceptRegistrations) {
    _resolver = resolverSetting(options);
    _resolverKey = _resolver.protseq.empty() ? "" : bindingText(_resolver);
  }
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
  FERRY_UV(uv_timer_init(&_loop, &_expiry));
  _expiry.data = this;
  FERRY_UV(uv_timer_start(&_expiry, [](uv_timer_t* t) {
    static_cast<TransportHub*>(t->data)->expireServed();
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
      int rc = createTransport(*p, PluginRegistry::host(), &_loop, &instance->events, options,
                               &instance->transport);
      if (rc < 0) continue;
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

  if (!_resolver.protseq.empty()) {
    FERRY_LOG(info, "registering apartments with ferryd at " << _resolverKey);
  }
}

StringBindingData TransportHub::defaultResolver() { return {"pipe", "/run/ferry", "ferryd"}; }

StringBindingData TransportHub::resolverSetting(const RuntimeOptions& options) {
  std::string setting = "RuntimeOptions::resolver";
  std::string text = options.resolver;
  if (const char* env = std::getenv("FERRY_RESOLVER")) {
    setting = "FERRY_RESOLVER";
    text = env;
  }
  if (text.empty() || text == "none") return {};
  if (text == "auto") {
    StringBindingData d = defaultResolver();
    return access((d.address + "/" + d.endpoint).c_str(), F_OK) == 0 ? d : StringBindingData{};
  }
  // "protseq:address[endpoint]"
  size_t colon = text.find(':');
  size_t open = text.rfind('[');
  if (colon == std::string::npos || open == std::string::npos || text.back() != ']' ||
      open < colon || open + 2 == text.size()) {
    FERRY_FAIL(Errc::invalidArgument,
               "{} is '{}', which is not a string binding: name ferryd's pipe like "
               "pipe:/run/ferry[ferryd], or write auto (that pipe when it exists) or none",
               setting, text);
  }
  StringBindingData binding{text.substr(0, colon), text.substr(colon + 1, open - colon - 1),
                            text.substr(open + 1, text.size() - open - 2)};
  if (binding.protseq != "pipe" || binding.address.empty() || binding.address[0] != '/') {
    FERRY_FAIL(Errc::invalidArgument,
               "{} is '{}', but ferryd takes registrations over its pipe only: name its socket's "
               "directory and name, like pipe:/run/ferry[ferryd], or write auto or none",
               setting, text);
  }
  return binding;
}

namespace {

std::vector<uint8_t> registrationFrame(const Resolution& resolution) {
  capnp::MallocMessageBuilder message(256);
  writeResolution(message.initRoot<wire::Registration>().initResolution(), resolution);
  return encodeFrame(kRegister, 0, 0, message);
}

std::vector<uint8_t> withdrawalFrame(Oxid oxid) {
  capnp::MallocMessageBuilder message(16);
  message.initRoot<wire::ResolveRequest>().setOxid(oxid.value);
  return encodeFrame(kUnregister, 0, 0, message);
}

constexpr uint64_t kReregisterFirstMs = 1000;
constexpr uint64_t kReregisterMaxMs = 30'000;

}  // namespace

void TransportHub::announce(Oxid oxid, Ipid remUnknown) {
  if (_resolver.protseq.empty() || !_started) return;
  try {
    post([this, oxid, remUnknown] { tellResolver(oxid, &remUnknown); });
  } catch (const Error& e) {
    FERRY_LOG(debug, "not told to ferryd: " << e.what());
  }
}

void TransportHub::withdraw(Oxid oxid) {
  if (_resolver.protseq.empty() || !_started) return;
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
    _announced[oxid] = *remUnknown;
  } else if (_announced.erase(oxid) == 0) {
    return;
  }
  // While ferryd is unreachable the retry registers what is announced by then.
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&_reregister))) return;
  auto it = _byKey.find(_resolverKey);
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
  std::string path = _resolver.address + "/" + _resolver.endpoint;
  if (access(path.c_str(), F_OK) != 0) {
    return resolverLost("its socket " + path + " does not exist: " + std::strerror(errno));
  }
  Connection* connection = connectionFor(_resolverKey, _resolver);
  if (connection == nullptr) return resolverLost("the pipe transport cannot connect to it");
  for (auto& [oxid, ipid] : _announced) {
    sendFrame(*connection, registrationFrame(localResolution(oxid, ipid)));
  }
}

void TransportHub::resolverLost(const std::string& why) {
  {
    std::shared_lock gate(_directGate);
    if (!_directAllowed) return;  // stopping
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&_reregister))) return;
  uint64_t delay = _reregisterDelayMs;
  _reregisterDelayMs = std::min(delay * 2, kReregisterMaxMs);
  if (!_resolverDown) {
    _resolverDown = true;
    FERRY_LOG(warn, "ferryd at " << _resolverKey << " is not reachable (" << why
                                 << "); this process answers resolve requests for its own "
                                    "apartments and registers them with ferryd when it is back");
  } else {
    FERRY_LOG(debug, "ferryd at " << _resolverKey << " is still not reachable (" << why
                                  << "); next attempt in " << delay << " ms");
  }
  FERRY_UV(uv_timer_start(&_reregister, [](uv_timer_t* t) {
    auto* hub = static_cast<TransportHub*>(t->data);
    guarded("reregister", [&] { hub->connectResolver(); });
  }, delay, 0));
}

bool TransportHub::isResolverConnection(const Connection& connection) const {
  return connection.outbound && !_resolverKey.empty() && connection.key == _resolverKey;
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
  {
    std::lock_guard lock(_callsMutex);
    stats().replyCacheEntries.fetch_sub(static_cast<int64_t>(_servedCount), std::memory_order_relaxed);
    _callers.clear();
    _servedCount = 0;
    _replyBytes = 0;
    _acks.clear();
  }
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

void TransportHub::sendFrame(Connection& connection, std::vector<uint8_t> frame) {
  uint64_t callId = getLe64(frame.data() + 8);
  if (!connection.open) {
    connection.queued.emplace_back(callId, std::move(frame));
    return;
  }
  const ferry_transport_v1* table = connection.instance->table;
  int rc = table->send(connection.instance->transport, connection.id, frame.data(), frame.size());
  if (rc < 0) {
    std::string why = "send on " + connection.key + " failed: " + table->strerror(rc);
    std::optional<CallEntry> entry;
    {
      std::lock_guard lock(_callsMutex);
      auto it = _calls.find(callId);
      if (it != _calls.end() && it->second.instance == connection.instance->index &&
          it->second.conn == connection.id) {
        entry = std::move(it->second);
        _calls.erase(it);
      }
    }
    if (entry) {
      // A copy sent before may have run.
      entry->sink->fail(entry->resends > 0 ? Errc::outcomeUnknown : Errc::unavailable, why);
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
    bool resolver = isResolverConnection(connection);
    _byKey.erase(connection.key);
    _connections.erase(it);
    if (resolver) resolverLost(why);
    return;
  }
  connection.open = true;
  if (isResolverConnection(connection)) {
    _reregisterDelayMs = kReregisterFirstMs;
    if (_resolverDown) {
      _resolverDown = false;
      FERRY_LOG(info, "ferryd at " << _resolverKey << " is back; registered " << _announced.size()
                                   << " apartments with it again");
    }
  }
  {
    std::lock_guard lock(_callsMutex);
    _openByKey[connection.key] = {instance.index, conn};
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
  bool resolver = isResolverConnection(connection);
  if (!connection.key.empty()) _byKey.erase(connection.key);
  _connections.erase(it);
  if (resolver) resolverLost("it closed the connection");
  if (!resend.empty()) resendCalls(std::move(resend), why);
}

std::vector<std::pair<uint64_t, TransportHub::CallEntry>> TransportHub::failConnection(
    Connection& connection, Errc code, const std::string& why, bool lost) {
  // ferryd forgets what a closed connection registered.
  for (auto it = _registered.begin(); it != _registered.end();) {
    it = it->second.connection == &connection ? _registered.erase(it) : std::next(it);
  }
  uint32_t index = connection.instance->index;
  std::vector<std::pair<uint64_t, CallEntry>> resend;
  {
    std::lock_guard lock(_callsMutex);
    if (!connection.key.empty()) {
      auto open = _openByKey.find(connection.key);
      if (open != _openByKey.end() && open->second.second == connection.id) _openByKey.erase(open);
    }
    // The calls that went out on it and may still be sent again.
    if (code == Errc::outcomeUnknown && connection.outbound) {
      for (auto it = _calls.begin(); it != _calls.end();) {
        CallEntry& e = it->second;
        if (e.instance == index && e.conn == connection.id && e.frame != nullptr &&
            e.resends < kMaxResends) {
          resend.emplace_back(it->first, std::move(e));
          it = _calls.erase(it);
        } else {
          ++it;
        }
      }
    }
    // The calls it brought. A clean close means the caller went away: what still runs is
    // canceled (nobody waits for it) and nothing is kept. A lost connection leaves them to
    // finish for the caller's resent copies.
    if (!lost && connection.caller != 0) {
      auto caller = _callers.find(connection.caller);
      if (caller != _callers.end()) {
        auto& calls = caller->second.calls;
        for (auto it = calls.begin(); it != calls.end();) {
          if (it->second.instance == index && it->second.conn == connection.id) {
            it->second.canceled->store(true, std::memory_order_release);
            auto next = std::next(it);
            forgetServed(it, caller->second);
            it = next;
          } else {
            ++it;
          }
        }
      }
    }
  }
  failCallsOf(index, connection.id, code, why);
  auto resolves = std::move(connection.resolves);
  connection.resolves.clear();
  Errc unreached = code == Errc::outcomeUnknown ? Errc::unavailable : code;
  for (auto& [id, pending] : resolves) pending->fail(unreached, why);
  for (auto& waiter : std::exchange(connection.openWaiters, {})) waiter->fail(unreached, why);
  // Frames never sent: their calls were failed or are in `resend`.
  connection.queued.clear();
  return resend;
}

void TransportHub::resendCalls(std::vector<std::pair<uint64_t, CallEntry>> calls,
                               const std::string& why) {
  bool stopping;
  {
    std::shared_lock gate(_directGate);
    stopping = !_directAllowed;  // stop() began: the instances are going, no new connections
  }
  for (auto& [callId, entry] : calls) {
    auto* pending = dynamic_cast<PendingCall*>(entry.sink.get());
    if (pending != nullptr && pending->done()) continue;  // canceled or past its deadline
    if (stopping) {
      entry.sink->fail(Errc::outcomeUnknown, why + "; the runtime is shutting down");
      continue;
    }
    Connection* connection = connectionFor(entry.key, entry.binding);
    if (connection == nullptr) {
      entry.sink->fail(Errc::outcomeUnknown, why + "; cannot reconnect to " + entry.key);
      continue;
    }
    ++entry.resends;
    (*entry.frame)[5] |= kFrameFlagResent;
    stats().callsResent.fetch_add(1, std::memory_order_relaxed);
    FERRY_LOG(debug, "sending call " << callId << " again on a new connection to " << entry.key
                                     << " (" << why << ")");
    entry.instance = connection->instance->index;
    entry.conn = connection->id;
    std::vector<uint8_t> frame = *entry.frame;
    uint32_t index = entry.instance;
    ferry_conn_id id = entry.conn;
    if (pending != nullptr) {
      pending->setCancelHook([this, index, id, callId = callId] { sendCancel(index, id, callId); });
    }
    registerCall(callId, std::move(entry));
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
  // The length first: every byte of the header is read only once the message holds a header.
  if (size < kFrameHeader) {
    return protocolError(instance, conn,
                         "a " + std::to_string(size) + "-byte message is shorter than a frame header");
  }
  uint8_t allowedFlags = data[4] == kRequest ? kFrameFlagResent : 0;
  if (std::memcmp(data, kMagic, 4) != 0 || (data[5] & ~allowedFlags) != 0 || data[6] != 0 ||
      data[7] != 0) {
    return protocolError(instance, conn, "bad frame header");
  }
  size_t payload = size - kFrameHeader;
  if (data[4] == kCancel) {
    if (payload != 0) return protocolError(instance, conn, "a cancel frame carries a payload");
    std::lock_guard lock(_callsMutex);
    auto caller = _callers.find(connection.caller);
    if (caller == _callers.end()) return;
    auto served = caller->second.calls.find(getLe64(data + 8));
    // Only the connection the response goes to may cancel.
    if (served != caller->second.calls.end() && served->second.instance == instance.index &&
        served->second.conn == conn) {
      served->second.canceled->store(true, std::memory_order_release);
    }
    return;
  }
  if (payload == 0 || payload % sizeof(capnp::word) != 0 || payload > kMaxMessageBytes + 4096) {
    return protocolError(instance, conn, "bad payload length " + std::to_string(payload));
  }
  uint8_t kind = data[4];
  uint64_t callId = getLe64(data + 8);
  Oxid oxid(getLe64(data + 16));
  // Aligned words for the reader. The traversal limit is linear in the payload, so a message
  // cannot make the reader do much more work than its size (capnp counts every pointer followed,
  // and the call path reads the header fields several times).
  auto words = kj::heapArray<capnp::word>(payload / sizeof(capnp::word));
  std::memcpy(words.begin(), data + kFrameHeader, payload);
  capnp::ReaderOptions options;
  options.traversalLimitInWords = words.size() * 64 + 8192;
  options.nestingLimit = 64;
  std::optional<OrpcMessage> message;
  try {
    message.emplace(kj::mv(words), options);
  } catch (const kj::Exception& e) {
    return protocolError(instance, conn,
                         "bad message: " + std::string(kjReason(e.getDescription().cStr())));
  }

  switch (kind) {
    case kRequest:
      return serveRequest(instance, connection, callId, oxid, (data[5] & kFrameFlagResent) != 0,
                          std::move(*message));
    case kResolve:
      return serveResolve(connection, callId, std::move(*message));
    case kResponse: {
      std::shared_ptr<ReplySink> sink = takeCall(callId, instance.index, conn, true);
      if (sink == nullptr) {
        FERRY_LOG(debug, "response for an unknown call " << callId << " dropped");
        return;
      }
      auto* pending = dynamic_cast<PendingCall*>(sink.get());
      FERRY_ASSERT(pending != nullptr);
      pending->deliverReceived(std::make_unique<IncomingResponse>(std::move(*message)));
      return;
    }
    case kRegister:
    case kUnregister:
      if (!_runtime.options.acceptRegistrations || instance.name != "pipe") {
        return protocolError(instance, conn, "registrations are only taken by ferryd, over the pipe");
      }
      return acceptRegistration(connection, std::move(*message), kind == kRegister);
    case kResolveReply: {
      auto r = connection.resolves.find(callId);
      if (r == connection.resolves.end()) return;
      auto pending = std::move(r->second);
      connection.resolves.erase(r);
      pending->deliverReceived(std::make_unique<IncomingResponse>(std::move(*message)));
      return;
    }
    default:
      return protocolError(instance, conn, "unknown frame kind " + std::to_string(kind));
  }
}

// ---- serving -----------------------------------------------------------------------------------

void TransportHub::serveRequest(Instance& instance, Connection& connection, uint64_t callId,
                                Oxid oxid, bool resent, OrpcMessage message) {
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
      if (list.size() > kMaxAcksPerRequest) {
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
  std::shared_ptr<ReplySink> replyTo;
  if (!oneway) {
    replyTo = std::make_shared<NetworkReplySink>(*this, instance.index, connection.id, callerId, callId);
  }

  // The reply cache: a call that arrived before never runs again.
  std::shared_ptr<std::atomic<bool>> canceled;
  if (!oneway) {
    std::shared_ptr<const std::vector<uint8_t>> cachedReply;
    std::optional<std::pair<Errc, std::string>> refuse;
    {
      std::lock_guard lock(_callsMutex);
      Caller& caller = _callers[callerId];
      caller.lastSeen = Clock::now();
      // What the caller acknowledged goes.
      for (uint64_t id : acknowledged) {
        auto it = caller.calls.find(id);
        if (it != caller.calls.end() && it->second.done) forgetServed(it, caller);
      }
      auto it = caller.calls.find(callId);
      if (it != caller.calls.end()) {
        stats().duplicateRequests.fetch_add(1, std::memory_order_relaxed);
        // The response goes where the newest copy came from.
        it->second.instance = instance.index;
        it->second.conn = connection.id;
        if (!it->second.done) {
          FERRY_LOG(debug, "call " << callId << " arrived again while it runs");
          return;
        }
        if (it->second.reply == nullptr) {
          refuse.emplace(Errc::outcomeUnknown, "call " + std::to_string(callId) +
                                                   " ran, but its response was too large to keep");
        } else {
          cachedReply = it->second.reply;
        }
      } else if (callId <= caller.forgotten) {
        refuse.emplace(Errc::outcomeUnknown,
                       "call " + std::to_string(callId) +
                           " may have run: the exporter no longer remembers its response");
      } else if (_servedCount >= kMaxServedCalls) {
        refuse.emplace(Errc::retryLater, "the exporter's reply cache is full");
      } else if (caller.calls.size() >= _runtime.options.replyCachePerCaller) {
        refuse.emplace(Errc::retryLater,
                       "the exporter holds " + std::to_string(caller.calls.size()) +
                           " calls of this caller (running, or answered and not acknowledged)");
      } else {
        canceled = std::make_shared<std::atomic<bool>>(false);
        ServedCall served;
        served.instance = instance.index;
        served.conn = connection.id;
        served.canceled = canceled;
        caller.calls.emplace(callId, std::move(served));
        ++_servedCount;
        stats().replyCacheEntries.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (cachedReply != nullptr) {
      FERRY_LOG(debug, "call " << callId << " arrived again; its response is sent again");
      return sendResponseFrame(instance.index, connection.id, std::move(cachedReply));
    }
    if (refuse) {
      // Not through replyTo: that would record the refusal as the call's response.
      auto response = std::make_unique<OutgoingResponse>();
      auto error = response->root.initError();
      error.setCode(static_cast<uint16_t>(refuse->first));
      error.setMessage(refuse->second);
      return sendResponseFrame(
          instance.index, connection.id,
          std::make_shared<const std::vector<uint8_t>>(
              encodeFrame(kResponse, callId, 0, response->message.builder())));
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

void TransportHub::forgetServed(std::map<uint64_t, ServedCall>::iterator it, Caller& caller) {
  if (it->second.reply != nullptr) _replyBytes -= it->second.reply->size();
  caller.calls.erase(it);
  --_servedCount;
  stats().replyCacheEntries.fetch_sub(1, std::memory_order_relaxed);
}

void TransportHub::expireServed() noexcept {
  Clock::time_point now = Clock::now();
  std::lock_guard lock(_callsMutex);
  for (auto c = _callers.begin(); c != _callers.end();) {
    Caller& caller = c->second;
    for (auto it = caller.calls.begin(); it != caller.calls.end();) {
      auto next = std::next(it);
      if (it->second.done && now - it->second.doneAt > _runtime.options.replyRetention) {
        caller.forgotten = std::max(caller.forgotten, it->first);
        forgetServed(it, caller);
      }
      it = next;
    }
    // The forgotten mark outlives the entries by as long again.
    bool idle = caller.calls.empty() && now - caller.lastSeen > 2 * _runtime.options.replyRetention;
    c = idle ? _callers.erase(c) : std::next(c);
  }
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
  auto it = _registered.find(oxid);
  if (it != _registered.end()) {
    Registered& owner = it->second;
    bool sameProcess = owner.connection == &connection ||
                       (connection.hasCredentials && owner.pid == connection.pid &&
                        owner.uid == connection.uid);
    if (!sameProcess) {
      stats().registrationsRefused.fetch_add(1, std::memory_order_relaxed);
      FERRY_LOG(warn, "ferryd: refused to " << (add ? "replace" : "withdraw")
                          << " the registration of OXID " << toString(oxid) << " (pid "
                          << owner.pid << ", uid " << owner.uid << ") for pid " << connection.pid
                          << ", uid " << connection.uid
                          << ": only the registering process may change it");
      return;
    }
    if (!add) {
      _registered.erase(it);
      return;
    }
  } else if (!add) {
    return;
  }
  FERRY_LOG(debug, "ferryd: registered " << toString(oxid) << " for pid " << connection.pid);
  _registered[oxid] = Registered{std::move(resolution), &connection, connection.uid, connection.pid};
}

void TransportHub::serveResolve(Connection& connection, uint64_t callId, OrpcMessage message) {
  capnp::MallocMessageBuilder reply(128);
  auto root = reply.initRoot<wire::ResolveReply>();
  try {
    Oxid oxid(message.root<wire::ResolveRequest>().getOxid());
    std::shared_ptr<ApartmentImpl> apartment = oxid ? _runtime.tryFindApartment(oxid) : nullptr;
    auto registered = _registered.find(oxid);
    if (apartment != nullptr) {
      writeResolution(root.initResolution(), localResolution(oxid, apartment->remUnknownIpid()));
    } else if (registered != _registered.end()) {
      writeResolution(root.initResolution(), registered->second.resolution);
    } else {
      auto error = root.initError();
      error.setCode(static_cast<uint16_t>(Errc::objectNotRegistered));
      error.setMessage("unknown OXID " + toString(oxid) + ": no such apartment in this process");
    }
  } catch (const kj::Exception& e) {
    return protocolError(*connection.instance, connection.id,
                         "bad resolve request: " + std::string(kjReason(e.getDescription().cStr())));
  }
  sendFrame(connection, encodeFrame(kResolveReply, callId, 0, reply));
}

// ---- client side ------------------------------------------------------------------------------

void TransportHub::sendRequest(const std::string& key, const StringBindingData& binding, Oxid oxid,
                               std::unique_ptr<OutgoingRequest> request, Deadline,
                               std::shared_ptr<ReplySink> replyTo) {
  uint64_t callId = replyTo ? gNextCallId.fetch_add(1, std::memory_order_relaxed) : 0;
  // The fast path: the connection is open, the caller writes the frame itself.
  std::optional<std::pair<uint32_t, ferry_conn_id>> open;
  std::vector<uint64_t> acks;
  {
    std::lock_guard lock(_callsMutex);
    auto it = _openByKey.find(key);
    if (it != _openByKey.end()) {
      open = it->second;
      // The responses received on this connection since its previous request.
      if (replyTo) {
        auto received = _acks.find(it->second);
        if (received != _acks.end() && !received->second.empty()) {
          auto& ids = received->second;
          size_t n = std::min<size_t>(ids.size(), kMaxAcksPerRequest);
          acks.assign(ids.end() - static_cast<ptrdiff_t>(n), ids.end());
          ids.resize(ids.size() - n);
        }
      }
    }
  }
  auto frame = std::make_shared<std::vector<uint8_t>>();
  try {
    if (replyTo) {
      request->root.setCaller(_runtime.processId);
      if (!acks.empty()) {
        auto list = request->root.initAcknowledged(static_cast<unsigned>(acks.size()));
        for (unsigned i = 0; i < acks.size(); ++i) list.set(i, acks[i]);
      }
    }
    *frame = encodeFrame(kRequest, callId, oxid.value, request->message.builder());
  } catch (const std::exception& e) {
    if (replyTo) replyTo->fail(Errc::internal, e.what());
    return;
  }
  if (frame->size() > kMaxMessageBytes + kFrameHeader) {
    if (replyTo) {
      replyTo->fail(Errc::invalidArgument,
                    "the request has " + std::to_string(frame->size() - kFrameHeader) +
                        " bytes, more than the 16 MiB a message may carry; pass large data in "
                        "several calls");
    }
    return;
  }
  // By value: also used on the loop, after this function returned.
  auto entryFor = [replyTo, frame, key, binding](uint32_t instance, ferry_conn_id conn) {
    CallEntry entry;
    entry.sink = replyTo;
    entry.instance = instance;
    entry.conn = conn;
    entry.frame = frame;
    entry.key = key;
    entry.binding = binding;
    return entry;
  };
  if (open) {
    if (replyTo) {
      registerCall(callId, entryFor(open->first, open->second));
      if (auto* pending = dynamic_cast<PendingCall*>(replyTo.get())) {
        pending->setCancelHook([this, instance = open->first, conn = open->second, callId] {
          sendCancel(instance, conn, callId);
        });
      }
    }
    if (sendDirect(open->first, open->second, *frame)) return;
    // Not written (closing, or no direct path): the loop connects if needed and sends.
    if (replyTo) takeCall(callId, open->first, open->second);
  }
  try {
    post([this, key, binding, callId, replyTo, frame, entryFor]() mutable {
      Connection* connection = connectionFor(key, binding);
      if (connection == nullptr) {
        if (replyTo) replyTo->fail(Errc::unavailable, "cannot connect to " + key);
        return;
      }
      if (replyTo) {
        uint32_t index = connection->instance->index;
        ferry_conn_id id = connection->id;
        registerCall(callId, entryFor(index, id));
        if (auto* pending = dynamic_cast<PendingCall*>(replyTo.get())) {
          pending->setCancelHook([this, index, id, callId] { sendCancel(index, id, callId); });
        }
      }
      sendFrame(*connection, *frame);
    });
  } catch (const Error& e) {
    if (replyTo) replyTo->fail(e.code(), e.message());
  }
}

void TransportHub::sendCancel(uint32_t instance, ferry_conn_id conn, uint64_t callId) {
  std::vector<uint8_t> frame = encodeBareFrame(kCancel, callId);
  if (sendDirect(instance, conn, frame)) return;
  try {
    post([this, instance, conn, frame = std::move(frame)]() mutable {
      auto it = _connections.find({instance, conn});
      if (it != _connections.end()) sendFrame(*it->second, std::move(frame));
    });
  } catch (const Error& e) {
    FERRY_LOG(debug, "cancel not sent: " << e.what());
  }
}

void TransportHub::registerCall(uint64_t callId, CallEntry entry) {
  std::lock_guard lock(_callsMutex);
  _calls[callId] = std::move(entry);
}

std::shared_ptr<ReplySink> TransportHub::takeCall(uint64_t callId, uint32_t instance,
                                                  ferry_conn_id conn, bool answered) {
  std::lock_guard lock(_callsMutex);
  auto it = _calls.find(callId);
  // A response counts only on the connection its request went out on.
  if (it == _calls.end() || it->second.instance != instance || it->second.conn != conn) {
    return nullptr;
  }
  std::shared_ptr<ReplySink> sink = std::move(it->second.sink);
  _calls.erase(it);
  if (answered) {
    auto& acks = _acks[{instance, conn}];
    if (acks.size() < kMaxAcksKept) acks.push_back(callId);
  }
  return sink;
}

void TransportHub::failCallsOf(uint32_t instance, ferry_conn_id conn, Errc code,
                               const std::string& why) {
  std::vector<std::pair<std::shared_ptr<ReplySink>, Errc>> failed;
  {
    std::lock_guard lock(_callsMutex);
    for (auto it = _calls.begin(); it != _calls.end();) {
      if (it->second.instance == instance && it->second.conn == conn) {
        // A call sent before on a lost connection may have run, whatever became of this copy.
        Errc c = it->second.resends > 0 && code == Errc::unavailable ? Errc::outcomeUnknown : code;
        failed.emplace_back(std::move(it->second.sink), c);
        it = _calls.erase(it);
      } else {
        ++it;
      }
    }
    _acks.erase({instance, conn});
  }
  for (auto& [sink, c] : failed) sink->fail(c, why);
}

bool TransportHub::sendDirect(uint32_t instance, ferry_conn_id conn,
                              const std::vector<uint8_t>& frame) {
  std::shared_lock gate(_directGate);
  if (!_directAllowed || instance >= _instances.size()) return false;
  Instance& i = *_instances[instance];
  if (i.table->struct_size < offsetof(ferry_transport_v1, send_any_thread) + sizeof(void*) ||
      i.table->send_any_thread == nullptr) {
    return false;
  }
  return i.table->send_any_thread(i.transport, conn, frame.data(), frame.size()) == 0;
}

void TransportHub::sendResponse(uint32_t instance, ferry_conn_id conn, uint64_t callerId,
                                uint64_t callId, std::unique_ptr<OutgoingResponse> response) {
  std::shared_ptr<const std::vector<uint8_t>> frame;
  try {
    frame = std::make_shared<const std::vector<uint8_t>>(
        encodeFrame(kResponse, callId, 0, response->message.builder()));
  } catch (const std::exception& e) {
    FERRY_LOG(warn, "response not sent: " << e.what());
    return;
  }
  {
    // Kept for a resent copy of the request, and sent where the newest copy came from.
    std::lock_guard lock(_callsMutex);
    auto caller = _callers.find(callerId);
    if (caller != _callers.end()) {
      auto it = caller->second.calls.find(callId);
      if (it != caller->second.calls.end() && !it->second.done) {
        it->second.done = true;
        it->second.doneAt = Clock::now();
        if (_replyBytes + frame->size() <= kMaxReplyCacheBytes) {
          it->second.reply = frame;
          _replyBytes += frame->size();
        }
        instance = it->second.instance;
        conn = it->second.conn;
      }
    }
  }
  sendResponseFrame(instance, conn, std::move(frame));
}

void TransportHub::sendResponseFrame(uint32_t instance, ferry_conn_id conn,
                                     std::shared_ptr<const std::vector<uint8_t>> frame) {
  // The servant's thread writes the response itself when it can.
  if (sendDirect(instance, conn, *frame)) return;
  try {
    post([this, instance, conn, frame = std::move(frame)] {
      auto it = _connections.find({instance, conn});
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
  return std::make_shared<RemoteChannel>(*this, binding, oxid, distance);
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
  uint64_t callId = gNextCallId.fetch_add(1, std::memory_order_relaxed);
  capnp::MallocMessageBuilder request(16);
  request.initRoot<wire::ResolveRequest>().setOxid(oxid.value);
  std::vector<uint8_t> frame = encodeFrame(kResolve, callId, 0, request);
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

// ---- RemoteChannel -----------------------------------------------------------------------------

RemoteChannel::RemoteChannel(TransportHub& hub, StringBindingData binding, Oxid oxid,
                             MarshalContext distance)
    : _hub(hub), _binding(std::move(binding)), _key(bindingText(_binding)), _oxid(oxid),
      _distance(distance) {}

void RemoteChannel::send(std::unique_ptr<OutgoingRequest> request, Deadline deadline,
                         std::shared_ptr<ReplySink> replyTo) noexcept {
  if (auto* pending = dynamic_cast<PendingCall*>(replyTo.get())) pending->wakeWith(_hub.loopWake());
  _hub.sendRequest(_key, _binding, _oxid, std::move(request), deadline, std::move(replyTo));
}

}  // namespace ferry::detail
