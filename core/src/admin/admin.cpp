#include "admin.h"

#include <cxxabi.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <memory>
#include <atomic>
#include <mutex>
#include <unordered_set>

#include <capnp/schema.capnp.h>
#include <capnp/serialize.h>

#include <ferry/error.h>
#include <ferry/object.h>

#include "../apartment-impl.h"
#include "../interface-registry.h"
#include "../log.h"
#include "../objref.h"
#include "../orpc/endpoint.h"
#include "../plugin-loader.h"
#include "../runtime-impl.h"
#include "../stats.h"
#include "../thread-state.h"
#include "../transport/hub.h"
#include "admin.ferry.h"
#include "method-stats.h"

namespace ferry::detail::admin {

namespace {

struct Health {
  std::mutex mutex;
  bool serving = true;
  std::string reason;
};

Health& healthState() {
  static Health h;
  return h;
}

// The file start() wrote, removed by stop().
struct Published {
  std::mutex mutex;
  std::string path;
};

Published& published() {
  static Published p;
  return p;
}

std::string demangle(const char* mangled) {
  if (mangled == nullptr) return "";
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

std::string processName() {
  std::ifstream in("/proc/self/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

void setInterfaceName(wire::InterfaceName::Builder out, Iid iid) {
  out.setIid(iid.value);
  const InterfaceInfo* info = tryFindInterface(iid);
  out.setName(info != nullptr ? info->name : "");
}

// The name of method `method` of `iid` from the schema compiled in, or "".
std::string methodName(Iid iid, uint16_t method) {
  const InterfaceInfo* info = tryFindInterface(iid);
  if (info == nullptr || info->schema == nullptr) return "";
  auto node = capnp::readMessageUnchecked<capnp::schema::Node>(info->schema->encodedNode);
  if (!node.isInterface()) return "";
  auto methods = node.getInterface().getMethods();
  return method < methods.size() ? std::string(methods[method].getName().cStr()) : "";
}

void describeApartment(ApartmentImpl& apartment, wire::Apartment::Builder out) {
  out.setKind(std::string(toString(apartment.kind())));
  out.setName(apartment.name());
  out.setOxid(apartment.oxid().value);
  out.setThreads(apartment.kind() == ApartmentKind::sta
                     ? 1
                     : static_cast<uint32_t>(static_cast<MtaImpl&>(apartment).threadCount()));
  out.setQueueDepth(static_cast<uint32_t>(apartment.queueDepth()));

  std::vector<ExportedObjectView> objects = apartment.exports().view();
  auto objectsOut = out.initObjects(static_cast<unsigned>(objects.size()));
  for (unsigned i = 0; i < objects.size(); ++i) {
    const ExportedObjectView& v = objects[i];
    auto o = objectsOut[i];
    o.setOid(v.oid.value);
    o.setClassName(demangle(v.typeName));
    auto interfaces = o.initInterfaces(static_cast<unsigned>(v.interfaces.size()));
    for (unsigned k = 0; k < v.interfaces.size(); ++k) setInterfaceName(interfaces[k], v.interfaces[k]);
    o.setStrongRefs(v.strongRefs);
    o.setWeakEntries(v.weakEntries);
    o.setTransitRefs(v.transitRefs);
    o.setTableEntries(v.packets);
    o.setNoPing(v.noPing);
    auto clients = o.initClients(static_cast<unsigned>(v.clients.size()));
    for (unsigned k = 0; k < v.clients.size(); ++k) {
      clients[k].setProcess(v.clients[k].first.process);
      clients[k].setReferences(v.clients[k].second);
    }
  }

  std::vector<ImportedObjectView> proxies = apartment.imports().view();
  auto proxiesOut = out.initProxies(static_cast<unsigned>(proxies.size()));
  for (unsigned i = 0; i < proxies.size(); ++i) {
    const ImportedObjectView& v = proxies[i];
    auto p = proxiesOut[i];
    p.setOxid(v.oxid.value);
    p.setOid(v.oid.value);
    auto interfaces = p.initInterfaces(static_cast<unsigned>(v.interfaces.size()));
    uint32_t refs = 0;
    for (unsigned k = 0; k < v.interfaces.size(); ++k) {
      setInterfaceName(interfaces[k], v.interfaces[k].first);
      refs += v.interfaces[k].second;
    }
    p.setPublicRefs(refs);
    p.setDisconnected(v.disconnected);
  }
}

// An open link as the endpoint and the hub know it.
struct LinkRow {
  orpc::Endpoint::LinkView view;
  TransportHub::LinkFigures figures;
};

// The endpoint's open links with the hub's figures, read on the network thread (bounded: 5
// seconds).
std::vector<LinkRow> linksOf(RuntimeImpl& runtime) {
  TransportHub* hub = runtime.hub();
  orpc::Endpoint* endpoint = runtime.endpoint();
  if (hub == nullptr || endpoint == nullptr || runtime.bindings().empty()) return {};
  auto promise = std::make_shared<std::promise<std::vector<LinkRow>>>();
  auto future = promise->get_future();
  hub->post([promise, endpoint, hub] {
    std::vector<LinkRow> rows;
    for (orpc::Endpoint::LinkView& view : endpoint->links()) {
      auto figures = hub->figures(view.link);
      rows.push_back(LinkRow{std::move(view), figures.value_or(TransportHub::LinkFigures{})});
    }
    promise->set_value(std::move(rows));
  });
  FERRY_REQUIRE(future.wait_for(std::chrono::seconds(5)) == std::future_status::ready,
                Errc::unavailable,
                "the transport I/O thread did not list its connections within 5 seconds; it is "
                "stopping or stuck");
  return future.get();
}

void describeLink(const LinkRow& row, wire::Connection::Builder out) {
  const orpc::Endpoint::LinkView& link = row.view;
  out.setProtseq(link.info.protseq);
  out.setPeer(link.info.peer);
  out.setOutbound(link.info.outbound);
  if (link.info.hasCredentials) {
    out.setPeerPid(link.info.pid);
    out.setPeerUid(link.info.uid);
  }
  out.setLevel(std::string(toString(link.info.level)));
  out.setProvider(link.info.provider);
  out.setPrincipal(link.info.principal);
  out.setCallerProcess(link.callerProcess);
  const TransportHub::LinkFigures& figures = row.figures;
  out.setMessagesSent(figures.messagesSent);
  out.setBytesSent(figures.bytesSent);
  out.setMessagesReceived(figures.messagesReceived);
  out.setBytesReceived(figures.bytesReceived);
  out.setCallsInFlight(static_cast<uint32_t>(link.callsInFlight));
  out.setRttMicros(figures.path.rtt_us);
  out.setRttVarMicros(figures.path.rtt_var_us);
  out.setPacketsLost(figures.path.packets_lost);
  out.setBytesRetransmitted(figures.path.bytes_retransmitted);
}

template <typename List>
void setCounters(List out, const std::vector<std::pair<std::string, int64_t>>& counters) {
  for (unsigned i = 0; i < counters.size(); ++i) {
    out[i].setName(counters[i].first);
    out[i].setValue(counters[i].second);
  }
}

class AdminServant final : public Implements<wire::iface::Admin> {
public:
  explicit AdminServant(RuntimeImpl& runtime) : _runtime(runtime) {}

  Owned<wire::Process> describe() override {
    Owned<wire::Process> result;
    wire::Process::Builder out = result.builder();
    out.setPid(static_cast<uint32_t>(::getpid()));
    out.setProcessId(_runtime.processId);
    out.setName(processName());
    {
      Health& h = healthState();
      std::lock_guard lock(h.mutex);
      out.setServing(h.serving);
      out.setServingReason(h.reason);
    }
    std::vector<StringBindingData> bindings = _runtime.bindings();
    auto bindingsOut = out.initBindings(static_cast<unsigned>(bindings.size()));
    for (unsigned i = 0; i < bindings.size(); ++i) bindingsOut.set(i, bindingText(bindings[i]));

    std::vector<std::shared_ptr<ApartmentImpl>> apartments = _runtime.apartments();
    auto apartmentsOut = out.initApartments(static_cast<unsigned>(apartments.size()));
    for (unsigned i = 0; i < apartments.size(); ++i) describeApartment(*apartments[i], apartmentsOut[i]);

    std::vector<TransportCounters> transports;
    if (TransportHub* hub = _runtime.hub()) transports = hub->counters();
    auto transportsOut = out.initTransports(static_cast<unsigned>(transports.size()));
    for (unsigned i = 0; i < transports.size(); ++i) {
      transportsOut[i].setProtseq(transports[i].transport);
      std::vector<std::pair<std::string, int64_t>> counters;
      for (const auto& [name, value] : transports[i].counters) {
        counters.emplace_back(name, static_cast<int64_t>(value));
      }
      setCounters(transportsOut[i].initCounters(static_cast<unsigned>(counters.size())), counters);
    }

    std::vector<PluginInfo> plugins = Runtime::plugins();
    auto pluginsOut = out.initPlugins(static_cast<unsigned>(plugins.size()));
    for (unsigned i = 0; i < plugins.size(); ++i) {
      pluginsOut[i].setKind(plugins[i].kind);
      pluginsOut[i].setName(plugins[i].name);
      pluginsOut[i].setPath(plugins[i].path);
    }

    RuntimeStats stats = Runtime::stats();
    std::vector<std::pair<std::string, int64_t>> counters;
#define FERRY_ADMIN_COUNTER(name, meaning) counters.emplace_back(#name, stats.name);
    FERRY_RUNTIME_COUNTERS(FERRY_ADMIN_COUNTER)
#undef FERRY_ADMIN_COUNTER
    setCounters(out.initCounters(static_cast<unsigned>(counters.size())), counters);

    std::vector<MethodStats::Row> rows = MethodStats::instance().snapshot();
    auto methodsOut = out.initMethods(static_cast<unsigned>(rows.size()));
    for (unsigned i = 0; i < rows.size(); ++i) {
      const MethodStats::Row& row = rows[i];
      auto m = methodsOut[i];
      setInterfaceName(m.initIface(), row.iid);
      m.setMethod(row.method);
      m.setMethodName(methodName(row.iid, row.method));
      m.setCalls(row.calls);
      m.setErrors(row.errors);
      auto latency = m.initLatency(kLatencyBuckets);
      for (unsigned k = 0; k < kLatencyBuckets; ++k) latency.set(k, row.latency[k]);
    }
    auto bounds = out.initLatencyBoundsMicros(kLatencyBoundsMicros.size());
    for (unsigned k = 0; k < kLatencyBoundsMicros.size(); ++k) bounds.set(k, kLatencyBoundsMicros[k]);

    if (orpc::Endpoint* endpoint = _runtime.endpoint()) {
      out.setCallsInFlight(static_cast<uint32_t>(endpoint->callsInFlight()));
      out.setServedCallsKept(static_cast<uint32_t>(endpoint->servedCallsKept()));
    }
    std::vector<LinkRow> links = linksOf(_runtime);
    auto linksOut = out.initConnections(static_cast<unsigned>(links.size()));
    for (unsigned i = 0; i < links.size(); ++i) describeLink(links[i], linksOut[i]);
    return result;
  }

  HealthResults health() override {
    Health& h = healthState();
    std::lock_guard lock(h.mutex);
    return HealthResults{h.serving, h.reason};
  }

  std::vector<std::vector<uint8_t>> schema(uint64_t iid) override {
    const InterfaceInfo* info = tryFindInterface(Iid(iid));
    FERRY_REQUIRE(info != nullptr && info->schema != nullptr, Errc::noInterface,
                  "this process has no schema for {}: no schema compiled into it declares that "
                  "interface; give `ferry call` the schema with --schema",
                  describeInterface(Iid(iid)));
    // The interface and everything it depends on, each node once.
    std::vector<std::vector<uint8_t>> nodes;
    std::unordered_set<uint64_t> seen;
    std::deque<const capnp::_::RawSchema*> pending{info->schema};
    while (!pending.empty()) {
      const capnp::_::RawSchema* raw = pending.front();
      pending.pop_front();
      if (!seen.insert(raw->id).second) continue;
      raw->ensureInitialized();
      capnp::MallocMessageBuilder message;
      message.setRoot(capnp::readMessageUnchecked<capnp::schema::Node>(raw->encodedNode));
      kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
      auto bytes = flat.asBytes();
      nodes.emplace_back(bytes.begin(), bytes.end());
      for (uint32_t i = 0; i < raw->dependencyCount; ++i) pending.push_back(raw->dependencies[i]);
    }
    return nodes;
  }

  std::vector<uint8_t> object(uint64_t oid, uint64_t iid) override {
    for (const std::shared_ptr<ApartmentImpl>& apartment : _runtime.apartments()) {
      Ref<Interface> identity = apartment->exports().tryFindObject(Oid(oid));
      if (!identity) continue;
      Iid wanted(iid);
      if (iid == 0) {
        for (const ExportedObjectView& v : apartment->exports().view()) {
          if (v.oid == Oid(oid) && !v.interfaces.empty()) wanted = v.interfaces.front();
        }
      }
      // Marshaled in the object's apartment, whose export table names it.
      return Apartment(apartment).invoke([&identity, wanted] {
        return marshalInterface(identity.get(), wanted, MarshalContext::differentMachine,
                                MarshalFlags::normal);
      });
    }
    FERRY_FAIL(Errc::objectNotRegistered,
               "no apartment of this process exports an object with OID {}; `ferry ls` lists "
               "the exported objects",
               toString(Oid(oid)));
  }

private:
  RuntimeImpl& _runtime;
};

// Writes `text` to `path` (mode 0600) through a temporary file renamed over it, so a reader
// never sees half of it.
bool writePrivateFile(const std::string& path, const std::string& text) {
  std::string temporary = path + ".new";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::close(fd) == 0 && ok;
  if (ok && ::rename(temporary.c_str(), path.c_str()) == 0) return true;
  ::unlink(temporary.c_str());
  return false;
}

// Removes the files of processes that are gone (killed before ~Runtime removed theirs): a file
// named by a pid no process has.
void removeStaleFiles(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* entry = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      ::unlink((dir + "/" + entry->d_name).c_str());
    }
  }
  ::closedir(d);
}

}  // namespace

std::string directory() { return runtimeDirectory() + "/admin"; }

void start(RuntimeImpl& runtime) noexcept {
  const RuntimeOptions& options = runtime.options;
  if (options.admin == RuntimeOptions::Admin::off || !options.outOfProcess ||
      runtime.bindings().empty()) {
    return;
  }
  setServing(true, "");
  try {
    MarshalContext context = options.admin == RuntimeOptions::Admin::network
                                 ? MarshalContext::differentMachine
                                 : MarshalContext::local;
    ObjRefBytes objref = Apartment(runtime.mtaShared()).invoke([&runtime, context] {
      Ref<wire::iface::Admin> servant = make<AdminServant>(runtime);
      ObjRefBytes packet = marshalInterface(servant, context, MarshalFlags::tableStrong);
      // It holds the process for nobody (ExportTable::heldForOthers).
      requireCurrentApartment().exports().markRuntimeOwn(servant.get());
      return packet;
    });
    // ferryd lists it (`ferry ps`, from this host and, for admin = network, from others).
    if (orpc::Endpoint* endpoint = runtime.endpoint()) {
      endpoint->resolver().registerAdmin(objref, options.admin == RuntimeOptions::Admin::network);
    }
    std::string dir = directory();
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      FERRY_LOG(warn, "the admin object is not published: cannot create " << dir << ": "
                                                                      << std::strerror(errno));
      return;
    }
    removeStaleFiles(dir);
    std::string path = dir + "/" + std::to_string(::getpid());
    if (!writePrivateFile(path, objRefToText(objref) + "\n")) {
      FERRY_LOG(warn, "the admin object is not published: cannot write " << path << ": "
                                                                      << std::strerror(errno));
      return;
    }
    Published& p = published();
    std::lock_guard lock(p.mutex);
    p.path = path;
  } catch (const std::exception& e) {
    FERRY_LOG(warn, "this process runs without an admin object: " << e.what());
  }
}

void stop() noexcept {
  Published& p = published();
  std::lock_guard lock(p.mutex);
  if (!p.path.empty()) ::unlink(p.path.c_str());
  p.path.clear();
}

void checkCaller(const RuntimeOptions& options, const ClientBlanket& caller,
                 MarshalContext distance, Iid interfaceId) {
  if (interfaceId != wire::iface::Admin::iid || distance == MarshalContext::local) return;
  bool network = options.admin == RuntimeOptions::Admin::network;
  if (network && caller.level >= options.adminMinimumLevel) return;
  stats().callsDenied.fetch_add(1, std::memory_order_relaxed);
  FERRY_REQUIRE(network, Errc::accessDenied,
                "access denied: this process serves its admin interface to this host only, over "
                "the pipe; set its RuntimeOptions::admin to network to serve other hosts");
  FERRY_FAIL(Errc::accessDenied,
             "access denied: admin calls from another host need level {} "
             "(RuntimeOptions::adminMinimumLevel), and this call's connection runs at {}; "
             "configure a security provider both sides share in RuntimeOptions::security",
             toString(options.adminMinimumLevel), toString(caller.level));
}

void setServing(bool serving, std::string reason) {
  Health& h = healthState();
  std::lock_guard lock(h.mutex);
  h.serving = serving;
  h.reason = std::move(reason);
}

}  // namespace ferry::detail::admin
