// The importer side of one apartment: proxy managers (one per imported object identity) and the
// links to the exporters they talk to.
//
// Reference rules (COM's, [MS-DCOM] 3.2.4.4):
//   * each interface proxy caches public references it received (from OBJREFs or RemUnknown);
//   * addRef/release on a proxy are local; only the last release of an interface proxy sends a
//     remote release of its cached references (batched per exporter, oneway);
//   * a proxy manager lives while any of its interface proxies or identity references live;
//   * the identity holds public references of its own (COM's IUnknown of a proxy manager): those
//     of an identity packet (one marshaled as Interface::iid), and those of the last interface
//     proxy when it goes while identity references remain. They are returned when the manager
//     goes. References count per object at the exporter, so they may name any IPID of it.
//
// Locking: one mutex per apartment's import table guards the maps, the managers' interface maps
// and every count transition through zero. Counts above one move lock-free.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include <ferry/generated.h>

#include "export-table.h"
#include "objref.h"

namespace ferry::detail {

class ApartmentImpl;
class Channel;
namespace dgc {
class PingSet;
}
class ImportTable;

struct ProxyInit {
  ProxyManager* manager;
  Iid iid;
  Ipid ipid;
};

struct QiOutcome {
  Errc code = Errc::ok;
  Ipid ipid;
};

// One importing apartment's route to one exporter: the channel and the exporter's RemUnknown.
class ExporterLink : public std::enable_shared_from_this<ExporterLink> {
public:
  // Where the exporter is, as its OBJREFs say; handed on when a proxy is marshaled onward.
  struct Address {
    std::array<uint8_t, 16> hostId{};
    uint64_t processId = 0;
    std::vector<StringBindingData> bindings;
  };

  ExporterLink(ApartmentImpl& importer, Oxid oxid, Address address,
               std::shared_ptr<Channel> channel, Ipid remUnknownIpid);
  ~ExporterLink();

  Oxid oxid() const noexcept { return _oxid; }
  Channel& channel() const noexcept { return *_channel; }
  const std::array<uint8_t, 16>& exporterHostId() const noexcept { return _address.hostId; }
  uint64_t exporterProcessId() const noexcept { return _address.processId; }
  const std::vector<StringBindingData>& exporterBindings() const noexcept {
    return _address.bindings;
  }

  // Synchronous RemUnknown calls; the caller must be in the importing apartment.
  std::vector<QiOutcome> queryInterfaces(Ipid ipid, std::span<const Iid> iids, uint32_t refs);
  void addRefs(Ipid ipid, uint32_t refs);
  // RemUnknown.claimPacket / releasePacket for a packet of this exporter. Throw the exporter's
  // error. claimPacket returns the references now owned by the caller.
  uint32_t claimPacket(const ExportTable::PacketClaim& claim, uint32_t tableRefs);
  void releasePacket(const ExportTable::PacketClaim& claim);
  // Returns references (oneway; any thread; never throws — failures are counted and logged).
  // Releases are batched: those made before the importing apartment's next turn travel in one
  // message.
  void release(Ipid ipid, uint32_t refs) noexcept;
  // Sends the pending batch now.
  void flushReleases() noexcept;
  // RemUnknown.handOn (oneway; never throws): `refs` of this apartment's references went into an
  // OBJREF for another process.
  void handOn(Ipid ipid, uint32_t refs) noexcept;

private:
  struct PendingEntry {
    Ipid ipid;
    uint32_t refs;
  };
  // RemUnknown.releaseRefs or handOn (by `methodId`), in batches.
  void sendReleases(std::vector<PendingEntry> entries, uint16_t methodId) noexcept;

  ApartmentImpl& _importer;
  const Oxid _oxid;
  const Address _address;
  const std::shared_ptr<Channel> _channel;
  const Ipid _remUnknownIpid;
  std::mutex _batchMutex;
  std::vector<PendingEntry> _batch;
  bool _flushScheduled = false;
};

// The identity of an imported object in one apartment.
class ProxyManager final : public Interface {
public:
  // Joins the ping set of the exporter's process unless `noPing` or the exporter is in process.
  ProxyManager(ImportTable& table, ApartmentImpl& apartment, std::shared_ptr<ExporterLink> link,
               Oid oid, bool noPing);
  ~ProxyManager() override;

  uint32_t addRef() noexcept override;
  uint32_t release() noexcept override;
  // Answered locally for interfaces already held, otherwise by the exporter's RemUnknown.
  void* queryInterface(Iid iid) override;

  ApartmentImpl& apartment() const noexcept { return _apartment; }
  // The route to the exporter. A copy: setLink may replace it meanwhile.
  std::shared_ptr<ExporterLink> link() const;
  // Routes this proxy's later calls (and releases) through another link (a per-proxy transport
  // override). The caller must be in the proxy's apartment.
  void setLink(std::shared_ptr<ExporterLink> link);
  Oid oid() const noexcept { return _oid; }
  bool disconnected() const noexcept { return _disconnected.load(std::memory_order_acquire); }
  // The exporter released this process's references to the object (distributed GC).
  bool collected() const noexcept;
  // Throws unless the calling thread may use the proxy: objectNotConnected once its apartment
  // tore it down or the exporter collected it (distributed GC), wrongApartment outside its
  // apartment (a thread in no apartment included).
  void checkUsable() const;

  // Queries several interfaces in one round trip; returns an addRef'd pointer per IID (null for
  // the ones the object lacks).
  std::vector<void*> queryInterfaces(std::span<const Iid> iids);

  // Hands `refs` of the interface's cached public references to a packet being marshaled
  // (normal flags): half of the cache, topped up with a remote addRefs first when fewer than two
  // remain. Acquires the interface first when it is not held; Interface::iid takes from the
  // identity's own references. Returns {ipid, refs}.
  std::pair<Ipid, uint32_t> takeRefsForMarshal(Iid iid);

  struct PendingRelease {
    std::shared_ptr<ExporterLink> link;
    Ipid ipid;
    uint32_t refs;
  };
  // Client-side teardown, under the table lock: later calls fail with objectNotConnected; the
  // cached references are collected into `toReturn`, to be returned outside the lock.
  void disconnectLocked(std::vector<PendingRelease>& toReturn) noexcept;

private:
  friend class ImportTable;
  friend class ProxyBase;

  struct Entry {
    ProxyBase* proxy;
    uint32_t publicRefs;
  };

  // Under the table lock: adds `refs` to the interface's cache, creating its proxy if needed.
  // Returns the addRef'd interface pointer. Throws noInterface when no proxy is registered.
  void* addInterfaceLocked(Iid iid, Ipid ipid, uint32_t refs);
  // The final release of an interface proxy (count reaches zero under the lock).
  uint32_t releaseInterfaceProxy(ProxyBase& proxy) noexcept;
  // The identity's references for Interface::iid packets: {ipid, refs}.
  std::pair<Ipid, uint32_t> takeIdentityRefsForMarshal();
  // Any IPID of the object this manager holds, or a null one. Under the table lock.
  Ipid anyIpidLocked() const noexcept;
  // Called with the table lock held when the manager is about to be destroyed: what the
  // identity holds, to be returned outside the lock.
  uint32_t takeIdentityRefsLocked() noexcept { return std::exchange(_identityPublicRefs, 0); }
  bool unusedLocked() const noexcept { return _identityRefs == 0 && _interfaces.empty(); }
  // Whether the references it holds are still its own to return: not after a disconnect, nor
  // after the exporter collected them.
  bool returnsReferences() const noexcept { return !disconnected() && !collected(); }
  // Leaves the table's map, unless a newer manager of the object replaced it there.
  void forgetLocked() noexcept;

  ImportTable& _table;
  ApartmentImpl& _apartment;
  // A proxy may outlive its apartment's teardown (user code holds it): the apartment object,
  // whose import table this manager uses, lives until the manager goes.
  const std::shared_ptr<ApartmentImpl> _keepApartment;
  std::shared_ptr<ExporterLink> _link;  // guarded by the table lock
  const Oxid _oxid;
  const Oid _oid;
  std::atomic<bool> _disconnected{false};
  // The ping set that keeps the object alive at its exporter (null: not pinged).
  std::shared_ptr<dgc::PingSet> _pingSet;
  std::atomic<uint32_t> _identityRefs{0};
  std::unordered_map<Iid, Entry> _interfaces;  // guarded by the table lock
  // The identity's own public references and the IPID they are held on (see the top). Guarded
  // by the table lock.
  Ipid _identityIpid;
  uint32_t _identityPublicRefs = 0;
};

// What the admin object shows of one imported object (a proxy manager).
struct ImportedObjectView {
  Oxid oxid;
  Oid oid;
  std::vector<std::pair<Iid, uint32_t>> interfaces;  // interface proxies, cached public refs
  bool disconnected = false;
};

class ImportTable {
public:
  explicit ImportTable(ApartmentImpl& apartment) : _apartment(apartment) {}
  ImportTable(const ImportTable&) = delete;
  ~ImportTable();

  struct Import {
    Oxid oxid;
    Oid oid;
    Ipid ipid;
    Iid iid;
    uint32_t publicRefs;  // owned by the caller until this call takes them over
    bool noPing = false;  // the OBJREF's: the object is not pinged (dgc/ping-client.h)
  };

  // Gives the apartment a proxy for the interface, reusing the object's proxy manager if any.
  // Takes over `publicRefs` (returned to the exporter on failure). Returns the addRef'd
  // interface proxy for `iid`. `makeLink` is asked for the exporter link when this
  // apartment has none for the OXID yet.
  ProxyBase* importInterface(const Import& import, const std::shared_ptr<ExporterLink>& link);
  // The same for an identity packet (import.iid is Interface::iid): returns the addRef'd proxy
  // manager, which takes over the references.
  ProxyManager* importIdentity(const Import& import, const std::shared_ptr<ExporterLink>& link);

  // This apartment's link to exporter `oxid`, made with `makeLink` the first time.
  std::shared_ptr<ExporterLink> linkFor(Oxid oxid,
                                        const std::function<std::shared_ptr<ExporterLink>()>& makeLink);

  // Client-side teardown of the apartment.
  void disconnectAll() noexcept;

  size_t size();
  // Every proxy manager, for the admin object.
  std::vector<ImportedObjectView> view();
  std::mutex& mutex() noexcept { return _mutex; }

private:
  friend class ProxyManager;

  // The proxy manager for the import's object, made if needed. Under the lock. Throws
  // shuttingDown (returning the import's references) once the apartment closed.
  ProxyManager& managerForLocked(const Import& import, const std::shared_ptr<ExporterLink>& link);

  struct Key {
    Oxid oxid;
    Oid oid;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept {
      return std::hash<uint64_t>{}(k.oxid.value ^ (k.oid.value * 0x9e3779b97f4a7c15ull));
    }
  };

  ApartmentImpl& _apartment;
  std::mutex _mutex;
  std::unordered_map<Key, ProxyManager*, KeyHash> _managers;
  std::unordered_map<Oxid, std::weak_ptr<ExporterLink>> _links;
};

}  // namespace ferry::detail
