#include "import-table.h"

#include <algorithm>

#include "apartment-impl.h"
#include "channel.h"
#include "dgc/ping-client.h"
#include "interface-registry.h"
#include "log.h"
#include "message.h"
#include "orpc/endpoint.h"
#include "pending-call.h"
#include "remunknown.capnp.h"
#include "runtime-impl.h"
#include "stats.h"
#include "thread-state.h"

namespace ferry::detail {

namespace {

// References asked for per RemUnknown round trip (COM's number).
constexpr uint32_t kRefsPerRequest = 5;

void writeIpid(wire::Ipid::Builder out, Ipid ipid) {
  out.setHi(ipid.hi);
  out.setLo(ipid.lo);
}

// Starts a RemUnknown request; the caller fills the params.
std::unique_ptr<OutgoingRequest> newRemUnknownRequest(Ipid remUnknownIpid, uint16_t methodId) {
  auto request = std::make_unique<OutgoingRequest>();
  writeIpid(request->root.initIpid(), remUnknownIpid);
  request->root.setInterfaceId(capnp::typeId<wire::RemUnknown>());
  request->root.setMethodId(methodId);
  return request;
}

// Ordinals in remunknown.capnp.
constexpr uint16_t kQueryInterfaces = 0;
constexpr uint16_t kAddRefs = 1;
constexpr uint16_t kRelease = 2;

}  // namespace

// ---------------------------------------------------------------------------------------------
// ExporterLink

ExporterLink::ExporterLink(ApartmentImpl& importer, Oxid oxid, Address address,
                           std::shared_ptr<Channel> channel, Ipid remUnknownIpid)
    : _importer(importer),
      _oxid(oxid),
      _address(std::move(address)),
      _channel(std::move(channel)),
      _remUnknownIpid(remUnknownIpid) {}

ExporterLink::~ExporterLink() = default;

std::vector<QiOutcome> ExporterLink::queryInterfaces(Ipid ipid, std::span<const Iid> iids,
                                                     uint32_t refs) {
  auto request = newRemUnknownRequest(_remUnknownIpid, kQueryInterfaces);
  auto params = request->root.getParams().initAs<wire::RemUnknown::QueryInterfacesParams>();
  auto qi = params.initRequest();
  writeIpid(qi.initIpid(), ipid);
  qi.setRefs(refs);
  auto list = qi.initIids(iids.size());
  for (size_t i = 0; i < iids.size(); ++i) list.set(i, iids[i].value);

  auto call = startCall(_importer, *_channel, std::move(request));
  std::unique_ptr<IncomingResponse> response = finishCall(*call);
  auto results = response->root()
                     .getResults()
                     .getAs<wire::RemUnknown::QueryInterfacesResults>()
                     .getReply()
                     .getResults();
  FERRY_REQUIRE(results.size() == iids.size(), Errc::protocolError,
                "the exporter answered RemUnknown.queryInterfaces with {} results for {} "
                "interfaces; it does not follow the protocol",
                results.size(), iids.size());
  std::vector<QiOutcome> out(iids.size());
  for (size_t i = 0; i < iids.size(); ++i) {
    uint16_t code = results[i].getCode();
    out[i].code = isKnownErrc(code) ? static_cast<Errc>(code) : Errc::protocolError;
    out[i].ipid = Ipid(results[i].getIpid().getHi(), results[i].getIpid().getLo());
    if (out[i].code == Errc::ok && !out[i].ipid) out[i].code = Errc::protocolError;
  }
  return out;
}

namespace {

constexpr uint16_t kClaimPacket = 3;
constexpr uint16_t kReleasePacket = 4;
constexpr uint16_t kHandOn = 5;

void writeClaim(wire::PacketClaim::Builder out, const ExportTable::PacketClaim& claim,
                uint32_t tableRefs) {
  out.setPacketId(claim.packetId);
  out.setOid(claim.oid.value);
  writeIpid(out.initIpid(), claim.ipid);
  out.setIid(claim.iid.value);
  out.setTable(static_cast<uint8_t>(claim.kind));
  out.setPublicRefs(claim.publicRefs);
  out.setNoPing(claim.noPing);
  out.setTableRefs(tableRefs);
}

// Throws the exporter's error from a ClaimReply; returns its references otherwise.
uint32_t readClaimReply(wire::ClaimReply::Reader reply) {
  uint16_t code = reply.getCode();
  if (code != 0) {
    throw Error(isKnownErrc(code) ? static_cast<Errc>(code) : Errc::protocolError,
                std::string(reply.getMessage().cStr()));
  }
  return reply.getPublicRefs();
}

}  // namespace

uint32_t ExporterLink::claimPacket(const ExportTable::PacketClaim& claim, uint32_t tableRefs) {
  auto request = newRemUnknownRequest(_remUnknownIpid, kClaimPacket);
  writeClaim(request->root.getParams().initAs<wire::RemUnknown::ClaimPacketParams>().initRequest(),
             claim, tableRefs);
  auto call = startCall(_importer, *_channel, std::move(request));
  std::unique_ptr<IncomingResponse> response = finishCall(*call);
  return readClaimReply(
      response->root().getResults().getAs<wire::RemUnknown::ClaimPacketResults>().getReply());
}

void ExporterLink::releasePacket(const ExportTable::PacketClaim& claim) {
  auto request = newRemUnknownRequest(_remUnknownIpid, kReleasePacket);
  writeClaim(request->root.getParams().initAs<wire::RemUnknown::ReleasePacketParams>().initRequest(),
             claim, 0);
  auto call = startCall(_importer, *_channel, std::move(request));
  std::unique_ptr<IncomingResponse> response = finishCall(*call);
  readClaimReply(
      response->root().getResults().getAs<wire::RemUnknown::ReleasePacketResults>().getReply());
}

void ExporterLink::addRefs(Ipid ipid, uint32_t refs) {
  auto request = newRemUnknownRequest(_remUnknownIpid, kAddRefs);
  auto params = request->root.getParams().initAs<wire::RemUnknown::AddRefsParams>();
  auto entry = params.initRequest().initEntries(1)[0];
  writeIpid(entry.initIpid(), ipid);
  entry.setRefs(refs);
  auto call = startCall(_importer, *_channel, std::move(request));
  std::unique_ptr<IncomingResponse> response = finishCall(*call);
  auto codes = response->root()
                   .getResults()
                   .getAs<wire::RemUnknown::AddRefsResults>()
                   .getReply()
                   .getCodes();
  FERRY_REQUIRE(codes.size() == 1, Errc::protocolError,
                "the exporter answered RemUnknown.addRefs with {} codes for 1 interface; it does "
                "not follow the protocol",
                codes.size());
  uint16_t code = codes[0];
  FERRY_REQUIRE(code == 0, isKnownErrc(code) ? static_cast<Errc>(code) : Errc::protocolError,
                "the exporter refused to add references to interface pointer {} (the error "
                "code says why)",
                toString(ipid));
}

namespace {

// Sends a link's pending releases on the importing apartment's next turn, or at once if the
// apartment will not run it.
class FlushItem final : public WorkItem {
public:
  explicit FlushItem(std::shared_ptr<ExporterLink> link)
      : WorkItem(Kind::task), _link(std::move(link)) {}
  void run() noexcept override { _link->flushReleases(); }
  void abandon() noexcept override { _link->flushReleases(); }

private:
  std::shared_ptr<ExporterLink> _link;
};

// RemUnknown.releaseRefs takes at most this many entries per message.
constexpr size_t kMaxReleaseBatch = 1024;

}  // namespace

void ExporterLink::release(Ipid ipid, uint32_t refs) noexcept {
  bool schedule;
  {
    std::lock_guard lock(_batchMutex);
    _batch.push_back({ipid, refs});
    schedule = !_flushScheduled;
    _flushScheduled = true;
  }
  if (!schedule) return;
  try {
    std::unique_ptr<WorkItem> item = std::make_unique<FlushItem>(shared_from_this());
    if (!_importer.post(item)) flushReleases();
  } catch (const std::exception&) {
    flushReleases();
  }
}

void ExporterLink::flushReleases() noexcept {
  std::vector<PendingEntry> entries;
  {
    std::lock_guard lock(_batchMutex);
    entries.swap(_batch);
    _flushScheduled = false;
  }
  if (!entries.empty()) sendReleases(std::move(entries), kRelease);
}

void ExporterLink::handOn(Ipid ipid, uint32_t refs) noexcept {
  // The releases made before go first: the exporter applies them in order.
  flushReleases();
  sendReleases({PendingEntry{ipid, refs}}, kHandOn);
}

void ExporterLink::sendReleases(std::vector<PendingEntry> entries, uint16_t methodId) noexcept {
  for (size_t start = 0; start < entries.size(); start += kMaxReleaseBatch) {
    size_t count = std::min(kMaxReleaseBatch, entries.size() - start);
    try {
      auto request = newRemUnknownRequest(_remUnknownIpid, methodId);
      // releaseRefs and handOn both take a RefBatch.
      auto batch = methodId == kRelease
                       ? request->root.getParams()
                             .initAs<wire::RemUnknown::ReleaseRefsParams>()
                             .initRequest()
                       : request->root.getParams().initAs<wire::RemUnknown::HandOnParams>().initRequest();
      auto list = batch.initEntries(static_cast<unsigned>(count));
      for (size_t i = 0; i < count; ++i) {
        writeIpid(list[i].initIpid(), entries[start + i].ipid);
        list[i].setRefs(entries[start + i].refs);
      }
      sendOneway(*_channel, std::move(request));
    } catch (const std::exception& e) {
      stats().onewayFailures.fetch_add(1, std::memory_order_relaxed);
      FERRY_LOG(warn, "could not return references to " << _oxid << ": " << e.what());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ProxyBase

ProxyBase::ProxyBase(const ProxyInit& init) noexcept
    : _manager(init.manager), _iid(init.iid), _ipid(init.ipid) {
  stats().interfaceProxies.fetch_add(1, std::memory_order_relaxed);
}

ProxyBase::~ProxyBase() { stats().interfaceProxies.fetch_sub(1, std::memory_order_relaxed); }

uint32_t ProxyBase::addRef() noexcept { return _localRefs.fetch_add(1, std::memory_order_relaxed) + 1; }

uint32_t ProxyBase::release() noexcept {
  // Above one the count moves lock-free; the last reference goes under the table lock, where
  // lookups revive proxies, so a proxy is never revived while it is being destroyed.
  uint32_t n = _localRefs.load(std::memory_order_relaxed);
  while (n > 1) {
    if (_localRefs.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) return n - 1;
  }
  return _manager->releaseInterfaceProxy(*this);
}

void* ProxyBase::queryInterface(Iid id) {
  if (id == _iid) {
    addRef();
    return castSelf(id);
  }
  return _manager->queryInterface(id);
}

ProxyBase* asProxy(Interface* object) noexcept { return dynamic_cast<ProxyBase*>(object); }

// ---------------------------------------------------------------------------------------------
// ProxyManager

ProxyManager::ProxyManager(ImportTable& table, ApartmentImpl& apartment,
                           std::shared_ptr<ExporterLink> link, Oid oid, bool noPing)
    : _table(table),
      _apartment(apartment),
      _keepApartment(apartment.shared_from_this()),
      _link(std::move(link)),
      _oxid(_link->oxid()),
      _oid(oid) {
  stats().proxyManagers.fetch_add(1, std::memory_order_relaxed);
  const StringBindingData* binding = _link->channel().binding();
  orpc::Endpoint* endpoint = apartment.runtime().endpoint();
  if (!noPing && binding != nullptr && endpoint != nullptr) {
    _pingSet = endpoint->pings().join(_link->exporterProcessId(), *binding, oid);
  }
}

ProxyManager::~ProxyManager() {
  if (_pingSet) _pingSet->leave(_oid);
  stats().proxyManagers.fetch_sub(1, std::memory_order_relaxed);
}

bool ProxyManager::collected() const noexcept { return _pingSet && _pingSet->collected(); }

void ProxyManager::forgetLocked() noexcept {
  auto it = _table._managers.find(ImportTable::Key{_oxid, _oid});
  if (it != _table._managers.end() && it->second == this) _table._managers.erase(it);
}

std::shared_ptr<ExporterLink> ProxyManager::link() const {
  std::lock_guard lock(_table._mutex);
  return _link;
}

void ProxyManager::setLink(std::shared_ptr<ExporterLink> link) {
  FERRY_REQUIRE(threadState().apartment == &_apartment, Errc::wrongApartment,
                "a proxy's transport is changed only in the apartment that unmarshaled it ('{}'); "
                "call setTransport there",
                _apartment.label());
  FERRY_REQUIRE(link != nullptr && link->oxid() == _oxid, Errc::invalidArgument,
                "a proxy of exporter {} can only be given a link to that exporter",
                toString(_oxid));
  std::shared_ptr<ExporterLink> old;
  {
    std::lock_guard lock(_table._mutex);
    old = std::exchange(_link, std::move(link));
  }
}

uint32_t ProxyManager::addRef() noexcept {
  return _identityRefs.fetch_add(1, std::memory_order_relaxed) + 1;
}

uint32_t ProxyManager::release() noexcept {
  uint32_t n = _identityRefs.load(std::memory_order_relaxed);
  while (n > 1) {
    if (_identityRefs.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) return n - 1;
  }
  bool destroy = false;
  std::shared_ptr<ExporterLink> link;
  Ipid identityIpid;
  uint32_t identityRefs = 0;
  {
    std::lock_guard lock(_table._mutex);
    n = _identityRefs.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if (n == 0 && _interfaces.empty()) {
      forgetLocked();
      destroy = true;
      link = _link;
      identityIpid = _identityIpid;
      identityRefs = takeIdentityRefsLocked();
    }
  }
  if (identityRefs > 0 && returnsReferences()) link->release(identityIpid, identityRefs);
  if (destroy) delete this;
  return n;
}

Ipid ProxyManager::anyIpidLocked() const noexcept {
  if (!_interfaces.empty()) return _interfaces.begin()->second.proxy->_ipid;
  return _identityIpid;
}

void* ProxyManager::queryInterface(Iid iid) {
  if (iid == Interface::iid) {
    addRef();
    return static_cast<Interface*>(this);
  }
  std::vector<void*> found = queryInterfaces(std::span<const Iid>(&iid, 1));
  return found[0];
}

void ProxyManager::checkUsable() const {
  FERRY_REQUIRE(!disconnected(), Errc::objectNotConnected,
                "the proxy was disconnected when its apartment {} was torn down; unmarshal the "
                "interface again in a running apartment",
                _apartment.label());
  FERRY_REQUIRE(_pingSet == nullptr || !_pingSet->collected(), Errc::objectNotConnected,
                "the object's exporter (process id {}) released this process's references to "
                "it: it heard no ping from this process for three ping periods "
                "(RuntimeOptions::pingPeriod); ask the exporter for the object again",
                _pingSet->exporterProcess >> 32);
  ApartmentImpl* here = threadState().apartment;
  FERRY_REQUIRE(here == &_apartment, Errc::wrongApartment,
                "a proxy unmarshaled in apartment {} was used {}: a proxy belongs to the apartment "
                "that unmarshaled it; marshal the interface to this apartment (marshalInterface, "
                "or the GlobalInterfaceTable) and use the proxy that gives",
                _apartment.label(),
                here != nullptr ? "in apartment " + here->label()
                                : std::string("on a thread that is in no apartment"));
}

std::vector<void*> ProxyManager::queryInterfaces(std::span<const Iid> iids) {
  std::vector<void*> out(iids.size(), nullptr);
  std::vector<Iid> missing;
  Ipid anyIpid;
  {
    std::lock_guard lock(_table._mutex);
    anyIpid = anyIpidLocked();
    for (Iid iid : iids) {
      if (iid != Interface::iid && !_interfaces.contains(iid)) missing.push_back(iid);
    }
  }
  // Misses go to the exporter: only from the proxy's apartment, while connected.
  auto checkRemoteQuery = [&] {
    checkUsable();
    FERRY_REQUIRE(static_cast<bool>(anyIpid), Errc::objectNotConnected,
                  "the proxy holds no reference on its object any more, so it cannot query it; "
                  "unmarshal the object again");
  };
  bool checked = !missing.empty();
  if (checked) checkRemoteQuery();
  missing.clear();
  {
    std::lock_guard lock(_table._mutex);
    for (size_t i = 0; i < iids.size(); ++i) {
      auto it = _interfaces.find(iids[i]);
      if (it != _interfaces.end()) {
        it->second.proxy->_localRefs.fetch_add(1, std::memory_order_relaxed);
        out[i] = it->second.proxy->interfacePointer();
      } else if (iids[i] == Interface::iid) {
        _identityRefs.fetch_add(1, std::memory_order_relaxed);
        out[i] = static_cast<Interface*>(this);
      } else {
        missing.push_back(iids[i]);
      }
    }
  }
  if (missing.empty()) return out;
  // Nothing handed out survives a failed query.
  auto releaseHandedOut = [&] {
    for (size_t i = 0; i < iids.size(); ++i) {
      if (out[i] == nullptr) continue;
      if (iids[i] == Interface::iid) {
        release();
      } else {
        std::lock_guard lock(_table._mutex);
        ProxyBase* proxy = _interfaces.at(iids[i]).proxy;
        out[i] = proxy;  // released below, outside the lock
      }
    }
    for (size_t i = 0; i < iids.size(); ++i) {
      if (out[i] != nullptr && iids[i] != Interface::iid) static_cast<ProxyBase*>(out[i])->release();
    }
  };
  if (!checked) {
    // An interface proxy went meanwhile (released by another thread).
    try {
      checkRemoteQuery();
    } catch (...) {
      releaseHandedOut();
      throw;
    }
  }
  std::vector<QiOutcome> outcomes;
  try {
    outcomes = link()->queryInterfaces(anyIpid, missing, kRefsPerRequest);
  } catch (...) {
    releaseHandedOut();
    throw;
  }
  std::vector<bool> local(iids.size());
  for (size_t i = 0; i < iids.size(); ++i) local[i] = out[i] != nullptr;
  std::optional<Error> failure;
  {
    std::lock_guard lock(_table._mutex);
    for (size_t i = 0, m = 0; i < iids.size(); ++i) {
      if (local[i]) continue;
      const QiOutcome& outcome = outcomes[m++];
      if (outcome.code == Errc::ok) {
        try {
          out[i] = addInterfaceLocked(iids[i], outcome.ipid, kRefsPerRequest);
        } catch (const Error& e) {
          // No proxy class for it here: give the references back.
          _link->release(outcome.ipid, kRefsPerRequest);
          if (!failure) failure = e;
        }
      } else if (outcome.code != Errc::noInterface && !failure) {
        failure = Error(outcome.code, "remote queryInterface failed for " + toString(iids[i]));
      }
    }
  }
  if (failure) {
    releaseHandedOut();
    throw *failure;
  }
  return out;
}

void* ProxyManager::addInterfaceLocked(Iid iid, Ipid ipid, uint32_t refs) {
  auto it = _interfaces.find(iid);
  if (it == _interfaces.end()) {
    const InterfaceInfo* info = tryFindInterface(iid);
    FERRY_REQUIRE(info != nullptr && info->newProxy != nullptr, Errc::noInterface,
                  "cannot make a proxy for interface {}: no proxy is registered for it; compile "
                  "its schema with capnpc-ferry (ferry_capnp_gen in meson) and link the generated "
                  ".ferry.c++ into this program",
                  toString(iid));
    ProxyBase* proxy = info->newProxy(ProxyInit{this, iid, ipid});
    it = _interfaces.emplace(iid, Entry{proxy, 0}).first;
  }
  it->second.publicRefs += refs;
  it->second.proxy->_localRefs.fetch_add(1, std::memory_order_relaxed);
  return it->second.proxy->interfacePointer();
}

uint32_t ProxyManager::releaseInterfaceProxy(ProxyBase& proxy) noexcept {
  uint32_t refsToReturn = 0;
  uint32_t identityRefs = 0;
  Ipid identityIpid;
  bool destroyManager = false;
  std::shared_ptr<ExporterLink> link;
  {
    std::lock_guard lock(_table._mutex);
    link = _link;
    uint32_t n = proxy._localRefs.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if (n > 0) return n;
    auto it = _interfaces.find(proxy._iid);
    FERRY_ASSERT(it != _interfaces.end() && it->second.proxy == &proxy);
    refsToReturn = it->second.publicRefs;
    _interfaces.erase(it);
    if (unusedLocked()) {
      forgetLocked();
      destroyManager = true;
      identityIpid = _identityIpid;
      identityRefs = takeIdentityRefsLocked();
    } else if (_interfaces.empty() && _identityPublicRefs == 0) {
      // Only the identity remains: it keeps this proxy's references, so the object lives.
      _identityIpid = proxy._ipid;
      _identityPublicRefs = std::exchange(refsToReturn, 0);
    }
  }
  // Only the last release of an interface proxy goes on the wire.
  if (returnsReferences()) {
    if (refsToReturn > 0) link->release(proxy._ipid, refsToReturn);
    if (identityRefs > 0) link->release(identityIpid, identityRefs);
  }
  delete &proxy;
  if (destroyManager) delete this;
  return 0;
}

std::pair<Ipid, uint32_t> ProxyManager::takeIdentityRefsForMarshal() {
  Ipid ipid;
  uint32_t cached = 0;
  {
    std::lock_guard lock(_table._mutex);
    if (!_identityIpid) _identityIpid = anyIpidLocked();
    ipid = _identityIpid;
    cached = _identityPublicRefs;
  }
  FERRY_REQUIRE(static_cast<bool>(ipid), Errc::objectNotConnected,
                "the proxy holds no reference on its object any more, so it cannot marshal it; "
                "unmarshal the object again");
  if (cached < 2) {
    link()->addRefs(ipid, kRefsPerRequest);
    std::lock_guard lock(_table._mutex);
    _identityPublicRefs += kRefsPerRequest;
  }
  std::lock_guard lock(_table._mutex);
  uint32_t give = _identityPublicRefs / 2;
  _identityPublicRefs -= give;
  return {ipid, give};
}

std::pair<Ipid, uint32_t> ProxyManager::takeRefsForMarshal(Iid iid) {
  if (iid == Interface::iid) return takeIdentityRefsForMarshal();
  // When the interface is not held yet it is acquired first; that temporary interface proxy is
  // released at the end, returning whatever references the packet did not take.
  struct Temporary {
    ProxyBase* proxy = nullptr;
    ~Temporary() {
      if (proxy != nullptr) proxy->release();
    }
  } temporary;

  Ipid ipid;
  uint32_t cached = 0;
  {
    std::lock_guard lock(_table._mutex);
    auto it = _interfaces.find(iid);
    if (it != _interfaces.end()) {
      ipid = it->second.proxy->_ipid;
      cached = it->second.publicRefs;
    }
  }
  if (!ipid) {
    void* itf = queryInterface(iid);
    FERRY_REQUIRE(itf != nullptr, Errc::noInterface, "the object does not implement {}",
                  describeInterface(iid));
    std::lock_guard lock(_table._mutex);
    const Entry& entry = _interfaces.at(iid);
    temporary.proxy = entry.proxy;
    ipid = entry.proxy->_ipid;
    cached = entry.publicRefs;
  }
  if (cached < 2) {
    link()->addRefs(ipid, kRefsPerRequest);
    std::lock_guard lock(_table._mutex);
    cached = (_interfaces.at(iid).publicRefs += kRefsPerRequest);
  }
  std::lock_guard lock(_table._mutex);
  uint32_t& held = _interfaces.at(iid).publicRefs;
  uint32_t give = held / 2;
  held -= give;
  return {ipid, give};
}

void ProxyManager::disconnectLocked(std::vector<PendingRelease>& toReturn) noexcept {
  if (_disconnected.exchange(true)) return;
  for (auto& [iid, entry] : _interfaces) {
    if (entry.publicRefs > 0) toReturn.push_back({_link, entry.proxy->_ipid, entry.publicRefs});
    entry.publicRefs = 0;
  }
  if (_identityPublicRefs > 0) toReturn.push_back({_link, _identityIpid, takeIdentityRefsLocked()});
}

// ---------------------------------------------------------------------------------------------
// ImportTable

ImportTable::~ImportTable() {
  // Every proxy manager keeps the apartment object (and so this table) alive: none is left.
}

std::shared_ptr<ExporterLink> ImportTable::linkFor(
    Oxid oxid, const std::function<std::shared_ptr<ExporterLink>()>& makeLink) {
  {
    std::lock_guard lock(_mutex);
    auto it = _links.find(oxid);
    if (it != _links.end()) {
      if (auto link = it->second.lock()) return link;
    }
  }
  // Made outside the lock: it may resolve the OXID over the network.
  std::shared_ptr<ExporterLink> link = makeLink();
  std::lock_guard lock(_mutex);
  auto& slot = _links[oxid];
  if (auto existing = slot.lock()) return existing;
  slot = link;
  return link;
}

ProxyManager& ImportTable::managerForLocked(const Import& import,
                                            const std::shared_ptr<ExporterLink>& link) {
  if (_apartment.closed()) {
    if (import.publicRefs > 0) link->release(import.ipid, import.publicRefs);
    FERRY_FAIL(Errc::shuttingDown,
               "cannot unmarshal into apartment '{}': it is shutting down",
               _apartment.label());
  }
  Key key{import.oxid, import.oid};
  auto it = _managers.find(key);
  if (it != _managers.end()) {
    if (!it->second->collected()) return *it->second;
    // The exporter collected the old one (distributed GC): a new OBJREF gets a new identity,
    // while the old one's proxies keep failing.
    _managers.erase(it);
  }
  auto* manager = new ProxyManager(*this, _apartment, link, import.oid, import.noPing);
  _managers.emplace(key, manager);
  return *manager;
}

ProxyManager* ImportTable::importIdentity(const Import& import,
                                          const std::shared_ptr<ExporterLink>& link) {
  std::lock_guard lock(_mutex);
  ProxyManager& manager = managerForLocked(import, link);
  if (manager._identityPublicRefs == 0) manager._identityIpid = import.ipid;
  manager._identityPublicRefs += import.publicRefs;
  manager._identityRefs.fetch_add(1, std::memory_order_relaxed);
  return &manager;
}

ProxyBase* ImportTable::importInterface(const Import& import,
                                        const std::shared_ptr<ExporterLink>& link) {
  std::lock_guard lock(_mutex);
  Key key{import.oxid, import.oid};
  ProxyManager* manager = &managerForLocked(import, link);
  try {
    manager->addInterfaceLocked(import.iid, import.ipid, import.publicRefs);
  } catch (...) {
    if (manager->unusedLocked()) {
      _managers.erase(key);
      delete manager;
    }
    if (import.publicRefs > 0) link->release(import.ipid, import.publicRefs);
    throw;
  }
  return manager->_interfaces.at(import.iid).proxy;
}

void ImportTable::disconnectAll() noexcept {
  std::vector<ProxyManager::PendingRelease> toReturn;
  std::vector<std::shared_ptr<ExporterLink>> links;
  {
    std::lock_guard lock(_mutex);
    for (auto& [key, manager] : _managers) manager->disconnectLocked(toReturn);
    for (auto& [oxid, weak] : _links) {
      if (auto link = weak.lock()) links.push_back(std::move(link));
    }
  }
  // Teardown returns everything at once: the apartment will not take another turn.
  for (auto& r : toReturn) r.link->release(r.ipid, r.refs);
  for (auto& link : links) link->flushReleases();
}

std::vector<ImportedObjectView> ImportTable::view() {
  std::lock_guard lock(_mutex);
  std::vector<ImportedObjectView> out;
  out.reserve(_managers.size());
  for (const auto& [key, manager] : _managers) {
    ImportedObjectView& v = out.emplace_back();
    v.oxid = key.oxid;
    v.oid = key.oid;
    for (const auto& [iid, entry] : manager->_interfaces) v.interfaces.emplace_back(iid, entry.publicRefs);
    v.disconnected = manager->disconnected();
  }
  return out;
}

size_t ImportTable::size() {
  std::lock_guard lock(_mutex);
  return _managers.size();
}

}  // namespace ferry::detail
