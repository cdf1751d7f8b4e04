#include <ferry/marshal.h>

#include "marshal-impl.h"

#include "apartment-impl.h"
#include "import-table.h"
#include "interface-registry.h"
#include "log.h"
#include "runtime-impl.h"
#include "thread-state.h"
#include "objref.h"

namespace ferry {

std::string_view toString(MarshalContext context) noexcept {
  switch (context) {
    case MarshalContext::inproc:
      return "inproc";
    case MarshalContext::local:
      return "local";
    case MarshalContext::noSharedMemory:
      return "noSharedMemory";
    case MarshalContext::differentMachine:
      return "differentMachine";
  }
  return "unknown";
}

namespace detail {

namespace {

// Standard marshaling gives the importer this many public references (COM's number).
constexpr uint32_t kNormalPublicRefs = 5;

PacketKind packetKindOf(MarshalFlags flags) {
  bool strong = hasFlag(flags, MarshalFlags::tableStrong);
  bool weak = hasFlag(flags, MarshalFlags::tableWeak);
  FERRY_REQUIRE(!(strong && weak), Errc::invalidArgument,
                "MarshalFlags::tableStrong and MarshalFlags::tableWeak exclude each other; pass "
                "one of them");
  return strong ? PacketKind::tableStrong : weak ? PacketKind::tableWeak : PacketKind::normal;
}

void fillExporterIdentity(ObjRefData& out, RuntimeImpl& runtime) {
  out.hostId = runtime.hostId;
  out.processId = runtime.processId;
}

ObjRefData marshalProxy(ProxyManager& manager, Iid iid, PacketKind kind, bool noPing,
                        MarshalContext context) {
  ApartmentImpl& here = requireCurrentApartment();
  manager.checkUsable();
  std::shared_ptr<ExporterLink> link = manager.link();
  ObjRefData out;
  out.iid = iid;
  out.kind = ObjRefData::Kind::standard;
  out.oxid = link->oxid();
  out.oid = manager.oid();
  out.noPing = noPing;
  out.table = kind;
  out.hostId = link->exporterHostId();
  out.processId = link->exporterProcessId();
  out.bindings = link->exporterBindings();
  if (kind == PacketKind::normal) {
    // The packet names the original object and carries part of this proxy's references; it is
    // not recorded at the exporter (packetId 0), as the exporter learns of it only when it is
    // used.
    auto [ipid, refs] = manager.takeRefsForMarshal(iid);
    out.ipid = ipid;
    out.publicRefs = refs;
    // For another process the references leave this one's account at the exporter (an importer
    // in this process returns them as this process).
    if (context != MarshalContext::inproc && refs > 0) link->handOn(ipid, refs);
    return out;
  }
  // Table packets are recorded at the exporter, which in this process is reachable directly.
  std::shared_ptr<ApartmentImpl> exporter = here.runtime().tryFindApartment(out.oxid);
  FERRY_REQUIRE(exporter != nullptr, Errc::invalidArgument,
                "cannot marshal a proxy to exporter {} with MarshalFlags::tableStrong or "
                "tableWeak: only objects of this process are table-marshaled; marshal the proxy "
                "with MarshalFlags::normal, or table-marshal the object in its own process",
                toString(out.oxid));
  // Make sure this proxy holds the interface, so the exporter has its stub.
  auto [ipid, refs] = manager.takeRefsForMarshal(iid);
  if (refs > 0) {
    // Give back what takeRefsForMarshal handed out: the table records its own reference.
    link->release(ipid, refs);
  }
  ExportedInterface exported = exporter->exports().addTablePacket(ipid, iid, kind, noPing);
  out.ipid = exported.ipid;
  out.packetId = exported.packetId;
  return out;
}

ExportTable::PacketClaim claimOf(const ObjRefData& objref) {
  return {objref.packetId, objref.oid,   objref.ipid,  objref.iid,
          objref.table,    objref.publicRefs, objref.noPing};
}

// An OBJREF naming an exporter of this process must say so: host and process identity included.
void checkLocalIdentity(const ObjRefData& objref, RuntimeImpl& runtime) {
  FERRY_REQUIRE(objref.processId == runtime.processId && objref.hostId == runtime.hostId,
                Errc::invalidObjRef,
                "the OBJREF names apartment {} of this process, but another host or process id; "
                "it was altered on the way",
                toString(objref.oxid));
}

}  // namespace

ProxyManager* asProxyManager(Interface* object) noexcept {
  if (object == nullptr) return nullptr;
  if (ProxyBase* proxy = asProxy(object)) return &proxy->manager();
  return dynamic_cast<ProxyManager*>(object);
}

ObjRefData marshalData(Interface* object, Iid iid, MarshalContext context, MarshalFlags flags,
                       bool recordPacket) {
  ObjRefData out;
  out.iid = iid;
  FERRY_REQUIRE(iid.value != 0, Errc::invalidArgument,
                "cannot marshal with interface id (IID) 0; pass the interface's iid");
  if (object == nullptr) return out;  // Kind::null
  PacketKind kind = packetKindOf(flags);
  bool noPing = hasFlag(flags, MarshalFlags::noPing);
  if (ProxyManager* manager = asProxyManager(object)) {
    return marshalProxy(*manager, iid, kind, noPing, context);
  }

  ApartmentImpl& here = requireCurrentApartment();
  if (auto* custom = dynamic_cast<CustomMarshaler*>(object)) {
    std::optional<CustomMarshaler::Packet> packet = custom->marshalCustom(iid, context, flags);
    if (packet) {
      FERRY_REQUIRE(!packet->unmarshalerClass.empty() && packet->unmarshalerClass.size() <= 255 &&
                        packet->data.size() <= kMaxObjRefBytes / 2,
                    Errc::invalidArgument,
                    "the custom marshaler returned a packet whose unmarshaler class name has {} "
                    "bytes and whose data has {}; the name must have 1 to 255 bytes and the data "
                    "at most {}",
                    packet->unmarshalerClass.size(), packet->data.size(), kMaxObjRefBytes / 2);
      out.kind = packet->byValue ? ObjRefData::Kind::byValue : ObjRefData::Kind::custom;
      out.unmarshalerClass = std::move(packet->unmarshalerClass);
      out.data = std::move(packet->data);
      return out;
    }
  }
  // References in a packet nobody claims belong to the client they go to, when it is known.
  ExportedInterface exported = here.exports().exportInterface(
      object, iid, kind, kNormalPublicRefs, noPing, recordPacket, threadState().marshalPeer);
  out.kind = ObjRefData::Kind::standard;
  out.oxid = here.oxid();
  out.oid = exported.oid;
  out.ipid = exported.ipid;
  out.publicRefs = exported.publicRefs;
  out.table = kind;
  out.noPing = noPing;
  out.packetId = exported.packetId;
  fillExporterIdentity(out, here.runtime());
  // In-process packets carry no bindings (as COM's); anything farther says where we listen.
  if (context != MarshalContext::inproc) out.bindings = here.runtime().bindings();
  return out;
}

void* unmarshalData(const ObjRefData& objref, Iid iid) {
  switch (objref.kind) {
    case ObjRefData::Kind::null:
      return nullptr;
    case ObjRefData::Kind::custom:
    case ObjRefData::Kind::byValue: {
      requireCurrentApartment();  // the new object belongs to the caller's apartment
      RuntimeImpl::UnmarshalerEntry entry = currentRuntime().findUnmarshaler(objref.unmarshalerClass);
      Ref<Interface> object = entry.unmarshal(objref.data);
      FERRY_REQUIRE(object != nullptr, Errc::serverFault,
                    "the unmarshaler registered for class '{}' returned a null object",
                    objref.unmarshalerClass);
      void* itf = object->queryInterface(iid);
      FERRY_REQUIRE(itf != nullptr, Errc::noInterface,
                    "the object made by the unmarshaler of class '{}' does not implement {}",
                    objref.unmarshalerClass, describeInterface(iid));
      return itf;
    }
    case ObjRefData::Kind::standard:
      break;
  }
  ApartmentImpl& here = requireCurrentApartment();
  RuntimeImpl& runtime = here.runtime();

  if (objref.oxid == here.oxid()) {
    // The exporter's own apartment: the real object. A normal packet is consumed all the same,
    // even when the object lacks `iid` ([MS-DCOM] 3.1.1.5.3).
    checkLocalIdentity(objref, runtime);
    uint32_t consumed = objref.publicRefs;
    // A claimed packet's references are this process's; an unrecorded one's are those of the
    // client that sent it back (in a served call's params), else in transit.
    ClientKey holder;
    if (objref.packetId != 0) {
      consumed = here.exports().claimPacket(claimOf(objref), 0, holder).publicRefs;
    } else if (threadState().marshalPeer != nullptr) {
      holder = *threadState().marshalPeer;
    }
    Ref<Interface> object = here.exports().tryFindObject(objref.oid);
    if (consumed > 0) {
      // The packet's connection ends without asking the object to close (COM's).
      Retired retired;
      if (here.exports().releaseRefs(objref.ipid, consumed, holder, retired, false) !=
          ExportTable::ReleaseOutcome::released) {
        FERRY_LOG(warn, "unmarshal in the exporter: packet references were not held");
      }
    }
    FERRY_REQUIRE(object != nullptr, Errc::objectNotRegistered,
                  "the object {} named by the OBJREF is no longer exported: it was released or "
                  "disconnected",
                  toString(objref.oid));
    void* itf = object->queryInterface(iid);
    FERRY_REQUIRE(itf != nullptr, Errc::noInterface, "the object does not implement {}",
                  describeInterface(iid));
    return itf;
  }

  // Another apartment: a proxy, through this apartment's link to the exporter.
  bool local = objref.processId == runtime.processId;
  std::shared_ptr<ApartmentImpl> exporter;
  if (local) {
    checkLocalIdentity(objref, runtime);
    exporter = runtime.tryFindApartment(objref.oxid);
    // A weak packet's object died with its apartment (objectNotRegistered, as for any weak
    // packet of a dead object); other packets went with it.
    FERRY_REQUIRE(exporter != nullptr || objref.packetId == 0,
                  objref.table == PacketKind::tableWeak ? Errc::objectNotRegistered
                                                        : Errc::objectNotConnected,
                  "the apartment that marshaled the object has shut down; marshal the object "
                  "again from a live apartment");
  }
  std::shared_ptr<ExporterLink> link =
      here.imports().linkFor(objref.oxid, [&] { return runtime.makeLink(here, objref); });
  uint32_t refs = objref.publicRefs;
  if (objref.packetId != 0) {
    // An explicitly marshaled packet is claimed at its exporter: directly in this process, by a
    // RemUnknown round trip in another.
    if (local) {
      refs = exporter->exports().claimPacket(claimOf(objref), kNormalPublicRefs, ClientKey{})
                 .publicRefs;
    } else {
      refs = link->claimPacket(claimOf(objref), kNormalPublicRefs);
    }
  }
  ImportTable::Import import{objref.oxid, objref.oid, objref.ipid, objref.iid, refs,
                             objref.noPing};
  if (objref.iid == Interface::iid) {
    // An identity packet: the proxy manager itself holds its references.
    Ref<Interface> identity = Ref<Interface>::adopt(here.imports().importIdentity(import, link));
    if (iid == Interface::iid) return identity.detach();
    void* itf = identity->queryInterface(iid);
    FERRY_REQUIRE(itf != nullptr, Errc::noInterface, "the object does not implement {}",
                  describeInterface(iid));
    return itf;
  }
  ProxyBase* proxy = here.imports().importInterface(import, link);
  if (iid == objref.iid) return proxy->interfacePointer();
  // Another interface was asked for: query it through the proxy's identity.
  Ref<ProxyBase> held = Ref<ProxyBase>::adopt(proxy);
  void* itf = proxy->manager().queryInterface(iid);
  FERRY_REQUIRE(itf != nullptr, Errc::noInterface, "the object does not implement {}",
                describeInterface(iid));
  return itf;
}

void releaseData(const ObjRefData& objref) {
  RuntimeImpl& runtime = currentRuntime();
  switch (objref.kind) {
    case ObjRefData::Kind::null:
    case ObjRefData::Kind::byValue:
      return;  // nothing is held
    case ObjRefData::Kind::custom: {
      RuntimeImpl::UnmarshalerEntry entry = runtime.findUnmarshaler(objref.unmarshalerClass);
      if (entry.release) entry.release(objref.data);
      return;
    }
    case ObjRefData::Kind::standard:
      break;
  }
  if (objref.packetId == 0 || objref.processId != runtime.processId) {
    // A packet of another process, or a proxy's onward packet: through a link to its exporter.
    ApartmentImpl& here = requireCurrentApartment();
    std::shared_ptr<ExporterLink> link =
        here.imports().linkFor(objref.oxid, [&] { return runtime.makeLink(here, objref); });
    if (objref.packetId != 0) {
      link->releasePacket(claimOf(objref));
    } else if (objref.publicRefs > 0) {
      link->release(objref.ipid, objref.publicRefs);
    }
    return;
  }
  std::shared_ptr<ApartmentImpl> exporter = runtime.tryFindApartment(objref.oxid);
  FERRY_REQUIRE(exporter != nullptr, Errc::objectNotConnected,
                "the apartment {} that marshaled the object has shut down, and its objects with it",
                toString(objref.oxid));
  checkLocalIdentity(objref, runtime);
  Retired retired = exporter->exports().releasePacket(claimOf(objref));
  if (retired.empty()) return;
  // The object's last reference went: release it in its own apartment.
  if (threadState().apartment == exporter.get()) return;  // `retired` releases it here
  auto task = makeTask([objects = std::move(retired)]() mutable { objects.clear(); });
  if (!exporter->post(task)) {
    FERRY_LOG(warn, "releaseMarshalData: the exporter closed; releasing on this thread");
  }
}

std::vector<void*> queryInterfacesErased(Interface* object, std::span<const Iid> iids) {
  if (ProxyManager* manager = asProxyManager(object)) return manager->queryInterfaces(iids);
  std::vector<void*> out;
  out.reserve(iids.size());
  for (Iid iid : iids) out.push_back(object->queryInterface(iid));
  return out;
}

void* unmarshalInterfaceErased(std::span<const uint8_t> objref, Iid iid) {
  return unmarshalData(decodeObjRef(objref), iid);
}

}  // namespace detail

ObjRefBytes marshalInterface(Interface* object, Iid iid, MarshalContext context,
                             MarshalFlags flags) {
  FERRY_REQUIRE(object != nullptr, Errc::invalidArgument,
                "marshalInterface needs an object and was given a null pointer");
  return detail::encodeObjRef(detail::marshalData(object, iid, context, flags));
}

std::string objRefToText(const ObjRefBytes& objref) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(objref.size() * 2);
  for (uint8_t b : objref) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

ObjRefBytes objRefFromText(std::string_view text) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  FERRY_REQUIRE(text.size() % 2 == 0 && text.size() <= 2 * detail::kMaxObjRefBytes,
                Errc::invalidObjRef,
                "the OBJREF text has {} characters; it must be an even number of hex digits, at "
                "most {} (the text ferry::objRefToText writes)",
                text.size(), 2 * detail::kMaxObjRefBytes);
  ObjRefBytes out(text.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = digit(text[2 * i]);
    int lo = digit(text[2 * i + 1]);
    FERRY_REQUIRE(hi >= 0 && lo >= 0, Errc::invalidObjRef,
                  "the OBJREF text has a character that is not a hex digit at position {} or {} "
                  "(counting from 0)",
                  2 * i, 2 * i + 1);
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string_view toString(ObjRefInfo::Kind kind) noexcept {
  switch (kind) {
    case ObjRefInfo::Kind::null:
      return "null";
    case ObjRefInfo::Kind::standard:
      return "standard";
    case ObjRefInfo::Kind::custom:
      return "custom";
    case ObjRefInfo::Kind::byValue:
      return "byValue";
  }
  return "unknown";
}

std::string toString(MarshalFlags flags) {
  std::string out = hasFlag(flags, MarshalFlags::tableStrong) ? "tableStrong"
                    : hasFlag(flags, MarshalFlags::tableWeak) ? "tableWeak"
                                                               : "normal";
  if (hasFlag(flags, MarshalFlags::noPing)) out += " noPing";
  return out;
}

ObjRefInfo decodeObjRef(std::span<const uint8_t> objref) {
  detail::ObjRefData d = detail::decodeObjRef(objref);
  ObjRefInfo out;
  out.kind = static_cast<ObjRefInfo::Kind>(d.kind);
  out.iid = d.iid;
  out.oxid = d.oxid;
  out.oid = d.oid;
  out.ipid = d.ipid;
  out.publicRefs = d.publicRefs;
  out.flags = d.table == detail::PacketKind::tableStrong ? MarshalFlags::tableStrong
              : d.table == detail::PacketKind::tableWeak ? MarshalFlags::tableWeak
                                                         : MarshalFlags::normal;
  if (d.noPing) out.flags = out.flags | MarshalFlags::noPing;
  out.packetId = d.packetId;
  out.hostId = d.hostId;
  out.processId = d.processId;
  for (const auto& b : d.bindings) out.bindings.push_back(detail::bindingText(b));
  for (const auto& b : d.securityBindings) out.securityBindings.push_back({b.provider, b.principal});
  out.unmarshalerClass = std::move(d.unmarshalerClass);
  out.dataSize = d.data.size();
  return out;
}

bool isProxy(Interface* object) noexcept { return detail::asProxyManager(object) != nullptr; }

std::string transportOf(Interface* object) {
  FERRY_REQUIRE(object != nullptr, Errc::invalidArgument,
                "transportOf needs an object or proxy and was given a null pointer");
  detail::ProxyManager* manager = detail::asProxyManager(object);
  if (manager == nullptr) return "direct";
  return manager->link()->channel().describe();
}

namespace {

// A new link for `manager`'s exporter, over `protseq` ("" by distance) at `least`.
void relink(detail::ProxyManager& manager, const std::string& protseq, SecurityLevel least) {
  std::shared_ptr<detail::ExporterLink> current = manager.link();
  detail::ObjRefData exporter;
  exporter.oxid = current->oxid();
  exporter.hostId = current->exporterHostId();
  exporter.processId = current->exporterProcessId();
  exporter.bindings = current->exporterBindings();
  manager.setLink(detail::currentRuntime().makeLink(manager.apartment(), exporter, protseq, least));
}

}  // namespace

void setTransport(Interface* object, const std::string& protseq) {
  detail::ProxyManager* manager = detail::asProxyManager(object);
  FERRY_REQUIRE(manager != nullptr, Errc::invalidArgument,
                "setTransport needs a proxy and was given the object itself, which is called "
                "directly and has no transport");
  relink(*manager, protseq, manager->link()->channel().blanket());
}

void setProxyBlanket(Interface* object, SecurityLevel least) {
  detail::ProxyManager* manager = detail::asProxyManager(object);
  FERRY_REQUIRE(manager != nullptr, Errc::invalidArgument,
                "setProxyBlanket needs a proxy and was given the object itself, which is called "
                "directly and has no connection to protect");
  FERRY_REQUIRE(manager->link()->channel().describe() != "inproc", Errc::invalidArgument,
                "setProxyBlanket was given a proxy to an apartment of this process, whose calls "
                "never leave it; call it on a proxy to another process");
  relink(*manager, "", least);
}

SecurityLevel queryProxyBlanket(Interface* object) {
  detail::ProxyManager* manager = detail::asProxyManager(object);
  FERRY_REQUIRE(manager != nullptr, Errc::invalidArgument,
                "queryProxyBlanket needs a proxy and was given the object itself");
  return manager->link()->channel().blanket();
}

void releaseMarshalData(std::span<const uint8_t> objref) {
  detail::releaseData(detail::decodeObjRef(objref));
}

}  // namespace ferry
