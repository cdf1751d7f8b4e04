// The exporter table of one apartment: OID → stub manager (object identity, external references),
// IPID → interface stub, packet id → outstanding marshal packet.
//
// Reference economics (COM's, [MS-DCOM] 3.2.4.x):
//   * a stub manager holds its object strongly while it exists;
//   * strong external references come from normal packets (5 each, handed to the importer),
//     tableStrong entries (1 each, held by the table), addRefs, and lockObjectExternal;
//   * every strong reference has one holder, and the object's strong count is their sum:
//       - a client (ClientKey: the importing process's Request.caller and callerToken; the
//         default key is this process's own apartments). A client returns only what it holds,
//         so one importer cannot release the references of another ([MS-DCOM] 1.3.6's private
//         references, for every reference);
//       - the table: tableStrong entries, lockObjectExternal, and the references inside a
//         recorded packet not yet claimed. Never collected; released by the call that undoes
//         them;
//       - transit: references inside an OBJREF whose importer the exporter cannot name (an
//         interface pointer passed as a parameter of a call this process makes, a proxy's
//         onward packet made by a third process);
//   * attribution, when the references of an OBJREF become the importer's:
//       - a recorded packet (explicit marshaling): at claimPacket, to the claiming client;
//       - an interface pointer in the results of a served call: at once, to that call's caller
//         (the one process that will unmarshal it);
//       - addRefs and queryInterfaces: to the asking client;
//       - transit: at first use, as DCOM does: a client's releaseRefs takes from its own
//         account first, then from transit (the references it unmarshaled from such an OBJREF).
//         A release beyond both is refused whole, changes nothing and is counted
//         (RuntimeStats::releasesRefused);
//   * collection (dgc/ping-server.h): when a client's ping set expires, its accounts go as if it
//     had released them; on an object that another live ping set still names they move to
//     transit instead (that client holds references the dead one handed on to it).
//     Objects ever marshaled with noPing are never collected.
//   * tableWeak entries are counted apart and are not connections;
//   * when the strong count drops to zero the ExternalConnection hook is told, and the stub
//     manager retires (its stubs go and its reference on the object is released — on the
//     apartment's thread, by whoever called the method that dropped it; RemUnknown.release runs
//     there) unless a tableWeak entry is outstanding and the object has the hook or the
//     releaser asked not to close it (Wine's stub_manager_ext_release). The last weak entry's
//     release then retires it.
//
// Thread-safety: every method may be called from any thread (importers of the same process claim
// packets directly); a mutex guards the maps. Methods that may release an object return the
// reference instead, so it is released by the caller outside the lock (destructors may re-enter).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <ferry/generated.h>
#include <ferry/lifetime.h>
#include <ferry/marshal.h>
#include <ferry/object.h>

#include "objref.h"
#include "orpc/reply-cache.h"

namespace ferry {
class ExternalConnection;
}

namespace ferry::detail {

class ExportTable;

// Who holds references (see the top). Open to growing the caller's authenticated principal.
using ClientKey = orpc::CallerKey;
using ClientKeyHash = orpc::CallerKeyHash;

struct InterfaceStub {
  Ipid ipid;
  Iid iid;
  void* object = nullptr;  // what queryInterface(iid) returned; valid while the manager lives
  StubDispatch dispatch = nullptr;
};

class StubManager {
public:
  Oid oid;
  Ref<Interface> identity;
  ExternalConnection* externalConnection = nullptr;  // the object's optional hook
  std::unordered_map<Iid, InterfaceStub> stubs;
  // The sum of the holders' references (see the top).
  uint32_t strongRefs = 0;
  uint32_t weakEntries = 0;
  std::unordered_map<ClientKey, uint32_t, ClientKeyHash> clientRefs;  // no zero entries
  uint32_t transitRefs = 0;
  bool noPing = false;  // marshaled with noPing once: never collected
  // Exported by the runtime for itself (the admin object): never holds the process for others.
  bool runtimeOwn = false;
};

// An object's stub for one interface, held by a caller: keeps the object alive while held (a
// call's duration, or an apartment's RemUnknown for the apartment's life).
struct StubLease {
  Ref<Interface> keepAlive;
  void* object = nullptr;  // what queryInterface(iid) returned
  StubDispatch dispatch = nullptr;
  Iid iid;
};

// The stub of an object for `iid`, the one place a stub is made: the dispatcher registered for
// the interface (by the code capnpc-ferry generated) and the pointer queryInterface returns for
// it. `identity` is the object's identity and becomes the lease's keepAlive. Throws noInterface
// when no stub is registered for `iid` or the object does not implement it. Calls the object's
// queryInterface: never under a lock of ferry's.
StubLease makeStub(Ref<Interface> identity, Iid iid);

struct ExportedInterface {
  Oid oid;
  Ipid ipid;
  uint64_t packetId = 0;
  uint32_t publicRefs = 0;
};

// What the admin object shows of one exported object: a copy taken under the table's lock.
struct ExportedObjectView {
  Oid oid;
  const char* typeName = nullptr;  // typeid(identity).name(), mangled
  std::vector<Iid> interfaces;     // the IIDs it has stubs for
  uint32_t strongRefs = 0;
  uint32_t weakEntries = 0;
  uint32_t transitRefs = 0;
  uint32_t packets = 0;  // recorded packets not yet claimed or released (the table's entries)
  bool noPing = false;
  std::vector<std::pair<ClientKey, uint32_t>> clients;  // references by holder
};

// What an importer obtained by claiming a packet.
struct ClaimedPacket {
  Oid oid;
  Ipid ipid;
  uint32_t publicRefs = 0;  // strong references now owned by the importer
};

// Objects whose last strong reference went; release them outside any lock.
using Retired = std::vector<Ref<Interface>>;

class ExportTable {
public:
  ExportTable() = default;
  ExportTable(const ExportTable&) = delete;
  ~ExportTable();

  // Creates (or reuses) the stub manager of `object`'s identity and its stub for `iid`, and
  // records a packet of `kind`. normal: `normalRefs` strong references go into the packet;
  // tableStrong: one strong reference held by the table; tableWeak: a weak entry.
  // Throws noInterface when the object lacks `iid` or no stub is registered for it.
  // With `recordPacket` false (normal packets only) no record is kept and packetId is 0, and the
  // references go to `recipient`'s account when the importer is known, else to transit.
  ExportedInterface exportInterface(Interface* object, Iid iid, PacketKind kind,
                                    uint32_t normalRefs, bool noPing, bool recordPacket = true,
                                    const ClientKey* recipient = nullptr);

  // What an OBJREF says of its packet; checked against the exporter's record, so a packet whose
  // bytes were altered is refused (invalidObjRef) instead of consumed.
  struct PacketClaim {
    uint64_t packetId;
    Oid oid;
    Ipid ipid;
    Iid iid;
    PacketKind kind;
    uint32_t publicRefs;
    bool noPing;
  };

  // Importer side of unmarshal: normal packets are consumed (their references pass to the
  // importer); table packets give `tableRefs` new strong references. A tableWeak packet whose
  // entry was released still works while its object is exported (COM's). Errors:
  // objectNotConnected (unknown or consumed packet), invalidObjRef (the OBJREF disagrees with
  // the record), objectNotRegistered (a tableWeak packet whose object retired or is unknown).
  // The references go to `claimer`'s account.
  ClaimedPacket claimPacket(const PacketClaim& claim, uint32_t tableRefs,
                            const ClientKey& claimer);

  // A table packet for an object already exported here, made on behalf of an importer that
  // table-marshals its proxy (the GIT does). Throws objectNotRegistered for an unknown IPID.
  ExportedInterface addTablePacket(Ipid ipid, Iid iid, PacketKind kind, bool noPing);

  // releaseMarshalData: drops the packet and what it holds.
  [[nodiscard]] Retired releasePacket(const PacketClaim& claim);

  // RemUnknown.addRefs for one entry, to `client`'s account: objectNotRegistered for an unknown
  // IPID.
  void addRefs(Ipid ipid, uint32_t refs, const ClientKey& client);
  // RemUnknown.releaseRefs for one entry, from `client`'s account, then from transit (see the
  // top). Nothing changes unless the outcome is `released`. An unknown IPID is normal after
  // disconnectObject or apartment teardown (the importer cannot know); releasing more than the
  // client holds is refused (notHeld). References are counted per object: any IPID of the
  // object releases them. `lastReleaseCloses` goes to the hook.
  enum class ReleaseOutcome : uint8_t { released, unknownIpid, notHeld };
  [[nodiscard]] ReleaseOutcome releaseRefs(Ipid ipid, uint32_t refs, const ClientKey& client,
                                           Retired& retired, bool lastReleaseCloses = true);

  // RemUnknown.queryInterfaces for one IID: the IPID of the stub, with `refs` strong references
  // transferred to `client`. Throws noInterface / objectNotRegistered.
  Ipid queryInterface(Ipid anyIpidOfObject, Iid iid, uint32_t refs, const ClientKey& client);

  // RemUnknown.handOn for one entry: `refs` of `client`'s references on the object go to transit.
  // False (nothing changes) when the client holds fewer or the IPID is unknown.
  bool handOn(Ipid ipid, uint32_t refs, const ClientKey& client);

  // Distributed GC: `client` stopped pinging. Its accounts go as if it had released them, except
  // on objects marshaled with noPing; on an object `stillPinged(oid)` says another client names,
  // they move to transit. Returns how many references went.
  [[nodiscard]] uint64_t collectClient(const ClientKey& client,
                                       const std::function<bool(Oid)>& stillPinged,
                                       Retired& retired);
  // Distributed GC: the object's transit references go (the last ping set naming it expired).
  // Not on objects marshaled with noPing. Returns how many went.
  [[nodiscard]] uint32_t dropTransit(Oid oid, Retired& retired);
  // The references `client` holds on the object (for tests).
  uint32_t clientRefs(Interface* object, const ClientKey& client);

  // A stub for a call; nullopt when the IPID is unknown (released or disconnected).
  std::optional<StubLease> tryAcquireStub(Ipid ipid);

  // Same-apartment unmarshal: the object of a live stub manager.
  Ref<Interface> tryFindObject(Oid oid);

  // lockObjectExternal: adds or removes one strong reference without a proxy.
  void lockExternal(Interface* object, bool lock, bool lastUnlockReleases, Retired& retired);

  // disconnectObject: every stub of the object goes, every external reference is dropped (the
  // hook is not told), packets naming it are dropped. Calls already running keep the object.
  [[nodiscard]] Retired disconnect(Interface* object);

  // Apartment teardown: everything goes; objects with strong references left are told
  // releaseConnection(false).
  [[nodiscard]] Retired clear();

  // Live stub managers (for tests and stats).
  size_t size();
  // The objects that hold this process for another (COM's local-server rule: ferryd asks an
  // activated server whether it is idle): those with strong references held by anyone other
  // than this process's own apartments — another process's account, transit, the table
  // (tableStrong entries, lockObjectExternal, unclaimed packets). Weak entries and the
  // runtime's own objects (markRuntimeOwn) do not count.
  size_t heldForOthers();
  // Marks the object's stub manager as the runtime's own (the admin object). No-op when the
  // object is not exported here.
  void markRuntimeOwn(Interface* object);
  // Every live stub manager, for the admin object.
  std::vector<ExportedObjectView> view();
  // The object's stub manager as ferry::externalReferences reports it.
  ExternalReferences externalReferences(Interface* object);
  // Strong references and weak entries of an object's stub manager (0, 0 if none): for tests.
  std::pair<uint32_t, uint32_t> refCounts(Interface* object);
  std::pair<uint32_t, uint32_t> refCounts(Oid oid);

private:
  struct Packet {
    Oid oid;
    Ipid ipid;
    Iid iid;
    PacketKind kind;
    uint32_t refs;
    bool noPing;
  };

  // The record of `claim`'s packet, checked against it. Throws.
  std::unordered_map<uint64_t, Packet>::iterator findPacketLocked(const PacketClaim& claim);

  StubManager* findByIdentityLocked(Interface* identity);
  StubManager* findByIpidLocked(Ipid ipid);
  // The stub manager of the object, created (with a fresh OID) when it has none: the one place a
  // stub manager is made.
  StubManager& managerOfLocked(const Ref<Interface>& identity);
  // Adds `refs` held by `client` (null: the table's or a packet's).
  void addStrongLocked(StubManager& manager, uint32_t refs, const ClientKey* client = nullptr);
  // Drops `refs` strong references; when none remain, tells the hook and retires the manager
  // (see the rule at the top).
  void dropStrongLocked(StubManager& manager, uint32_t refs, Retired& retired,
                        bool lastReleaseCloses = true);
  // Without telling the hook.
  void retireLocked(StubManager& manager, Retired& retired);

  std::mutex _mutex;
  std::unordered_map<Interface*, std::unique_ptr<StubManager>> _byIdentity;
  std::unordered_map<Oid, StubManager*> _byOid;
  struct IpidEntry {
    StubManager* manager;
    InterfaceStub* stub;  // a node of manager->stubs: stable until the manager retires
  };
  std::unordered_map<Ipid, IpidEntry> _byIpid;
  std::unordered_map<uint64_t, Packet> _packets;
  // Released tableWeak packets of live objects: copies of their bytes still unmarshal (COM's).
  // An entry goes when its object retires.
  std::unordered_map<uint64_t, Packet> _releasedWeak;
};

}  // namespace ferry::detail
