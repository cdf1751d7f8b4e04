#include "service.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <capnp/message.h>
#include <kj/exception.h>

#include "../activation/service.h"
#include "../error-impl.h"
#include "../apartment-impl.h"
#include "../log.h"
#include "../objref.h"
#include "../orpc/call-table.h"
#include "../pending-call.h"
#include "../runtime-impl.h"
#include "../security/providers.h"
#include "../stats.h"
#include "../thread-state.h"
#include "error-info.h"
#include "names.h"

namespace ferry::detail {

using orpc::FrameKind;
using orpc::encodeFrame;

namespace {

std::vector<uint8_t> registrationFrame(const Resolution& resolution) {
  capnp::MallocMessageBuilder message(256);
  writeResolution(message.initRoot<wire::Registration>().initResolution(), resolution);
  return encodeFrame(FrameKind::registration, 0, Oxid(), message);
}

std::vector<uint8_t> withdrawalFrame(Oxid oxid) {
  capnp::MallocMessageBuilder message(16);
  message.initRoot<wire::ResolveRequest>().setOxid(oxid.value);
  return encodeFrame(FrameKind::withdrawal, 0, Oxid(), message);
}

}  // namespace

ResolverService::ResolverService(RuntimeImpl& runtime, orpc::Network& network)
    : _runtime(runtime),
      _network(network),
      _activation(std::make_unique<ActivationService>(runtime, network, *this)) {}

ResolverService::~ResolverService() = default;

Resolution ResolverService::localResolution(Oxid oxid, Ipid remUnknown) const {
  return Resolution{oxid, remUnknown, _network.bindings(), _runtime.processId, _runtime.hostId};
}

// ---- the client --------------------------------------------------------------------------------

std::unique_ptr<IncomingResponse> ResolverService::ask(const StringBindingData* binding,
                                                       uint64_t callId,
                                                       std::vector<uint8_t> frame) {
  ApartmentImpl* current = threadState().apartment;
  ApartmentImpl& home = current != nullptr ? *current : static_cast<ApartmentImpl&>(_runtime.mta());
  auto pending = std::make_shared<PendingCall>(home.shared_from_this(), callDeadline(), CausalityId());
  std::optional<StringBindingData> to;
  if (binding != nullptr) to = *binding;
  _network.post([this, to = std::move(to), callId, pending, frame = std::move(frame)]() mutable {
    // A process that announced nothing yet has not linked to ferryd.
    if (!to && !_ferrydLink && !_retryAt && _registration.enabled()) connectFerryd();
    std::optional<LinkId> link = _ferrydLink;
    std::string why = "this process is not connected to ferryd at " + _registration.key();
    if (to) link = _network.linkTo(*to, &why);
    if (!link) {
      pending->fail(Errc::unavailable,
                    "cannot connect to " + (to ? bindingText(*to) : _registration.key()) + ": " + why);
      return;
    }
    _resolves[*link][callId] = pending;
    _network.send(*link, std::move(frame));
  });
  if (!pending->done()) home.wait(*pending);
  return pending->takeRaw();
}

Resolution ResolverService::resolve(const StringBindingData& binding, Oxid oxid) {
  uint64_t callId = orpc::CallTable::nextCallId();
  capnp::MallocMessageBuilder request(16);
  request.initRoot<wire::ResolveRequest>().setOxid(oxid.value);
  std::string key = bindingText(binding);
  std::unique_ptr<IncomingResponse> raw =
      ask(&binding, callId, encodeFrame(FrameKind::resolve, callId, Oxid(), request));
  try {
    auto reply = raw->message().root<wire::ResolveReply>();
    if (reply.isError()) throwErrorInfo(reply.getError());
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

// ---- named objects: the client -----------------------------------------------------------------

template <class Read>
auto ResolverService::readNameReply(IncomingResponse& raw, const std::string& key, Read read) {
  try {
    auto reply = raw.message().root<wire::NameReply>();
    if (reply.isError()) throwErrorInfo(reply.getError());
    return read(reply);
  } catch (const kj::Exception& e) {
    FERRY_FAIL(Errc::protocolError,
               "the reply of the resolver at {} to a named-object request is not a valid Cap'n "
               "Proto message ({}); it does not follow the protocol",
               key, kjReason(e.getDescription().cStr()));
  }
}

namespace {

std::vector<uint8_t> nameRequestFrame(uint64_t callId, const std::function<void(wire::NameRequest::Builder)>& fill) {
  capnp::MallocMessageBuilder message(64);
  fill(message.initRoot<wire::NameRequest>());
  return encodeFrame(FrameKind::names, callId, Oxid(), message);
}

std::vector<uint8_t> publicationFrame(uint64_t callId, const std::string& name,
                                      const ObjRefBytes& objref) {
  return nameRequestFrame(callId, [&](wire::NameRequest::Builder request) {
    auto publication = request.initPublish();
    publication.setName(name);
    publication.setObjref(capnp::Data::Reader(objref.data(), objref.size()));
  });
}

std::vector<uint8_t> adminFrame(const ObjRefBytes& objref, bool network) {
  capnp::MallocMessageBuilder message(64);
  auto root = message.initRoot<wire::AdminRegistration>();
  root.setObjref(capnp::Data::Reader(objref.data(), objref.size()));
  root.setNetwork(network);
  return encodeFrame(FrameKind::adminRegistration, 0, Oxid(), message);
}

[[noreturn]] void failUnexpectedReply(const std::string& key) {
  FERRY_FAIL(Errc::protocolError,
             "the resolver at {} answered a named-object request with a reply of another kind; "
             "it does not follow the protocol",
             key);
}

}  // namespace

ObjRefBytes ResolverService::lookupName(const StringBindingData& binding, const std::string& name) {
  if (binding.protseq.empty()) {
    std::lock_guard lock(_namesMutex);
    auto it = _published.find(name);
    FERRY_REQUIRE(it != _published.end(), Errc::objectNotRegistered,
                  "no object is published under the name '{}' in this process, and it "
                  "registers with no ferryd (RuntimeOptions::resolver) to ask",
                  name);
    return it->second;
  }
  uint64_t callId = orpc::CallTable::nextCallId();
  std::string key = bindingText(binding);
  std::unique_ptr<IncomingResponse> raw = ask(
      &binding, callId,
      nameRequestFrame(callId, [&](wire::NameRequest::Builder r) { r.setLookup(name); }));
  return readNameReply(*raw, key, [&](wire::NameReply::Reader reply) {
    if (!reply.isObjref()) failUnexpectedReply(key);
    auto data = reply.getObjref();
    return ObjRefBytes(data.begin(), data.end());
  });
}

std::vector<PublishedName> ResolverService::listNames(const StringBindingData& binding) {
  if (binding.protseq.empty()) {
    std::vector<PublishedName> out;
    std::lock_guard lock(_namesMutex);
    for (const auto& [name, objref] : _published) out.push_back({name, _runtime.processId});
    return out;
  }
  uint64_t callId = orpc::CallTable::nextCallId();
  std::string key = bindingText(binding);
  std::unique_ptr<IncomingResponse> raw = ask(
      &binding, callId,
      nameRequestFrame(callId, [&](wire::NameRequest::Builder r) { r.setList(); }));
  return readNameReply(*raw, key, [&](wire::NameReply::Reader reply) {
    if (!reply.isNames()) failUnexpectedReply(key);
    std::vector<PublishedName> out;
    for (auto entry : reply.getNames()) {
      out.push_back({std::string(entry.getName().cStr()), entry.getProcessId()});
    }
    return out;
  });
}

std::vector<RegisteredProcessEntry> ResolverService::listProcesses(
    const StringBindingData& binding) {
  FERRY_REQUIRE(!binding.protseq.empty(), Errc::unavailable,
                "this process registers with no ferryd (RuntimeOptions::resolver) to ask which "
                "processes run on this host");
  uint64_t callId = orpc::CallTable::nextCallId();
  std::string key = bindingText(binding);
  std::unique_ptr<IncomingResponse> raw = ask(
      &binding, callId,
      nameRequestFrame(callId, [&](wire::NameRequest::Builder r) { r.setProcesses(); }));
  return readNameReply(*raw, key, [&](wire::NameReply::Reader reply) {
    if (!reply.isProcesses()) failUnexpectedReply(key);
    std::vector<RegisteredProcessEntry> out;
    for (auto entry : reply.getProcesses()) {
      auto admin = entry.getAdmin();
      out.push_back({entry.getProcessId(), entry.getUid(), ObjRefBytes(admin.begin(), admin.end()),
                     entry.getAdminNetwork()});
    }
    return out;
  });
}

void ResolverService::registerAdmin(ObjRefBytes objref, bool network) {
  std::vector<uint8_t> frame = adminFrame(objref, network);
  {
    std::lock_guard lock(_namesMutex);
    _admin = std::move(objref);
    _adminNetwork = network;
  }
  sendToFerryd(std::move(frame));
}

void ResolverService::publishName(const std::string& name, const ObjRefBytes& objref) {
  {
    std::lock_guard lock(_namesMutex);
    FERRY_REQUIRE(_published.emplace(name, objref).second, Errc::nameInUse,
                  "this process already published an object under the name '{}'; revoke that "
                  "publication first, or choose another name",
                  name);
  }
  if (!_registration.enabled()) return;
  uint64_t callId = orpc::CallTable::nextCallId();
  try {
    std::unique_ptr<IncomingResponse> raw =
        ask(nullptr, callId, publicationFrame(callId, name, objref));
    readNameReply(*raw, _registration.key(), [&](wire::NameReply::Reader reply) {
      if (!reply.isPublished()) failUnexpectedReply(_registration.key());
      return 0;
    });
  } catch (const Error& e) {
    if (e.code() == Errc::unavailable) {
      // ferryd is down: the name is registered with the apartments when it is back.
      FERRY_LOG(info, "published '" << name << "' in this process only for now: " << e.message());
      return;
    }
    std::lock_guard lock(_namesMutex);
    _published.erase(name);
    throw;
  }
}

void ResolverService::withdrawName(const std::string& name) {
  {
    std::lock_guard lock(_namesMutex);
    if (_published.erase(name) == 0) return;
  }
  if (!_registration.enabled()) return;
  capnp::MallocMessageBuilder message(32);
  message.initRoot<wire::NameWithdrawal>().setName(name);
  std::vector<uint8_t> frame = encodeFrame(FrameKind::nameWithdrawal, 0, Oxid(), message);
  try {
    _network.post([this, frame = std::move(frame)]() mutable {
      if (_ferrydLink) _network.send(*_ferrydLink, std::move(frame));
    });
  } catch (const Error& e) {
    FERRY_LOG(debug, "not told to ferryd: " << e.what());
  }
}

void ResolverService::sendToFerryd(std::vector<uint8_t> frame) {
  if (!_registration.enabled()) return;
  try {
    _network.post([this, frame = std::move(frame)]() mutable {
      // connectFerryd registers everything there is, this included.
      if (!_ferrydLink && !_retryAt) return connectFerryd();
      if (_ferrydLink) _network.send(*_ferrydLink, std::move(frame));
    });
  } catch (const Error& e) {
    FERRY_LOG(debug, "not told to ferryd: " << e.what());
  }
}

bool ResolverService::sendFailed(LinkId link, uint64_t callId, const std::string& why) {
  if (_activation->sendFailed(link, callId, why)) return true;
  auto l = _resolves.find(link);
  if (l == _resolves.end()) return false;
  auto r = l->second.find(callId);
  if (r == l->second.end()) return false;
  auto pending = std::move(r->second);
  l->second.erase(r);
  pending->fail(Errc::unavailable, why);
  return true;
}

// ---- frames ------------------------------------------------------------------------------------

// Why this process does not answer a resolve or lookup that came over `info`'s link ("" when it
// does): resolutions are served like calls, at the process's minimum level or above, and also
// to a caller of this host the kernel identifies (the pipe), as registrations are.
std::string ResolverService::whyNotServed(const orpc::LinkInfo& info) const {
  SecurityLevel minimum = security::effectiveMinimum(_runtime.options);
  if (info.level >= minimum || info.hasCredentials) return "";
  return "this resolver answers at level " + std::string(toString(minimum)) +
         " or above, and the connection runs at " + std::string(toString(info.level)) +
         ": configure a security provider it runs in RuntimeOptions::security, or lower its "
         "minimum (RuntimeOptions::minimumLevel; ferryd: its security and minimum_level settings)";
}

void ResolverService::received(LinkId link, const orpc::LinkInfo& info,
                               const orpc::FrameHeader& header, OrpcMessage message) {
  switch (header.kind) {
    case FrameKind::resolve:
      return serveResolve(link, info, header.callId, std::move(message));
    case FrameKind::names:
      return serveNames(link, info, header.callId, std::move(message));
    case FrameKind::nameWithdrawal:
      if (!_runtime.options.acceptRegistrations || !info.hasCredentials) {
        return _network.reject(link, "names are only withdrawn at ferryd, over the pipe");
      }
      return acceptNameWithdrawal(link, info, std::move(message));
    case FrameKind::namesReply:
      if (auto r = _republished.find(header.callId); r != _republished.end()) {
        std::string name = std::move(r->second);
        _republished.erase(r);
        try {
          auto reply = message.root<wire::NameReply>();
          if (reply.isError()) {
            FERRY_LOG(warn, "ferryd at " << _registration.key() << " refused the name '" << name
                                         << "' again: " << reply.getError().getMessage().cStr()
                                         << "; this process still answers lookups for it itself");
          }
        } catch (const kj::Exception&) {
        }
        return;
      }
      return deliverReply(link, header.callId, std::move(message));
    case FrameKind::resolveReply:
      return deliverReply(link, header.callId, std::move(message));
    case FrameKind::classObject:
    case FrameKind::activation:
      return _activation->received(link, info, header, std::move(message));
    case FrameKind::activationReply:
      if (_activation->receivedReply(link, header.callId, message)) return;
      return deliverReply(link, header.callId, std::move(message));
    case FrameKind::adminRegistration:
      if (!_runtime.options.acceptRegistrations || !info.hasCredentials) {
        return _network.reject(link,
                               "admin objects are only registered with ferryd, over the pipe");
      }
      return acceptAdmin(link, info, std::move(message));
    case FrameKind::registration:
    case FrameKind::withdrawal:
      // Registrations come from processes of this host over a transport that carries the
      // kernel's credentials of the sender (the pipe), and only ferryd takes them.
      if (!_runtime.options.acceptRegistrations || !info.hasCredentials) {
        return _network.reject(link, "registrations are only taken by ferryd, over the pipe");
      }
      return acceptRegistration(link, info, std::move(message),
                                header.kind == FrameKind::registration);
    default:
      return;
  }
}

void ResolverService::deliverReply(LinkId link, uint64_t callId, OrpcMessage message) {
  auto l = _resolves.find(link);
  if (l == _resolves.end()) return;
  auto r = l->second.find(callId);
  if (r == l->second.end()) return;
  auto pending = std::move(r->second);
  l->second.erase(r);
  pending->deliverReceived(std::make_unique<IncomingResponse>(std::move(message)));
}

void ResolverService::serveResolve(LinkId link, const orpc::LinkInfo& info, uint64_t callId,
                                   OrpcMessage message) {
  capnp::MallocMessageBuilder reply(128);
  auto root = reply.initRoot<wire::ResolveReply>();
  try {
    Oxid oxid(message.root<wire::ResolveRequest>().getOxid());
    std::string refusal = whyNotServed(info);
    std::shared_ptr<ApartmentImpl> apartment = oxid ? _runtime.tryFindApartment(oxid) : nullptr;
    if (!refusal.empty()) {
      writeError(root.initError(), Errc::accessDenied, refusal);
    } else if (apartment != nullptr) {
      writeResolution(root.initResolution(), localResolution(oxid, apartment->remUnknownIpid()));
    } else if (const Resolution* registered = _registry.find(oxid)) {
      writeResolution(root.initResolution(), *registered);
    } else {
      writeError(root.initError(), Errc::objectNotRegistered,
                 "unknown OXID " + toString(oxid) + ": no such apartment in this process");
    }
  } catch (const kj::Exception& e) {
    return _network.reject(link, "bad resolve request: " +
                                     std::string(kjReason(e.getDescription().cStr())));
  }
  _network.send(link, encodeFrame(FrameKind::resolveReply, callId, Oxid(), reply));
}

void ResolverService::serveNames(LinkId link, const orpc::LinkInfo& info, uint64_t callId,
                                 OrpcMessage message) {
  if (callId == 0) return _network.reject(link, "a named-object request without a call id");
  capnp::MallocMessageBuilder reply(128);
  auto root = reply.initRoot<wire::NameReply>();
  try {
    auto request = message.root<wire::NameRequest>();
    if (request.which() != wire::NameRequest::PUBLISH) {
      if (std::string refusal = whyNotServed(info); !refusal.empty()) {
        writeError(root.initError(), Errc::accessDenied, refusal);
        return _network.send(link, encodeFrame(FrameKind::namesReply, callId, Oxid(), reply));
      }
    }
    switch (request.which()) {
      case wire::NameRequest::LOOKUP: {
        std::string name = request.getLookup().cStr();
        std::optional<ObjRefBytes> found;
        {
          std::lock_guard lock(_namesMutex);
          if (auto it = _published.find(name); it != _published.end()) found = it->second;
        }
        if (!found) {
          if (const Registry::Name* entry = _registry.findName(name)) found = entry->objref;
        }
        if (found) {
          root.setObjref(capnp::Data::Reader(found->data(), found->size()));
        } else {
          writeError(root.initError(), Errc::objectNotRegistered,
                     "no object is published under the name '" + name + "' on this host");
        }
        break;
      }
      case wire::NameRequest::LIST: {
        std::map<std::string, uint64_t> all;
        for (const auto& [name, entry] : _registry.names()) all[name] = entry.processId;
        {
          std::lock_guard lock(_namesMutex);
          for (const auto& [name, objref] : _published) all[name] = _runtime.processId;
        }
        auto names = root.initNames(static_cast<unsigned>(std::min<size_t>(all.size(), 65536)));
        unsigned i = 0;
        for (const auto& [name, processId] : all) {
          if (i == names.size()) break;
          names[i].setName(name);
          names[i++].setProcessId(processId);
        }
        break;
      }
      case wire::NameRequest::PROCESSES: {
        std::vector<Registry::Process> all = _registry.processes();
        auto list =
            root.initProcesses(static_cast<unsigned>(std::min<size_t>(all.size(), 65536)));
        for (unsigned i = 0; i < list.size(); ++i) {
          const Registry::Process& p = all[i];
          list[i].setProcessId(p.processId);
          list[i].setUid(p.registrant.uid);
          if (p.admin == nullptr) continue;
          list[i].setAdminNetwork(p.admin->network);
          // The OBJREF goes to whoever the process serves: its own user (and root) on this
          // host, anyone when it serves other hosts (where its own check still applies).
          bool sameUser = info.hasCredentials && (info.uid == 0 || info.uid == p.registrant.uid);
          if (sameUser || p.admin->network) {
            list[i].setAdmin(capnp::Data::Reader(p.admin->objref.data(), p.admin->objref.size()));
          }
        }
        break;
      }
      case wire::NameRequest::PUBLISH: {
        // Publications come from processes of this host over a transport that carries the
        // kernel's credentials of the sender (the pipe), and only ferryd takes them.
        if (!_runtime.options.acceptRegistrations || !info.hasCredentials) {
          writeError(root.initError(), Errc::accessDenied,
                     "objects are published with ferryd, over its pipe, by processes of its host");
          break;
        }
        auto publication = request.getPublish();
        std::string name = publication.getName().cStr();
        auto data = publication.getObjref();
        std::string why = whyBadObjectName(name);
        if (why.empty() && data.size() > 65536) why = "its OBJREF is larger than 64 KiB";
        uint64_t processId = 0;
        if (why.empty()) {
          try {
            processId = decodeObjRef(std::span<const uint8_t>(data.begin(), data.size())).processId;
          } catch (const Error& e) {
            why = "its OBJREF is malformed: " + e.message();
          }
        }
        if (!why.empty()) {
          stats().protocolErrors.fetch_add(1, std::memory_order_relaxed);
          writeError(root.initError(), Errc::invalidArgument,
                     "cannot publish the name '" + name + "': " + why);
          break;
        }
        Registry::Registrant registrant{link, info.hasCredentials, info.uid, info.pid};
        Registry::Name entry{ObjRefBytes(data.begin(), data.end()), processId, registrant};
        int32_t ownerPid = 0;
        if (const Registry::Name* owner = _registry.findName(name)) ownerPid = owner->registrant.pid;
        if (_registry.publish(name, std::move(entry)) == Registry::Outcome::refused) {
          FERRY_LOG(warn, "ferryd: refused the name '" << name << "' to pid " << info.pid
                                                        << ": pid " << ownerPid
                                                        << " published it first");
          writeError(root.initError(), Errc::nameInUse,
                     "the name '" + name + "' is published by process " +
                         std::to_string(ownerPid) +
                         " on this host; it must revoke it (or exit) first, or choose another "
                         "name");
        } else {
          root.setPublished();
        }
        break;
      }
      default:
        stats().protocolErrors.fetch_add(1, std::memory_order_relaxed);
        writeError(root.initError(), Errc::protocolError,
                   "a named-object request of a kind this resolver does not know");
        break;
    }
  } catch (const kj::Exception& e) {
    return _network.reject(link, "bad named-object request: " +
                                     std::string(kjReason(e.getDescription().cStr())));
  }
  _network.send(link, encodeFrame(FrameKind::namesReply, callId, Oxid(), reply));
}

void ResolverService::acceptNameWithdrawal(LinkId link, const orpc::LinkInfo& info,
                                           OrpcMessage message) {
  std::string name;
  try {
    name = message.root<wire::NameWithdrawal>().getName().cStr();
  } catch (const kj::Exception& e) {
    return _network.reject(link, "malformed name withdrawal: " +
                                     std::string(kjReason(e.getDescription().cStr())));
  }
  Registry::Registrant registrant{link, info.hasCredentials, info.uid, info.pid};
  if (_registry.withdrawName(name, registrant) == Registry::Outcome::refused) {
    FERRY_LOG(warn, "ferryd: refused to withdraw the name '"
                        << name << "' for pid " << info.pid
                        << ": only the process that published it may");
  }
}

void ResolverService::acceptAdmin(LinkId link, const orpc::LinkInfo& info,
                                  OrpcMessage message) {
  Registry::Admin admin;
  try {
    auto root = message.root<wire::AdminRegistration>();
    auto objref = root.getObjref();
    admin.objref.assign(objref.begin(), objref.end());
    admin.network = root.getNetwork();
    if (!admin.objref.empty()) admin.processId = decodeObjRef(admin.objref).processId;
  } catch (const kj::Exception& e) {
    return _network.reject(link, "malformed admin registration: " +
                                     std::string(kjReason(e.getDescription().cStr())));
  } catch (const Error& e) {
    return _network.reject(link, "malformed admin registration: " + e.message());
  }
  uint64_t pid = admin.processId >> 32;
  if (!admin.objref.empty() && pid != static_cast<uint32_t>(info.pid)) {
    stats().registrationsRefused.fetch_add(1, std::memory_order_relaxed);
    FERRY_LOG(warn, "ferryd: refused the admin object of process " << pid << " from pid "
                        << info.pid << ": a process registers only its own");
    return;
  }
  admin.registrant = Registry::Registrant{link, info.hasCredentials, info.uid, info.pid};
  _registry.setAdmin(std::move(admin));
}

void ResolverService::acceptRegistration(LinkId link, const orpc::LinkInfo& info,
                                         OrpcMessage message, bool add) {
  Resolution resolution;
  try {
    if (add) {
      resolution = readResolution(message.root<wire::Registration>().getResolution());
    } else {
      resolution.oxid = Oxid(message.root<wire::ResolveRequest>().getOxid());
    }
  } catch (const kj::Exception& e) {
    return _network.reject(link, "malformed registration: " +
                                     std::string(kjReason(e.getDescription().cStr())));
  } catch (const Error& e) {
    return _network.reject(link, "malformed registration: " + e.message());
  }
  Oxid oxid = resolution.oxid;
  Registry::Registrant registrant{link, info.hasCredentials, info.uid, info.pid};
  Registry::Registrant owner;
  if (const Registry::Registrant* o = _registry.owner(oxid)) owner = *o;
  Registry::Outcome outcome =
      add ? _registry.add(std::move(resolution), registrant) : _registry.withdraw(oxid, registrant);
  if (outcome == Registry::Outcome::refused) {
    FERRY_LOG(warn, "ferryd: refused to " << (add ? "replace" : "withdraw")
                        << " the registration of OXID " << toString(oxid) << " (pid " << owner.pid
                        << ", uid " << owner.uid << ") for pid " << info.pid << ", uid " << info.uid
                        << ": only the registering process may change it");
  } else if (outcome == Registry::Outcome::added) {
    FERRY_LOG(debug, "ferryd: registered " << toString(oxid) << " for pid " << info.pid);
  }
}

// ---- links -------------------------------------------------------------------------------------

void ResolverService::opened(LinkId link, const orpc::LinkInfo&) {
  if (_ferrydLink == link && _registration.reached()) {
    FERRY_LOG(info, "ferryd at " << _registration.key() << " is back; registered "
                                 << _registration.announced().size()
                                 << " apartments with it again");
  }
}

void ResolverService::ended(LinkId link, const orpc::LinkInfo& info, orpc::LinkEnd how,
                            const std::string& why) {
  if (info.outbound && (how == orpc::LinkEnd::neverOpened || how == orpc::LinkEnd::lost ||
                        how == orpc::LinkEnd::silent)) {
    // The exporters resolved to this binding may be gone: they are resolved again.
    _runtime.resolutions().invalidateBinding(info.binding);
  }
  // ferryd forgets what a closed link registered.
  _registry.forget(link);
  _activation->ended(link, info);
  if (auto l = _resolves.find(link); l != _resolves.end()) {
    auto pending = std::move(l->second);
    _resolves.erase(l);
    for (auto& [id, call] : pending) call->fail(Errc::unavailable, why);
  }
  if (_ferrydLink == link) {
    _ferrydLink.reset();
    _republished.clear();
    if (how != orpc::LinkEnd::shutdown) {
      ferrydLost(how == orpc::LinkEnd::neverOpened || how == orpc::LinkEnd::silent
                     ? why
                     : "it closed the connection");
    }
  }
}

void ResolverService::tick(std::chrono::steady_clock::time_point now) {
  if (_retryAt && now >= *_retryAt) {
    _retryAt.reset();
    connectFerryd();
  }
  _activation->tick(now);
}

// ---- registration with ferryd ------------------------------------------------------------------

void ResolverService::registerWith(StringBindingData ferryd) {
  _registration = FerrydRegistration(std::move(ferryd));
  if (_registration.enabled()) {
    FERRY_LOG(info, "registering apartments with ferryd at " << _registration.key());
  }
}

void ResolverService::announce(Oxid oxid, Ipid remUnknown) {
  if (!_registration.enabled()) return;
  try {
    _network.post([this, oxid, remUnknown] { tell(oxid, &remUnknown); });
  } catch (const Error& e) {
    FERRY_LOG(debug, "not told to ferryd: " << e.what());
  }
}

void ResolverService::withdraw(Oxid oxid) {
  if (!_registration.enabled()) return;
  try {
    _network.post([this, oxid] { tell(oxid, nullptr); });
  } catch (const Error& e) {
    FERRY_LOG(debug, "not told to ferryd: " << e.what());
  }
}

void ResolverService::tell(Oxid oxid, const Ipid* remUnknown) {
  if (remUnknown != nullptr) {
    _registration.announce(oxid, *remUnknown);
  } else if (!_registration.withdraw(oxid)) {
    return;
  }
  // While ferryd is unreachable the retry registers what is announced by then.
  if (_retryAt) return;
  if (!_ferrydLink) return connectFerryd();
  _network.send(*_ferrydLink, remUnknown != nullptr
                                  ? registrationFrame(localResolution(oxid, *remUnknown))
                                  : withdrawalFrame(oxid));
}

void ResolverService::connectFerryd() {
  if (_network.stopping()) return;
  // Checked first so that a ferryd that is not running costs no connect attempt (and no log line
  // from the transport) per retry.
  const StringBindingData& ferryd = _registration.ferryd();
  std::string path = ferryd.address + "/" + ferryd.endpoint;
  if (access(path.c_str(), F_OK) != 0) {
    return ferrydLost("its socket " + path + " does not exist: " + std::strerror(errno));
  }
  std::string why;
  std::optional<LinkId> link = _network.linkTo(ferryd, &why);
  if (!link) return ferrydLost(why);
  _ferrydLink = link;
  for (auto& [oxid, ipid] : _registration.announced()) {
    _network.send(*link, registrationFrame(localResolution(oxid, ipid)));
  }
  _activation->ferrydLinked(*link);
  std::lock_guard lock(_namesMutex);
  for (const auto& [name, objref] : _published) {
    uint64_t callId = orpc::CallTable::nextCallId();
    _republished[callId] = name;
    _network.send(*link, publicationFrame(callId, name, objref));
  }
  if (!_admin.empty()) _network.send(*link, adminFrame(_admin, _adminNetwork));
}

void ResolverService::ferrydLost(const std::string& why) {
  if (_network.stopping() || _retryAt) return;
  bool firstTime = false;
  uint64_t delay = _registration.lost(firstTime);
  if (firstTime) {
    FERRY_LOG(warn, "ferryd at " << _registration.key() << " is not reachable (" << why
                                 << "); this process answers resolve requests for its own "
                                    "apartments and registers them with ferryd when it is back");
  } else {
    FERRY_LOG(debug, "ferryd at " << _registration.key() << " is still not reachable (" << why
                                  << "); next attempt in " << delay << " ms");
  }
  _retryAt = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay);
}

}  // namespace ferry::detail
