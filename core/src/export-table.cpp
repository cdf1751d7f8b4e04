#include "export-table.h"

#include <typeinfo>

#include <ferry/lifetime.h>

#include "ids-impl.h"
#include "interface-registry.h"
#include "log.h"
#include "stats.h"

namespace ferry::detail {

namespace {

// Calls the object's ExternalConnection hook. Hooks are user code: a throwing hook is logged.
void notifyHook(ExternalConnection* hook, bool connect, bool lastReleaseCloses) noexcept {
  if (hook == nullptr) return;
  try {
    if (connect) {
      hook->addConnection();
    } else {
      hook->releaseConnection(lastReleaseCloses);
    }
  } catch (const std::exception& e) {
    FERRY_LOG(error, "ExternalConnection hook threw: " << e.what());
  } catch (...) {
    FERRY_LOG(error, "ExternalConnection hook threw a non-std exception");
  }
}

}  // namespace

StubLease makeStub(Ref<Interface> identity, Iid iid) {
  const InterfaceInfo* info = tryFindInterface(iid);
  FERRY_REQUIRE(info != nullptr, Errc::noInterface,
                "cannot marshal interface {}: no proxy and stub are registered for it; compile its "
                "schema with capnpc-ferry (ferry_capnp_gen in meson) and link the generated "
                ".ferry.c++ into this program",
                toString(iid));
  void* itf = identity->queryInterface(iid);
  FERRY_REQUIRE(itf != nullptr, Errc::noInterface,
                "cannot marshal the object as {}: it does not implement that interface",
                info->name);
  // A real object has one reference count: the lease's reference on the identity keeps `itf`
  // valid, so the one queryInterface added is returned at once.
  identity->release();
  return StubLease{std::move(identity), itf, info->dispatch, iid};
}

ExportTable::~ExportTable() {
  // Apartments clear their table in tearDown(); anything left here is released now.
  Retired leftovers = clear();
  leftovers.clear();
}

StubManager* ExportTable::findByIdentityLocked(Interface* identity) {
  auto it = _byIdentity.find(identity);
  return it == _byIdentity.end() ? nullptr : it->second.get();
}

StubManager* ExportTable::findByIpidLocked(Ipid ipid) {
  auto it = _byIpid.find(ipid);
  return it == _byIpid.end() ? nullptr : it->second.manager;
}

void ExportTable::addStrongLocked(StubManager& manager, uint32_t refs, const ClientKey* client) {
  bool first = manager.strongRefs == 0;
  manager.strongRefs += refs;
  if (client != nullptr && refs > 0) manager.clientRefs[*client] += refs;
  // The hook is user code but cannot re-enter the table without a thread hop (it is told about
  // references, it does not take them), so it runs under the lock.
  if (first && refs > 0) notifyHook(manager.externalConnection, true, false);
}

void ExportTable::dropStrongLocked(StubManager& manager, uint32_t refs, Retired& retired,
                                   bool lastReleaseCloses) {
  manager.strongRefs -= refs;
  if (manager.strongRefs > 0) return;
  notifyHook(manager.externalConnection, false, lastReleaseCloses);
  // COM's rule (Wine's stub_manager_ext_release): an outstanding tableWeak entry keeps the stub
  // manager when the object has the hook, or when the releaser asked not to close it.
  bool keptByWeakEntry =
      manager.weakEntries > 0 && (manager.externalConnection != nullptr || !lastReleaseCloses);
  if (!keptByWeakEntry) retireLocked(manager, retired);
}

StubManager& ExportTable::managerOfLocked(const Ref<Interface>& identity) {
  if (StubManager* found = findByIdentityLocked(identity.get())) return *found;
  auto created = std::make_unique<StubManager>();
  created->oid = newOid();
  created->externalConnection = dynamic_cast<ExternalConnection*>(identity.get());
  created->identity = identity;
  StubManager& manager = *created;
  _byOid.emplace(manager.oid, &manager);
  _byIdentity.emplace(identity.get(), std::move(created));
  stats().exportedObjects.fetch_add(1, std::memory_order_relaxed);
  return manager;
}

void ExportTable::retireLocked(StubManager& manager, Retired& retired) {
  if (!_releasedWeak.empty()) {
    std::erase_if(_releasedWeak, [&](const auto& entry) { return entry.second.oid == manager.oid; });
  }
  for (auto& [iid, stub] : manager.stubs) _byIpid.erase(stub.ipid);
  _byOid.erase(manager.oid);
  retired.push_back(std::move(manager.identity));
  Interface* key = retired.back().get();
  _byIdentity.erase(key);
  stats().exportedObjects.fetch_sub(1, std::memory_order_relaxed);
}

ExportedInterface ExportTable::exportInterface(Interface* object, Iid iid, PacketKind kind,
                                               uint32_t normalRefs, bool noPing, bool recordPacket,
                                               const ClientKey* recipient) {
  FERRY_REQUIRE(object != nullptr, Errc::invalidArgument,
                "cannot marshal a null interface pointer; pass an object");
  FERRY_ASSERT(asProxy(object) == nullptr);  // proxies marshal the original object instead
  StubLease stub = makeStub(identityOf(object), iid);

  std::lock_guard lock(_mutex);
  StubManager* manager = &managerOfLocked(stub.keepAlive);
  if (noPing) manager->noPing = true;
  auto [it, inserted] = manager->stubs.try_emplace(iid);
  if (inserted) {
    it->second = InterfaceStub{newIpid(), iid, stub.object, stub.dispatch};
    _byIpid.emplace(it->second.ipid, IpidEntry{manager, &it->second});
  }

  ExportedInterface out;
  out.oid = manager->oid;
  out.ipid = it->second.ipid;
  FERRY_ASSERT(recordPacket || kind == PacketKind::normal);
  out.packetId = recordPacket ? randomNonZero64() : 0;
  switch (kind) {
    case PacketKind::normal:
      out.publicRefs = normalRefs;
      if (recordPacket || recipient != nullptr) {
        addStrongLocked(*manager, normalRefs, recordPacket ? nullptr : recipient);
      } else {
        addStrongLocked(*manager, normalRefs);
        manager->transitRefs += normalRefs;
      }
      break;
    case PacketKind::tableStrong:
      addStrongLocked(*manager, 1);
      break;
    case PacketKind::tableWeak:
      manager->weakEntries += 1;
      break;
  }
  if (recordPacket) {
    _packets.emplace(out.packetId, Packet{out.oid, out.ipid, iid, kind, out.publicRefs, noPing});
  }
  return out;
}

std::unordered_map<uint64_t, ExportTable::Packet>::iterator ExportTable::findPacketLocked(
    const PacketClaim& claim) {
  auto it = _packets.find(claim.packetId);
  if (it == _packets.end()) {
    FERRY_REQUIRE(claim.kind != PacketKind::normal, Errc::objectNotConnected,
                  "the OBJREF was marshaled with MarshalFlags::normal and has already been "
                  "consumed: a normal packet unmarshals once (or is released once); marshal with "
                  "MarshalFlags::tableStrong to unmarshal the same packet many times");
    FERRY_FAIL(Errc::objectNotConnected,
               "the OBJREF's table packet was revoked by releaseMarshalData; marshal the "
               "interface again");
  }
  const Packet& p = it->second;
  FERRY_REQUIRE(p.oid == claim.oid && p.ipid == claim.ipid && p.iid == claim.iid &&
                    p.kind == claim.kind && p.refs == claim.publicRefs && p.noPing == claim.noPing,
                Errc::invalidObjRef,
                "the OBJREF's object, interface, flags or references differ from what its "
                "exporter recorded when it was marshaled; it was altered on the way");
  return it;
}

ClaimedPacket ExportTable::claimPacket(const PacketClaim& claim, uint32_t tableRefs,
                                       const ClientKey& claimer) {
  std::lock_guard lock(_mutex);
  if (claim.kind == PacketKind::tableWeak && !_packets.contains(claim.packetId)) {
    // A weak packet's copy after releaseMarshalData: COM finds the object by its identity, so
    // the copy works while the object lives. Any other unknown weak packet names an object that
    // is not (or no longer) exported here.
    auto released = _releasedWeak.find(claim.packetId);
    FERRY_REQUIRE(released != _releasedWeak.end(), Errc::objectNotRegistered,
                  "the object named by this weak table packet is no longer exported; marshal it "
                  "again from a live reference");
    const Packet& p = released->second;
    FERRY_REQUIRE(p.oid == claim.oid && p.ipid == claim.ipid && p.iid == claim.iid &&
                      p.noPing == claim.noPing && claim.publicRefs == 0,
                  Errc::invalidObjRef,
                  "the OBJREF disagrees with the exporter's record of its packet; it was altered");
    // Records go when their object retires, so the stub manager is there.
    StubManager* manager = findByIpidLocked(p.ipid);
    FERRY_REQUIRE(manager != nullptr, Errc::objectNotRegistered,
                  "the object named by this weak table packet is no longer exported; marshal it "
                  "again from a live reference");
    addStrongLocked(*manager, tableRefs, &claimer);
    return ClaimedPacket{p.oid, p.ipid, tableRefs};
  }
  auto it = findPacketLocked(claim);
  Packet packet = it->second;
  ClaimedPacket claimed{packet.oid, packet.ipid, 0};
  switch (packet.kind) {
    case PacketKind::normal: {
      // Its references pass to the importer; the packet is consumed.
      claimed.publicRefs = packet.refs;
      _packets.erase(it);
      StubManager* manager = findByIpidLocked(packet.ipid);
      if (manager != nullptr && packet.refs > 0) manager->clientRefs[claimer] += packet.refs;
      break;
    }
    case PacketKind::tableStrong:
    case PacketKind::tableWeak: {
      StubManager* manager = findByIpidLocked(packet.ipid);
      FERRY_REQUIRE(manager != nullptr, Errc::objectNotRegistered,
                    "the object {} of this table-marshaled OBJREF is no longer exported (it was "
                    "marshaled with MarshalFlags::tableWeak and its last strong reference went)",
                    toString(Oid(packet.oid)));
      addStrongLocked(*manager, tableRefs, &claimer);
      claimed.publicRefs = tableRefs;
      break;
    }
  }
  return claimed;
}

ExportedInterface ExportTable::addTablePacket(Ipid ipid, Iid iid, PacketKind kind, bool noPing) {
  FERRY_ASSERT(kind != PacketKind::normal);
  std::lock_guard lock(_mutex);
  StubManager* manager = findByIpidLocked(ipid);
  FERRY_REQUIRE(manager != nullptr, Errc::objectNotRegistered,
                "cannot table-marshal interface pointer {}: its object is no longer exported",
                toString(ipid));
  ExportedInterface out{manager->oid, ipid, randomNonZero64(), 0};
  if (kind == PacketKind::tableStrong) {
    addStrongLocked(*manager, 1);
  } else {
    manager->weakEntries += 1;
  }
  _packets.emplace(out.packetId, Packet{out.oid, out.ipid, iid, kind, 0, noPing});
  return out;
}

Retired ExportTable::releasePacket(const PacketClaim& claim) {
  Retired retired;
  std::lock_guard lock(_mutex);
  auto it = findPacketLocked(claim);
  Packet packet = it->second;
  _packets.erase(it);
  StubManager* manager = findByIpidLocked(packet.ipid);
  if (manager == nullptr) return retired;  // a weak packet of a retired object
  switch (packet.kind) {
    case PacketKind::normal:
      dropStrongLocked(*manager, packet.refs, retired);
      break;
    case PacketKind::tableStrong:
      dropStrongLocked(*manager, 1, retired);
      break;
    case PacketKind::tableWeak:
      manager->weakEntries -= 1;
      if (manager->weakEntries == 0 && manager->strongRefs == 0) {
        retireLocked(*manager, retired);
      } else {
        _releasedWeak.emplace(claim.packetId, packet);
      }
      break;
  }
  return retired;
}

void ExportTable::addRefs(Ipid ipid, uint32_t refs, const ClientKey& client) {
  std::lock_guard lock(_mutex);
  StubManager* manager = findByIpidLocked(ipid);
  FERRY_REQUIRE(manager != nullptr, Errc::objectNotRegistered,
                "cannot add references to interface pointer {}: its object is no longer exported",
                toString(ipid));
  addStrongLocked(*manager, refs, &client);
}

ExportTable::ReleaseOutcome ExportTable::releaseRefs(Ipid ipid, uint32_t refs,
                                                     const ClientKey& client, Retired& retired,
                                                     bool lastReleaseCloses) {
  std::lock_guard lock(_mutex);
  StubManager* manager = findByIpidLocked(ipid);
  if (manager == nullptr) return ReleaseOutcome::unknownIpid;
  auto account = manager->clientRefs.find(client);
  uint32_t own = account == manager->clientRefs.end() ? 0 : account->second;
  uint32_t fromOwn = std::min(own, refs);
  if (refs - fromOwn > manager->transitRefs) {
    stats().releasesRefused.fetch_add(1, std::memory_order_relaxed);
    return ReleaseOutcome::notHeld;
  }
  // What the client received in transit OBJREFs becomes its own as it returns it.
  manager->transitRefs -= refs - fromOwn;
  if (fromOwn == own && account != manager->clientRefs.end()) {
    manager->clientRefs.erase(account);
  } else if (fromOwn > 0) {
    account->second -= fromOwn;
  }
  dropStrongLocked(*manager, refs, retired, lastReleaseCloses);
  return ReleaseOutcome::released;
}

bool ExportTable::handOn(Ipid ipid, uint32_t refs, const ClientKey& client) {
  std::lock_guard lock(_mutex);
  StubManager* manager = findByIpidLocked(ipid);
  if (manager == nullptr) return false;
  auto account = manager->clientRefs.find(client);
  if (account == manager->clientRefs.end() || account->second < refs) {
    stats().releasesRefused.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if ((account->second -= refs) == 0) manager->clientRefs.erase(account);
  manager->transitRefs += refs;
  return true;
}

uint64_t ExportTable::collectClient(const ClientKey& client,
                                    const std::function<bool(Oid)>& stillPinged,
                                    Retired& retired) {
  std::lock_guard lock(_mutex);
  std::vector<StubManager*> held;
  for (auto& [identity, manager] : _byIdentity) {
    if (!manager->noPing && manager->clientRefs.contains(client)) held.push_back(manager.get());
  }
  uint64_t collected = 0;
  for (StubManager* manager : held) {
    auto account = manager->clientRefs.find(client);
    uint32_t refs = account->second;
    manager->clientRefs.erase(account);
    if (stillPinged(manager->oid)) {
      manager->transitRefs += refs;
      continue;
    }
    collected += refs;
    dropStrongLocked(*manager, refs, retired);
  }
  return collected;
}

uint32_t ExportTable::dropTransit(Oid oid, Retired& retired) {
  std::lock_guard lock(_mutex);
  auto it = _byOid.find(oid);
  if (it == _byOid.end() || it->second->noPing || it->second->transitRefs == 0) return 0;
  StubManager& manager = *it->second;
  uint32_t refs = std::exchange(manager.transitRefs, 0);
  dropStrongLocked(manager, refs, retired);
  return refs;
}

uint32_t ExportTable::clientRefs(Interface* object, const ClientKey& client) {
  Ref<Interface> identity = identityOf(object);
  std::lock_guard lock(_mutex);
  StubManager* manager = findByIdentityLocked(identity.get());
  if (manager == nullptr) return 0;
  auto account = manager->clientRefs.find(client);
  return account == manager->clientRefs.end() ? 0 : account->second;
}

Ipid ExportTable::queryInterface(Ipid anyIpid, Iid iid, uint32_t refs, const ClientKey& client) {
  Ref<Interface> identity;
  {
    std::lock_guard lock(_mutex);
    StubManager* manager = findByIpidLocked(anyIpid);
    FERRY_REQUIRE(manager != nullptr, Errc::objectNotRegistered,
                  "cannot query interface pointer {}: its object is no longer exported",
                  toString(anyIpid));
    auto it = manager->stubs.find(iid);
    if (it != manager->stubs.end()) {
      addStrongLocked(*manager, refs, &client);
      return it->second.ipid;
    }
    identity = manager->identity;
  }
  // The object has no stub for `iid` yet: exportInterface makes it and adds the references, as for
  // a normal packet that is handed over at once (so none is recorded).
  return exportInterface(identity.get(), iid, PacketKind::normal, refs, false,
                         /*recordPacket=*/false, &client)
      .ipid;
}

std::optional<StubLease> ExportTable::tryAcquireStub(Ipid ipid) {
  std::lock_guard lock(_mutex);
  auto it = _byIpid.find(ipid);
  if (it == _byIpid.end()) return std::nullopt;
  const InterfaceStub& stub = *it->second.stub;
  return StubLease{it->second.manager->identity, stub.object, stub.dispatch, stub.iid};
}

Ref<Interface> ExportTable::tryFindObject(Oid oid) {
  std::lock_guard lock(_mutex);
  auto it = _byOid.find(oid);
  return it == _byOid.end() ? nullptr : it->second->identity;
}

void ExportTable::lockExternal(Interface* object, bool lock, bool lastUnlockReleases,
                               Retired& retired) {
  Ref<Interface> identity = identityOf(object);
  std::lock_guard guard(_mutex);
  if (lock) {
    addStrongLocked(managerOfLocked(identity), 1);
    return;
  }
  StubManager* manager = findByIdentityLocked(identity.get());
  FERRY_REQUIRE(manager != nullptr && manager->strongRefs > 0, Errc::invalidArgument,
                "cannot unlock an object that holds no external lock or reference; call "
                "lockObjectExternal(object, true) first");
  // The object's own process may drop any reference: the table's first, then transit's, then a
  // client's (keeping the holders' sum equal to the strong count).
  uint32_t held = manager->transitRefs;
  for (const auto& [client, refs] : manager->clientRefs) held += refs;
  if (held == manager->strongRefs) {
    if (manager->transitRefs > 0) {
      manager->transitRefs -= 1;
    } else {
      auto account = manager->clientRefs.begin();
      if (--account->second == 0) manager->clientRefs.erase(account);
    }
  }
  dropStrongLocked(*manager, 1, retired, lastUnlockReleases);
}

Retired ExportTable::disconnect(Interface* object) {
  Retired retired;
  Ref<Interface> identity = identityOf(object);
  std::lock_guard lock(_mutex);
  StubManager* manager = findByIdentityLocked(identity.get());
  if (manager == nullptr) return retired;
  for (auto it = _packets.begin(); it != _packets.end();) {
    it = it->second.oid == manager->oid ? _packets.erase(it) : std::next(it);
  }
  retireLocked(*manager, retired);
  return retired;
}

Retired ExportTable::clear() {
  Retired retired;
  std::lock_guard lock(_mutex);
  while (!_byIdentity.empty()) {
    StubManager& manager = *_byIdentity.begin()->second;
    // The apartment goes: objects with outstanding connections hear that they went, without
    // being asked to close (COM's teardown).
    if (manager.strongRefs > 0) notifyHook(manager.externalConnection, false, false);
    retireLocked(manager, retired);
  }
  _packets.clear();
  _releasedWeak.clear();
  return retired;
}

size_t ExportTable::size() {
  std::lock_guard lock(_mutex);
  return _byIdentity.size();
}

size_t ExportTable::heldForOthers() {
  std::lock_guard lock(_mutex);
  size_t held = 0;
  for (const auto& [identity, manager] : _byIdentity) {
    if (manager->runtimeOwn) continue;
    auto own = manager->clientRefs.find(ClientKey{});
    uint32_t ownRefs = own == manager->clientRefs.end() ? 0 : own->second;
    if (manager->strongRefs > ownRefs) ++held;
  }
  return held;
}

void ExportTable::markRuntimeOwn(Interface* object) {
  Ref<Interface> identity = identityOf(object);
  std::lock_guard lock(_mutex);
  if (StubManager* manager = findByIdentityLocked(identity.get())) manager->runtimeOwn = true;
}

std::vector<ExportedObjectView> ExportTable::view() {
  std::lock_guard lock(_mutex);
  std::vector<ExportedObjectView> out;
  out.reserve(_byIdentity.size());
  for (const auto& [identity, manager] : _byIdentity) {
    ExportedObjectView& v = out.emplace_back();
    v.oid = manager->oid;
    v.typeName = typeid(*identity).name();
    for (const auto& [iid, stub] : manager->stubs) v.interfaces.push_back(iid);
    v.strongRefs = manager->strongRefs;
    v.weakEntries = manager->weakEntries;
    v.transitRefs = manager->transitRefs;
    v.noPing = manager->noPing;
    v.clients.assign(manager->clientRefs.begin(), manager->clientRefs.end());
  }
  for (const auto& [id, packet] : _packets) {
    for (ExportedObjectView& v : out) {
      if (v.oid == packet.oid) ++v.packets;
    }
  }
  return out;
}

ExternalReferences ExportTable::externalReferences(Interface* object) {
  Ref<Interface> identity = identityOf(object);
  std::lock_guard lock(_mutex);
  StubManager* manager = findByIdentityLocked(identity.get());
  if (manager == nullptr) return {};
  return {manager->strongRefs, manager->weakEntries, true};
}

std::pair<uint32_t, uint32_t> ExportTable::refCounts(Interface* object) {
  ExternalReferences refs = externalReferences(object);
  return {refs.strong, refs.weak};
}

std::pair<uint32_t, uint32_t> ExportTable::refCounts(Oid oid) {
  std::lock_guard lock(_mutex);
  auto it = _byOid.find(oid);
  if (it == _byOid.end()) return {0, 0};
  return {it->second->strongRefs, it->second->weakEntries};
}

}  // namespace ferry::detail
