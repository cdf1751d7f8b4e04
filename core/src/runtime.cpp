#include <ferry/runtime.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "admin/admin.h"
#include "channel.h"
#include "ids-impl.h"
#include "import-table.h"
#include "interface-registry.h"
#include "log.h"
#include "marshal-impl.h"
#include "message.h"
#include "pending-call.h"
#include "plugin-loader.h"
#include "runtime-impl.h"
#include "resolver/host-lookup.h"
#include "stats.h"
#include "thread-state.h"
#include "orpc/endpoint.h"
#include "transport-choice.h"
#include "orpc/bind.h"
#include "security/providers.h"
#include "transport/hub.h"

namespace ferry {

namespace detail {

namespace {

std::atomic<RuntimeImpl*> gRuntime{nullptr};

uint64_t makeProcessId() {
  return (static_cast<uint64_t>(static_cast<uint32_t>(getpid())) << 32) |
         static_cast<uint32_t>(randomNonZero64());
}

// RuntimeOptions::tuneAllocator: one block just under the largest size glibc's dynamic mmap
// threshold follows (DEFAULT_MMAP_THRESHOLD_MAX: 32 MiB on 64-bit, 512 KiB on 32-bit), which
// malloc maps and free unmaps, raising the threshold to its size and the trim threshold to twice
// that (mallopt(3)).
void raiseAllocatorThresholds() noexcept {
#ifdef __GLIBC__
  constexpr size_t kBlock = (sizeof(long) == 8 ? 32 * 1024 : 512) * size_t{1024} - 64 * 1024;
  void* block = std::malloc(kBlock);
  // Kept opaque, so that the compiler cannot drop the pair as unused.
  asm volatile("" : : "r"(block) : "memory");
  std::free(block);
#endif
}

}  // namespace

Stats& stats() noexcept {
  static Stats instance;
  return instance;
}

std::atomic<int64_t>& liveServants() noexcept { return stats().servants; }

// The message of every call that needs a runtime when there is none.
constexpr char kNoRuntime[] =
    "no ferry::Runtime is alive in this process; create one (a ferry::Runtime object that "
    "outlives the calls) before using ferry";

RuntimeImpl* tryCurrentRuntime() noexcept { return gRuntime.load(std::memory_order_acquire); }

RuntimeImpl& currentRuntime() {
  RuntimeImpl* runtime = tryCurrentRuntime();
  FERRY_REQUIRE(runtime != nullptr, Errc::notInitialized, kNoRuntime);
  return *runtime;
}

RuntimeImpl::RuntimeImpl(RuntimeOptions opts)
    : options(opts),
      hostId(readHostId("/etc/machine-id", "/proc/sys/kernel/random/boot_id")),
      processId(makeProcessId()) {
  detail::checkLogEnvironment();
  if (options.tuneAllocator) raiseAllocatorThresholds();
  // A peer that vanishes while a transport writes to it must be an error on that connection,
  // not a signal that ends the process. Only replaced if nobody installed a handler.
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
  FERRY_REQUIRE(options.mtaThreads >= 1, Errc::invalidArgument,
                "RuntimeOptions::mtaThreads is {}; it must be at least 1", options.mtaThreads);
  FERRY_REQUIRE(options.callTimeout.count() > 0, Errc::invalidArgument,
                "RuntimeOptions::callTimeout is {} ms; it must be positive",
                options.callTimeout.count());
  if (options.outOfProcess) {
    checkTransportSettings(options);
    security::checkSecureByDefault(options);
  }
  RuntimeImpl* expected = nullptr;
  FERRY_REQUIRE(gRuntime.compare_exchange_strong(expected, this), Errc::invalidArgument,
                "a ferry::Runtime already exists in this process, and a process has one at a "
                "time; use Runtime::current to reach it, or destroy it before creating another");
  try {
    _deadlines = std::make_unique<DeadlineWatch>();
    _mta = std::make_shared<MtaImpl>(*this, options.mtaThreads, options.mtaMaxThreads);
    registerApartment(_mta);
    _mta->start();
    // ferryd itself registers nowhere.
    StringBindingData ferryd = options.outOfProcess && !options.acceptRegistrations
                                   ? ferrydSetting(options)
                                   : StringBindingData{};
    _hub = std::make_unique<TransportHub>(*this);
    _providers = std::make_unique<security::Providers>(options);
    _bind = std::make_unique<orpc::BindLayer>(*_providers, *_hub);
    _endpoint = std::make_unique<orpc::Endpoint>(*this, *_bind);
    _bind->attach(*_endpoint);
    if (_hub->start(options, *_bind)) {
      _endpoint->resolver().registerWith(ferryd);
      _mta->wakeWithLoop(_hub->loopWake());
      _endpoint->resolver().announce(_mta->oxid(), _mta->remUnknownIpid());
    }
  } catch (...) {
    if (_mta) _mta->shutdown();
    if (_hub) _hub->stop();
    gRuntime.store(nullptr);
    throw;
  }
}

RuntimeImpl::~RuntimeImpl() {
  shutdown();
  gRuntime.store(nullptr, std::memory_order_release);
}

void RuntimeImpl::registerApartment(const std::shared_ptr<ApartmentImpl>& apartment) {
  std::lock_guard lock(_mutex);
  _apartments[apartment->oxid()] = apartment;
  stats().apartments.fetch_add(1, std::memory_order_relaxed);
  if (_endpoint) _endpoint->resolver().announce(apartment->oxid(), apartment->remUnknownIpid());
}

void RuntimeImpl::unregisterApartment(Oxid oxid) noexcept {
  std::lock_guard lock(_mutex);
  if (_apartments.erase(oxid) == 1) {
    stats().apartments.fetch_sub(1, std::memory_order_relaxed);
    if (_endpoint) _endpoint->resolver().withdraw(oxid);
  }
}

std::shared_ptr<ApartmentImpl> RuntimeImpl::tryFindApartment(Oxid oxid) {
  std::lock_guard lock(_mutex);
  auto it = _apartments.find(oxid);
  if (it == _apartments.end()) return nullptr;
  auto apartment = it->second.lock();
  return apartment != nullptr && !apartment->closed() ? apartment : nullptr;
}

std::vector<std::shared_ptr<ApartmentImpl>> RuntimeImpl::apartments() {
  std::vector<std::shared_ptr<ApartmentImpl>> out;
  std::lock_guard lock(_mutex);
  for (const auto& [oxid, weak] : _apartments) {
    if (auto apartment = weak.lock(); apartment != nullptr && !apartment->closed()) {
      out.push_back(std::move(apartment));
    }
  }
  return out;
}

std::shared_ptr<StaImpl> RuntimeImpl::spawnSta(std::string name) {
  auto sta = std::make_shared<StaImpl>(*this, std::move(name), StaImpl::Mode::spawned, nullptr);
  std::mutex readyMutex;
  std::condition_variable readyCv;
  bool ready = false;
  std::exception_ptr failure;
  sta->thread = std::thread([sta, &readyMutex, &readyCv, &ready, &failure] {
    stats().staThreads.fetch_add(1, std::memory_order_relaxed);
    try {
      sta->enter();
    } catch (...) {
      std::lock_guard lock(readyMutex);
      failure = std::current_exception();
      ready = true;
      readyCv.notify_one();
      stats().staThreads.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    {
      std::lock_guard lock(readyMutex);
      ready = true;
      readyCv.notify_one();
    }
    sta->runLoop();
    sta->leave();
    stats().staThreads.fetch_sub(1, std::memory_order_relaxed);
  });
  {
    std::unique_lock lock(readyMutex);
    readyCv.wait(lock, [&] { return ready; });
  }
  if (failure) {
    sta->thread.join();
    std::rethrow_exception(failure);
  }
  std::lock_guard lock(_mutex);
  _spawned.push_back(sta);
  return sta;
}

std::shared_ptr<StaImpl> RuntimeImpl::hostSta() {
  {
    std::lock_guard lock(_mutex);
    if (_hostSta) return _hostSta;
    FERRY_REQUIRE(!_shutDown, Errc::shuttingDown,
                  "the ferry::Runtime is shutting down and starts no new apartment");
  }
  auto sta = spawnSta("host");
  std::lock_guard lock(_mutex);
  if (!_hostSta) _hostSta = sta;
  return _hostSta;
}

std::vector<StringBindingData> RuntimeImpl::bindings() const {
  return _hub ? _hub->bindings() : std::vector<StringBindingData>{};
}

namespace {

// The bindings of `candidates` this process can use for `distance`, best first; only `protseq`
// when one is named (transport-choice.h).
std::vector<StringBindingData> usableBindings(const std::vector<StringBindingData>& candidates,
                                              MarshalContext distance, const std::string& protseq,
                                              const TransportHub& hub) {
  return usableBindings(candidates, distance, protseq,
                        [&](const std::string& p) -> std::optional<TransportTraits> {
                          if (!hub.hasTransport(p)) return std::nullopt;
                          const ferry_transport_v1* table =
                              PluginRegistry::instance().tryFindTransport(p);
                          if (table == nullptr) return std::nullopt;
                          return traitsOf(*table);
                        });
}

std::string describe(const std::vector<StringBindingData>& bindings) {
  std::string out;
  for (const auto& b : bindings) out += (out.empty() ? "" : ", ") + bindingText(b);
  return out.empty() ? "none" : out;
}

// Why this process, running no transport, cannot reach exporter `oxid` in another process.
[[noreturn]] void failNoTransport(Oxid oxid) {
  const PluginRegistry& plugins = PluginRegistry::instance();
  bool anyLoaded = std::any_of(plugins.loaded().begin(), plugins.loaded().end(),
                               [](const LoadedPlugin& p) { return p.kind == FERRY_PLUGIN_TRANSPORT; });
  FERRY_REQUIRE(anyLoaded, Errc::unavailable,
                "cannot reach exporter {} in another process: no transport plugin is loaded in "
                "this one ({}); set FERRY_PLUGIN_PATH to the directory that holds "
                "ferry-transport-*.so (in a build tree, run through `meson devenv -C build`), or "
                "install the plugins",
                toString(oxid), plugins.describeSearch());
  FERRY_FAIL(Errc::unavailable,
             "cannot reach exporter {} in another process: this process runs no transport; set "
             "RuntimeOptions::outOfProcess, and let RuntimeOptions::transports name loaded "
             "plugins (`ferry plugins` lists them)",
             toString(oxid));
}

}  // namespace

std::vector<StringBindingData> RuntimeImpl::resolversOf(const std::string& host,
                                                       const std::string& port) {
  std::vector<StringBindingData> candidates;
  auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(callDeadline() - Clock::now());
  for (const std::string& address : lookupHost(host, std::max(timeout, std::chrono::milliseconds(1)))) {
    for (const char* protseq : {"udp", "tcp"}) candidates.push_back({protseq, address, port});
  }
  std::vector<StringBindingData> usable = usableBindings(
      candidates, MarshalContext::differentMachine, options.preferredTransport, *_hub);
  // tcp first: a refused connection is a definite answer in one round trip, where udp cannot
  // tell a closed port from lost packets and waits out its handshake.
  std::stable_partition(usable.begin(), usable.end(),
                        [](const StringBindingData& b) { return b.protseq == "tcp"; });
  FERRY_REQUIRE(!usable.empty(), Errc::unavailable,
                "cannot reach the resolver of host {}: it listens on udp and tcp, and this process "
                "runs neither{}; load their plugins (FERRY_PLUGIN_PATH) or change "
                "RuntimeOptions::transports and RuntimeOptions::preferredTransport",
                host, options.preferredTransport.empty()
                          ? std::string()
                          : " (RuntimeOptions::preferredTransport is '" +
                                options.preferredTransport + "')");
  return usable;
}

Resolution RuntimeImpl::resolveCached(const ObjRefData& objref, MarshalContext distance) {
  ResolverCache::Origin origin{objref.oxid, objref.processId, objref.hostId, objref.bindings};
  if (std::optional<Resolution> cached = _resolutions.find(origin)) return *cached;
  std::vector<StringBindingData> tries = usableBindings(objref.bindings, distance, "", *_hub);
  std::string failures;
  for (const StringBindingData& binding : tries) {
    try {
      Resolution r = _endpoint->resolver().resolve(binding, objref.oxid);
      // The resolver speaks for the exporter the OBJREF names, or for none.
      FERRY_REQUIRE(r.processId == objref.processId && r.hostId == objref.hostId,
                    Errc::invalidObjRef,
                    "the resolver at {} places exporter {} in process {}, but the OBJREF names "
                    "process {} (or another host): the OBJREF or the resolver is not to be "
                    "trusted, so nothing is imported from it",
                    bindingText(binding), toString(objref.oxid), r.processId, objref.processId);
      _resolutions.store(origin, r);
      return r;
    } catch (const Error& e) {
      if (e.code() != Errc::unavailable) throw;  // e.g. an unknown OXID: a definite answer
      failures += "; " + bindingText(binding) + ": " + e.message();
    }
  }
  FERRY_REQUIRE(!objref.bindings.empty(), Errc::unavailable,
                "cannot reach exporter {}: its OBJREF carries no string bindings, so it can only be "
                "unmarshaled in the process that marshaled it (it was marshaled with "
                "MarshalContext::inproc, or in a process that runs no transport); marshal it with "
                "MarshalContext::local for another process of this host, or "
                "MarshalContext::differentMachine for another host",
                toString(objref.oxid));
  FERRY_FAIL(Errc::unavailable,
             "cannot reach the resolver of exporter {}: it listens on {}, of which this process "
             "can use {}{}; load the transport plugins it names (FERRY_PLUGIN_PATH), and check "
             "that the exporting process still runs",
             toString(objref.oxid), describe(objref.bindings), describe(tries), failures);
}

std::shared_ptr<ExporterLink> RuntimeImpl::makeLink(ApartmentImpl& importer,
                                                    const ObjRefData& objref,
                                                    const std::string& protseq,
                                                    SecurityLevel least) {
  if (objref.processId != processId) {
    if (_hub == nullptr || _hub->transports().empty()) failNoTransport(objref.oxid);
    MarshalContext distance =
        objref.hostId == hostId ? MarshalContext::local : MarshalContext::differentMachine;
    Resolution resolution = resolveCached(objref, distance);
    const std::string& wanted = protseq.empty() ? options.preferredTransport : protseq;
    std::vector<StringBindingData> usable =
        usableBindings(resolution.bindings, distance, wanted, *_hub);
    FERRY_REQUIRE(!usable.empty(), Errc::unavailable,
                  "no binding of exporter {} suits this process: it listens on {}, and this "
                  "process wants {}; load a transport plugin it listens on, or change "
                  "RuntimeOptions::preferredTransport (or the protseq given to setTransport)",
                  toString(objref.oxid), describe(resolution.bindings),
                  wanted.empty() ? std::string("the cheapest transport for the distance")
                                 : "'" + wanted + "'");
    // The cheapest binding that this process can open: a pipe socket of another user, a refused
    // port or an unreachable address moves on to the next one, saying why.
    std::string failures;
    for (StringBindingData binding : usable) {
      binding.level = least;
      try {
        _hub->connect(binding);
      } catch (const Error& e) {
        if (e.code() != Errc::unavailable && e.code() != Errc::deadlineExceeded) throw;
        FERRY_LOG(warn, "cannot use " << bindingText(binding) << " to reach exporter "
                                      << toString(objref.oxid) << " (" << e.message()
                                      << "); trying the next binding");
        failures += "; " + bindingText(binding) + ": " + e.message();
        continue;
      }
      FERRY_LOG(debug, "importing from " << toString(objref.oxid) << " over "
                                         << bindingText(binding) << " (" << toString(distance)
                                         << ")");
      ExporterLink::Address address{resolution.hostId, resolution.processId, resolution.bindings};
      return std::make_shared<ExporterLink>(importer, objref.oxid, std::move(address),
                                            _endpoint->channel(binding, objref.oxid, distance),
                                            resolution.remUnknown);
    }
    // The exporter may be gone or have moved: the next import resolves it again.
    _resolutions.invalidate(objref.oxid);
    FERRY_FAIL(Errc::unavailable,
               "none of the bindings of exporter {} can be opened from this process ({}); check "
               "that the exporter runs and that this user may reach it (the pipe's socket "
               "permissions, RuntimeOptions::listenAddresses on the exporter)",
               toString(objref.oxid), failures.substr(2));
  }
  FERRY_REQUIRE(protseq.empty() || protseq == "inproc", Errc::invalidArgument,
                "the object is in this process and is only reached in-process, not over '{}'; "
                "call setTransport with \"inproc\" or no transport for it",
                protseq);
  std::shared_ptr<ApartmentImpl> exporter = tryFindApartment(objref.oxid);
  FERRY_REQUIRE(exporter != nullptr, Errc::disconnected,
                "the apartment {} that exported the object has shut down, and its objects with "
                "it",
                toString(objref.oxid));
  ExporterLink::Address address{objref.hostId, objref.processId, objref.bindings};
  return std::make_shared<ExporterLink>(importer, objref.oxid, std::move(address),
                                        std::make_shared<InprocChannel>(exporter),
                                        exporter->remUnknownIpid());
}

void RuntimeImpl::registerClass(const Clsid& clsid, ThreadingModel model, ClassFactory factory) {
  FERRY_REQUIRE(!clsid.name.empty(), Errc::invalidArgument,
                "registerClass needs a class name and was given an empty one");
  FERRY_REQUIRE(factory != nullptr, Errc::invalidArgument,
                "registerClass of '{}' needs a factory and was given none", clsid.name);
  std::lock_guard lock(_mutex);
  _classes[clsid.name] = ClassEntry{model, std::move(factory)};
}

void RuntimeImpl::registerUnmarshaler(std::string name, UnmarshalerEntry entry) {
  FERRY_REQUIRE(!name.empty() && name.size() <= 255, Errc::invalidArgument,
                "registerUnmarshaler was given a class name of {} bytes; it must have 1 to 255",
                name.size());
  FERRY_REQUIRE(entry.unmarshal != nullptr, Errc::invalidArgument,
                "registerUnmarshaler of class '{}' needs an unmarshal function and was given none",
                name);
  std::lock_guard lock(_mutex);
  _unmarshalers[std::move(name)] = std::move(entry);
}

RuntimeImpl::UnmarshalerEntry RuntimeImpl::findUnmarshaler(const std::string& name) {
  std::lock_guard lock(_mutex);
  auto it = _unmarshalers.find(name);
  FERRY_REQUIRE(it != _unmarshalers.end(), Errc::classNotRegistered,
                "the custom OBJREF names unmarshaler class '{}', which is not registered in this "
                "process; call Runtime::registerUnmarshaler for it before unmarshaling",
                name);
  return it->second;
}

void RuntimeImpl::revokeClass(const Clsid& clsid) {
  std::lock_guard lock(_mutex);
  FERRY_REQUIRE(_classes.erase(clsid.name) == 1, Errc::classNotRegistered,
                "revokeClass of '{}', which is not registered (it was revoked already, or "
                "never registered)",
                clsid.name);
}

RuntimeImpl::ClassEntry RuntimeImpl::findClass(const Clsid& clsid) {
  std::lock_guard lock(_mutex);
  auto it = _classes.find(clsid.name);
  FERRY_REQUIRE(it != _classes.end(), Errc::classNotRegistered,
                "no class is registered under the name '{}'; call Runtime::registerClass for it "
                "first",
                clsid.name);
  return it->second;
}

void stopSpawnedSta(StaImpl& sta) noexcept {
  sta.stop();
  if (sta.thread.joinable()) {
    if (sta.thread.get_id() == std::this_thread::get_id()) {
      FERRY_LOG(error, "an STA cannot stop and join itself; detaching " << sta.label());
      sta.thread.detach();
      return;
    }
    sta.thread.join();
  }
}

void RuntimeImpl::shutdown() noexcept {
  std::vector<std::shared_ptr<StaImpl>> spawned;
  {
    std::lock_guard lock(_mutex);
    if (_shutDown) return;
    _shutDown = true;
    spawned.swap(_spawned);
    _hostSta.reset();
  }
  // STAs first: their releases of MTA objects still reach a running MTA.
  for (auto& sta : spawned) stopSpawnedSta(*sta);
  spawned.clear();
  {
    std::lock_guard lock(_mutex);
    for (auto& [oxid, weak] : _apartments) {
      auto apartment = weak.lock();
      if (apartment && apartment->kind() == ApartmentKind::sta) {
        FERRY_LOG(error, "Runtime destroyed while " << apartment->label()
                                                    << " (CurrentSta/AttachedSta) still lives");
      }
    }
  }
  _mta->shutdown();
  // Last: the apartments' teardown returned references through it.
  if (_hub) _hub->stop();
}

}  // namespace detail

// -----------------------------------------------------------------------------------------------
// Public API

namespace {
std::atomic<Runtime*> gPublicRuntime{nullptr};
}

Runtime::Runtime(RuntimeOptions options)
    : _impl(std::make_unique<detail::RuntimeImpl>(options)) {
  gPublicRuntime.store(this, std::memory_order_release);
  detail::admin::start(*_impl);
}

Runtime::~Runtime() {
  detail::admin::stop();
  _impl->shutdown();
  gPublicRuntime.store(nullptr, std::memory_order_release);
}

Runtime& Runtime::current() {
  Runtime* runtime = gPublicRuntime.load(std::memory_order_acquire);
  FERRY_REQUIRE(runtime != nullptr, Errc::notInitialized, detail::kNoRuntime);
  return *runtime;
}

Sta Runtime::newSta(std::string name) { return Sta(_impl->spawnSta(std::move(name))); }

CurrentSta Runtime::enterSta(std::string name) {
  if (detail::ApartmentImpl* here = detail::threadState().apartment) {
    FERRY_REQUIRE(here->kind() == ApartmentKind::sta, Errc::changedMode,
                  "this thread is in the MTA and cannot also become an STA; enter the STA from a "
                  "thread outside the MTA (or leave the joinMta() scope first)");
    auto& current = static_cast<detail::StaImpl&>(*here);
    current.nest();
    return CurrentSta(current.shared_from_this(), true);
  }
  auto sta = std::make_shared<detail::StaImpl>(*_impl, std::move(name),
                                               detail::StaImpl::Mode::current, nullptr);
  sta->enter();
  return CurrentSta(std::move(sta), false);
}

AttachedSta Runtime::attachSta(uv_loop_t* loop, std::string name) {
  FERRY_REQUIRE(loop != nullptr, Errc::invalidArgument,
                "attachSta needs the caller's uv_loop_t and was given a null pointer");
  auto sta = std::make_shared<detail::StaImpl>(*_impl, std::move(name),
                                               detail::StaImpl::Mode::attached, loop);
  sta->enter();
  return AttachedSta(std::move(sta));
}

MtaScope Runtime::joinMta() { return MtaScope(); }

Apartment Runtime::mta() const { return Apartment(_impl->mtaShared()); }

GlobalInterfaceTable& Runtime::git() noexcept { return _impl->git(); }

std::vector<PluginInfo> Runtime::plugins() {
  std::vector<PluginInfo> out;
  for (const detail::LoadedPlugin& p : detail::PluginRegistry::instance().loaded()) {
    out.push_back({p.kind == FERRY_PLUGIN_TRANSPORT ? "transport" : "security", p.name, p.path,
                   p.description});
  }
  return out;
}

std::vector<RefusedPlugin> Runtime::refusedPlugins() {
  std::vector<RefusedPlugin> out;
  for (const detail::RefusedPlugin& r : detail::PluginRegistry::instance().refused()) {
    out.push_back({r.path, r.reason});
  }
  return out;
}

std::vector<TransportCounters> Runtime::transportCounters() const {
  detail::TransportHub* hub = _impl->hub();
  return hub != nullptr ? hub->counters() : std::vector<TransportCounters>{};
}

void Runtime::setServing(bool serving, std::string reason) {
  detail::admin::setServing(serving, std::move(reason));
}

std::vector<std::string> Runtime::bindings() const {
  std::vector<std::string> out;
  for (const auto& b : _impl->bindings()) out.push_back(detail::bindingText(b));
  return out;
}

const RuntimeOptions& Runtime::options() const noexcept { return _impl->options; }

void Runtime::registerClass(Clsid clsid, ThreadingModel model, ClassFactory factory) {
  _impl->registerClass(clsid, model, std::move(factory));
}

void Runtime::revokeClass(const Clsid& clsid) { _impl->revokeClass(clsid); }

void Runtime::registerUnmarshaler(std::string unmarshalerClass, Unmarshaler unmarshal,
                                  CustomRelease release) {
  _impl->registerUnmarshaler(std::move(unmarshalerClass),
                             {std::move(unmarshal), std::move(release)});
}

void* Runtime::createInstanceErased(const Clsid& clsid, Iid iid) {
  detail::RuntimeImpl::ClassEntry entry = _impl->findClass(clsid);
  detail::ApartmentImpl& here = detail::requireCurrentApartment();
  bool callerIsSta = here.kind() == ApartmentKind::sta;
  bool direct = entry.model == ThreadingModel::both ||
                (entry.model == ThreadingModel::apartment && callerIsSta) ||
                (entry.model == ThreadingModel::free && !callerIsSta);
  if (direct) {
    Ref<Interface> object = entry.factory();
    FERRY_REQUIRE(object != nullptr, Errc::serverFault,
                  "the factory registered for class '{}' returned a null object", clsid.name);
    void* itf = object->queryInterface(iid);
    FERRY_REQUIRE(itf != nullptr, Errc::noInterface, "class '{}' does not implement {}",
                  clsid.name, detail::describeInterface(iid));
    return itf;
  }
  // The object lives in the apartment its model asks for; the caller gets a proxy.
  Apartment target = entry.model == ThreadingModel::free ? mta()
                                                         : Apartment(_impl->hostSta());
  ObjRefBytes packet = target.invoke([factory = entry.factory, name = clsid.name, iid] {
    Ref<Interface> object = factory();
    FERRY_REQUIRE(object != nullptr, Errc::serverFault,
                  "the factory registered for class '{}' returned a null object", name);
    return marshalInterface(object.get(), iid, MarshalContext::inproc, MarshalFlags::normal);
  });
  try {
    return detail::unmarshalInterfaceErased(packet, iid);
  } catch (...) {
    try {
      releaseMarshalData(packet);
    } catch (const Error&) {
      // Consumed by the failed unmarshal already.
    }
    throw;
  }
}

RuntimeStats Runtime::stats() {
  detail::Stats& s = detail::stats();
  RuntimeStats out;
#define FERRY_STATS_LOAD(name, meaning) out.name = s.name.load();
  FERRY_RUNTIME_COUNTERS(FERRY_STATS_LOAD)
#undef FERRY_STATS_LOAD
  return out;
}

CausalityId currentCausalityId() noexcept { return detail::threadState().causality; }

std::string_view toString(SecurityLevel level) noexcept {
  switch (level) {
    case SecurityLevel::none: return "none";
    case SecurityLevel::integrity: return "integrity";
    case SecurityLevel::privacy: return "privacy";
  }
  return "unknown";
}

std::optional<ClientBlanket> clientBlanket() {
  const ClientBlanket* blanket = detail::threadState().blanket;
  if (blanket == nullptr) return std::nullopt;
  return *blanket;
}

bool callCanceled() noexcept {
  const std::atomic<bool>* flag = detail::threadState().cancelFlag;
  return flag != nullptr && flag->load(std::memory_order_acquire);
}

// -----------------------------------------------------------------------------------------------
// object.h

Ref<Interface> identityOf(Interface* object) {
  FERRY_REQUIRE(object != nullptr, Errc::invalidArgument,
                "identityOf needs an object and was given a null pointer");
  return Ref<Interface>::adopt(static_cast<Interface*>(object->queryInterface(Interface::iid)));
}

namespace detail {
void throwNoInterface(Iid iid, const char* name) {
  FERRY_FAIL(Errc::noInterface, "the object does not implement {} (IID {})", name,
             toString(iid));
}
}  // namespace detail

}  // namespace ferry
