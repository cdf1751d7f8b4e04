// The resolver service of a process (core/schema/resolver.capnp) over the ORPC network:
//   - the embedded resolver: answers resolve requests for this process's apartments, and — in
//     ferryd — for the apartments other processes registered (registry.h);
//   - the resolver client: asks a resolver where an exporter listens;
//   - the registration of this process's apartments with its host's ferryd (registration.h),
//     again on every new connection, retried while ferryd is unreachable;
//   - named objects (resolver.capnp NameRequest): this process's own names, published with
//     ferryd as the apartments are; ferryd's (and, without a ferryd, this process's) answers to
//     lookups; the client's lookups.
// The ORPC endpoint hands it the resolver frames and the link events.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <ferry/naming.h>

#include "../orpc/frame.h"
#include "../orpc/network.h"
#include "registration.h"
#include "registry.h"
#include "resolution.h"

namespace ferry::detail {

class ActivationService;
class IncomingResponse;
class PendingCall;
class RuntimeImpl;

// A process registered with a ferryd, as its answer to NameRequest.processes gives it.
struct RegisteredProcessEntry {
  uint64_t processId = 0;
  uint32_t uid = 0;
  ObjRefBytes admin;  // empty: none, or not for the asker
  bool adminNetwork = false;
};

class ResolverService {
public:
  using LinkId = orpc::LinkId;

  ResolverService(RuntimeImpl& runtime, orpc::Network& network);
  ~ResolverService();

  // Asks the resolver at `binding` for `oxid`; waits in the calling apartment (bounded by the
  // call timeout). Throws objectNotRegistered for an unknown OXID, unavailable when the binding
  // cannot be reached, protocolError for a reply no resolver may send.
  Resolution resolve(const StringBindingData& binding, Oxid oxid);

  // Registers this process's apartments with the ferryd at `ferryd` from now on (call once,
  // before the first announce, when the network runs).
  void registerWith(StringBindingData ferryd);
  // Tells ferryd (if this process registers with one) about an apartment, or that it is gone.
  // Any thread.
  void announce(Oxid oxid, Ipid remUnknown);
  void withdraw(Oxid oxid);

  // Named objects. lookupName and listNames ask the resolver at `binding` and wait in the
  // calling apartment (bounded by the call timeout): objectNotRegistered for an unknown name,
  // unavailable when the binding cannot be reached.
  ObjRefBytes lookupName(const StringBindingData& binding, const std::string& name);
  std::vector<PublishedName> listNames(const StringBindingData& binding);
  // This process's names (any thread). publishName records `objref` under `name` and, when the
  // process registers with a ferryd, waits for ferryd's verdict: nameInUse when this process or
  // another already has the name (then nothing is recorded). withdrawName forgets it here and
  // at ferryd.
  void publishName(const std::string& name, const ObjRefBytes& objref);
  void withdrawName(const std::string& name);
  // This process's admin object (admin/admin.h), registered with ferryd as the apartments are
  // (any thread); `network`: it serves other hosts too.
  void registerAdmin(ObjRefBytes objref, bool network);
  // The processes registered with the ferryd at `binding` (`ferry ps`), waiting as listNames
  // does; unavailable for an empty binding (no ferryd).
  std::vector<RegisteredProcessEntry> listProcesses(const StringBindingData& binding);
  // The ferryd this process registers with: its pipe binding, or an empty protseq for none.
  const StringBindingData& ferryd() const noexcept { return _registration.ferryd(); }

  // What this process answers for one of its apartments.
  Resolution localResolution(Oxid oxid, Ipid remUnknown) const;

  // From the endpoint (network thread).
  void opened(LinkId link, const orpc::LinkInfo& info);
  void received(LinkId link, const orpc::LinkInfo& info, const orpc::FrameHeader& header,
                OrpcMessage message);
  // True when the frame was a resolve request of this service (it fails).
  bool sendFailed(LinkId link, uint64_t callId, const std::string& why);
  void ended(LinkId link, const orpc::LinkInfo& info, orpc::LinkEnd how, const std::string& why);
  void tick(std::chrono::steady_clock::time_point now);

  // ferryd's registry (network thread).
  const Registry& registry() const noexcept { return _registry; }

  // Activation (activation/service.h) rides on this service's links and its link to ferryd.
  ActivationService& activation() noexcept { return *_activation; }
  // Sends a oneway frame to ferryd if this process registers with one (any thread); a process
  // not linked to it yet links, which registers everything anew (connectFerryd).
  void sendToFerryd(std::vector<uint8_t> frame);
  // Network thread: whether `link` is this process's link to its ferryd.
  bool isFerrydLink(LinkId link) const noexcept { return _ferrydLink == link; }

private:
  friend class ActivationService;
  // Hands a reply to the request of this process waiting for it (ask()), if any.
  void deliverReply(LinkId link, uint64_t callId, OrpcMessage message);
  // Sends a request frame (call id `callId`) to `binding` — or over the link to ferryd when
  // `binding` is null — and waits for its reply in the calling apartment. Throws unavailable
  // when there is no link.
  std::unique_ptr<IncomingResponse> ask(const StringBindingData* binding, uint64_t callId,
                                        std::vector<uint8_t> frame);
  // A NameReply from `key`, checked: throws the error it carries, protocolError when it is
  // malformed or not of kind `expected`.
  template <class Read>
  auto readNameReply(IncomingResponse& raw, const std::string& key, Read read);
  void serveResolve(LinkId link, const orpc::LinkInfo& info, uint64_t callId, OrpcMessage message);
  std::string whyNotServed(const orpc::LinkInfo& info) const;
  void serveNames(LinkId link, const orpc::LinkInfo& info, uint64_t callId, OrpcMessage message);
  void acceptNameWithdrawal(LinkId link, const orpc::LinkInfo& info, OrpcMessage message);
  void acceptRegistration(LinkId link, const orpc::LinkInfo& info, OrpcMessage message, bool add);
  void acceptAdmin(LinkId link, const orpc::LinkInfo& info, OrpcMessage message);
  // Registration, on the network thread: records the apartment (remUnknown) or its withdrawal
  // (null) and tells ferryd if linked; links if not and no retry waits.
  void tell(Oxid oxid, const Ipid* remUnknown);
  // Links to ferryd and registers every announced apartment on the new link.
  void connectFerryd();
  // The link to ferryd closed or could not be made: warns (once until it is back) and schedules
  // connectFerryd.
  void ferrydLost(const std::string& why);

  RuntimeImpl& _runtime;
  orpc::Network& _network;
  Registry _registry;  // network thread

  // Resolve requests this process sent, by link and call id (network thread).
  std::unordered_map<LinkId, std::unordered_map<uint64_t, std::shared_ptr<PendingCall>>,
                     orpc::LinkIdHash>
      _resolves;

  // This process's registration (network thread, but for enabled(), written once before the
  // first announce): the link to ferryd while it is open, and when to try again.
  FerrydRegistration _registration;
  std::optional<LinkId> _ferrydLink;
  std::optional<std::chrono::steady_clock::time_point> _retryAt;

  // This process's names (any thread, under _namesMutex) and the publications sent to ferryd
  // again after a reconnection, by call id, whose refusal is only logged (network thread).
  mutable std::mutex _namesMutex;
  std::map<std::string, ObjRefBytes> _published;
  std::unordered_map<uint64_t, std::string> _republished;
  // This process's admin object for ferryd (under _namesMutex): its OBJREF (empty: none) and
  // whether it serves other hosts.
  ObjRefBytes _admin;
  bool _adminNetwork = false;

  std::unique_ptr<ActivationService> _activation;  // last: it uses the members above
};

}  // namespace ferry::detail
