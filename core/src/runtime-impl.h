// The process-wide state behind ferry::Runtime.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <ferry/runtime.h>

#include "apartment-impl.h"
#include "objref.h"
#include "pending-call.h"
#include "resolver/cache.h"

namespace ferry::detail {

class ExporterLink;
class TransportHub;
namespace orpc {
class BindLayer;
class Endpoint;
}
namespace security {
class Providers;
}

// 16 bytes naming this host as its network sees it: the machine id (else the kernel's boot id)
// mixed with the network namespace. Processes of one kernel and one network namespace agree;
// other machines, and other namespaces of this one, differ. Throws unavailable when neither file
// holds an id.
std::array<uint8_t, 16> readHostId(const char* machineIdPath, const char* bootIdPath);

class RuntimeImpl {
public:
  explicit RuntimeImpl(RuntimeOptions options);
  ~RuntimeImpl();

  const RuntimeOptions options;
  // readHostId() of /etc/machine-id and /proc/sys/kernel/random/boot_id.
  const std::array<uint8_t, 16> hostId;
  // pid << 32 | 32 random bits.
  const uint64_t processId;

  MtaImpl& mta() noexcept { return *_mta; }
  GlobalInterfaceTable& git() noexcept { return _git; }
  DeadlineWatch& deadlines() noexcept { return *_deadlines; }
  std::shared_ptr<MtaImpl> mtaShared() noexcept { return _mta; }

  // The apartment registry: in-process importers find exporters here.
  void registerApartment(const std::shared_ptr<ApartmentImpl>& apartment);
  void unregisterApartment(Oxid oxid) noexcept;
  std::shared_ptr<ApartmentImpl> tryFindApartment(Oxid oxid);
  // Every registered apartment still alive.
  std::vector<std::shared_ptr<ApartmentImpl>> apartments();

  // Spawned STA threads, stopped and joined at shutdown.
  std::shared_ptr<StaImpl> spawnSta(std::string name);
  // The STA that hosts `apartment`-model classes activated from the MTA; created on first use.
  std::shared_ptr<StaImpl> hostSta();

  // A link from `importer` to the exporter an OBJREF names: the in-process channel for this
  // process's apartments; otherwise the exporter is resolved (cached) and the cheapest transport
  // for the distance is chosen, unless `protseq` (or RuntimeOptions::preferredTransport) names
  // one.
  // `least` (a proxy's blanket): the connection asks for at least that level.
  std::shared_ptr<ExporterLink> makeLink(ApartmentImpl& importer, const ObjRefData& objref,
                                         const std::string& protseq = "",
                                         SecurityLevel least = SecurityLevel::none);

  // The bindings of the resolver at `host` (an address, or a name looked up within the call
  // timeout) and `port` that this process can use: tcp, then udp, unless
  // RuntimeOptions::preferredTransport names one.
  std::vector<StringBindingData> resolversOf(const std::string& host, const std::string& port);

  // Where this process listens (empty when no transport runs).
  std::vector<StringBindingData> bindings() const;
  // The transports (null until the constructor made them; not running in an in-process runtime)
  // and the ORPC endpoint over them.
  TransportHub* hub() noexcept { return _hub.get(); }
  orpc::Endpoint* endpoint() noexcept { return _endpoint.get(); }
  // The resolutions this process asked for (resolver/cache.h).
  ResolverCache& resolutions() noexcept { return _resolutions; }

  struct ClassEntry {
    ThreadingModel model;
    ClassFactory factory;
  };
  struct UnmarshalerEntry {
    Runtime::Unmarshaler unmarshal;
    Runtime::CustomRelease release;
  };
  void registerUnmarshaler(std::string name, UnmarshalerEntry entry);
  // Throws classNotRegistered.
  UnmarshalerEntry findUnmarshaler(const std::string& name);

  void registerClass(const Clsid& clsid, ThreadingModel model, ClassFactory factory);
  void revokeClass(const Clsid& clsid);
  ClassEntry findClass(const Clsid& clsid);

  // Stops every spawned STA and the MTA; joins their threads.
  void shutdown() noexcept;

private:
  std::mutex _mutex;
  GlobalInterfaceTable _git;
  std::unique_ptr<DeadlineWatch> _deadlines;
  std::shared_ptr<MtaImpl> _mta;
  std::unordered_map<Oxid, std::weak_ptr<ApartmentImpl>> _apartments;
  std::vector<std::shared_ptr<StaImpl>> _spawned;
  std::shared_ptr<StaImpl> _hostSta;
  std::unordered_map<std::string, ClassEntry> _classes;
  std::unordered_map<std::string, UnmarshalerEntry> _unmarshalers;
  std::unique_ptr<TransportHub> _hub;
  std::unique_ptr<security::Providers> _providers;  // RuntimeOptions::security, loaded
  std::unique_ptr<orpc::BindLayer> _bind;           // between the endpoint and the hub
  std::unique_ptr<orpc::Endpoint> _endpoint;  // after _hub and _bind: goes first
  ResolverCache _resolutions;

  Resolution resolveCached(const ObjRefData& objref, MarshalContext distance);
  bool _shutDown = false;
};

// The live runtime, or null.
RuntimeImpl* tryCurrentRuntime() noexcept;
RuntimeImpl& currentRuntime();

// Stops a spawned STA and joins its thread (idempotent).
void stopSpawnedSta(StaImpl& sta) noexcept;

}  // namespace ferry::detail
