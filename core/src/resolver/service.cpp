#include "service.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <capnp/message.h>
#include <kj/exception.h>

#include "../error-impl.h"
#include "../apartment-impl.h"
#include "../log.h"
#include "../orpc/call-table.h"
#include "../pending-call.h"
#include "../runtime-impl.h"
#include "../thread-state.h"

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
    : _runtime(runtime), _network(network) {}

Resolution ResolverService::localResolution(Oxid oxid, Ipid remUnknown) const {
  return Resolution{oxid, remUnknown, _network.bindings(), _runtime.processId, _runtime.hostId};
}

// ---- the client --------------------------------------------------------------------------------

Resolution ResolverService::resolve(const StringBindingData& binding, Oxid oxid) {
  ApartmentImpl* current = threadState().apartment;
  ApartmentImpl& home = current != nullptr ? *current : static_cast<ApartmentImpl&>(_runtime.mta());
  auto pending = std::make_shared<PendingCall>(home.shared_from_this(), callDeadline(), CausalityId());
  uint64_t callId = orpc::CallTable::nextCallId();
  capnp::MallocMessageBuilder request(16);
  request.initRoot<wire::ResolveRequest>().setOxid(oxid.value);
  std::vector<uint8_t> frame = encodeFrame(FrameKind::resolve, callId, Oxid(), request);
  std::string key = bindingText(binding);
  _network.post([this, key, binding, callId, pending, frame = std::move(frame)]() mutable {
    std::string why;
    std::optional<LinkId> link = _network.linkTo(binding, &why);
    if (!link) {
      pending->fail(Errc::unavailable, "cannot connect to " + key + ": " + why);
      return;
    }
    _resolves[*link][callId] = pending;
    _network.send(*link, std::move(frame));
  });
  if (!pending->done()) home.wait(*pending);
  std::unique_ptr<IncomingResponse> raw = pending->takeRaw();
  try {
    auto reply = raw->message().root<wire::ResolveReply>();
    if (reply.isError()) {
      uint16_t code = reply.getError().getCode();
      Errc errc = isKnownErrc(code) && code != 0 ? static_cast<Errc>(code) : Errc::protocolError;
      throw Error(errc, std::string(reply.getError().getMessage().cStr()));
    }
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

bool ResolverService::sendFailed(LinkId link, uint64_t callId, const std::string& why) {
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

void ResolverService::received(LinkId link, const orpc::LinkInfo& info,
                               const orpc::FrameHeader& header, OrpcMessage message) {
  switch (header.kind) {
    case FrameKind::resolve:
      return serveResolve(link, header.callId, std::move(message));
    case FrameKind::resolveReply: {
      auto l = _resolves.find(link);
      if (l == _resolves.end()) return;
      auto r = l->second.find(header.callId);
      if (r == l->second.end()) return;
      auto pending = std::move(r->second);
      l->second.erase(r);
      pending->deliverReceived(std::make_unique<IncomingResponse>(std::move(message)));
      return;
    }
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

void ResolverService::serveResolve(LinkId link, uint64_t callId, OrpcMessage message) {
  capnp::MallocMessageBuilder reply(128);
  auto root = reply.initRoot<wire::ResolveReply>();
  try {
    Oxid oxid(message.root<wire::ResolveRequest>().getOxid());
    std::shared_ptr<ApartmentImpl> apartment = oxid ? _runtime.tryFindApartment(oxid) : nullptr;
    if (apartment != nullptr) {
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
  if (info.outbound && (how == orpc::LinkEnd::neverOpened || how == orpc::LinkEnd::lost)) {
    // The exporters resolved to this binding may be gone: they are resolved again.
    _runtime.resolutions().invalidateBinding(info.binding);
  }
  // ferryd forgets what a closed link registered.
  _registry.forget(link);
  if (auto l = _resolves.find(link); l != _resolves.end()) {
    auto pending = std::move(l->second);
    _resolves.erase(l);
    for (auto& [id, call] : pending) call->fail(Errc::unavailable, why);
  }
  if (_ferrydLink == link) {
    _ferrydLink.reset();
    if (how != orpc::LinkEnd::shutdown) {
      ferrydLost(how == orpc::LinkEnd::neverOpened ? why : "it closed the connection");
    }
  }
}

void ResolverService::tick(std::chrono::steady_clock::time_point now) {
  if (_retryAt && now >= *_retryAt) {
    _retryAt.reset();
    connectFerryd();
  }
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
