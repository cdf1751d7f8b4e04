#include "service.h"

#include <kj/exception.h>

#include "../apartment-impl.h"
#include <ferry/error.h>

#include "../error-impl.h"
#include "../log.h"
#include "../orpc/call-table.h"
#include "../pending-call.h"
#include "../resolver/error-info.h"
#include "../resolver/names.h"
#include "../resolver/service.h"
#include "../runtime-impl.h"
#include "../security/providers.h"
#include "../stats.h"
#include "activation.capnp.h"
#include "activator.h"
#include "frames.h"

namespace ferry::detail {

using namespace activation;

ActivationService::ActivationService(RuntimeImpl& runtime, orpc::Network& network,
                                     ResolverService& resolver)
    : _runtime(runtime), _network(network), _resolver(resolver) {
  if (runtime.options.acceptRegistrations) _activator = std::make_unique<Activator>(runtime, network);
}

ActivationService::~ActivationService() = default;

// ---- the client --------------------------------------------------------------------------------

ObjRefBytes ActivationService::activate(const StringBindingData& binding, const std::string& clsid,
                                        Iid iid) {
  if (binding.protseq.empty()) {
    if (std::optional<ObjRefBytes> here = activateHere(clsid, iid)) return std::move(*here);
    FERRY_FAIL(Errc::classNotRegistered,
               "no class object for '{}' is registered in this process, and it registers with "
               "no ferryd (RuntimeOptions::resolver) to ask; start ferryd, or register the class "
               "(ferry::registerClassObject or Runtime::registerClass)",
               clsid);
  }
  uint64_t callId = orpc::CallTable::nextCallId();
  std::string key = bindingText(binding);
  std::unique_ptr<IncomingResponse> raw =
      _resolver.ask(&binding, callId, activateFrame(callId, clsid, iid.value));
  try {
    auto reply = raw->message().root<wire::ActivationReply>();
    if (reply.isError()) throwErrorInfo(reply.getError());
    FERRY_REQUIRE(reply.isObjref(), Errc::protocolError,
                  "the resolver at {} answered an activation with a reply of another kind; it "
                  "does not follow the protocol",
                  key);
    auto data = reply.getObjref();
    return ObjRefBytes(data.begin(), data.end());
  } catch (const kj::Exception& e) {
    FERRY_FAIL(Errc::protocolError,
               "the reply of the resolver at {} to an activation is not a valid Cap'n Proto "
               "message ({}); it does not follow the protocol",
               key, kjReason(e.getDescription().cStr()));
  }
}

// ---- the server --------------------------------------------------------------------------------

namespace {

ObjRefBytes createInstanceObjRef(const ClassFactory& factory, const std::string& clsid, Iid iid) {
  Ref<Interface> object = factory();
  FERRY_REQUIRE(object != nullptr, Errc::serverFault,
                "the factory registered for class '{}' returned a null object", clsid);
  return marshalInterface(object.get(), iid, MarshalContext::differentMachine, MarshalFlags::normal);
}

}  // namespace

uint64_t ActivationService::registerClassObject(const std::string& clsid, ClassFactory factory,
                                                ClassUse use,
                                                std::shared_ptr<ApartmentImpl> apartment) {
  uint64_t token = 0;
  {
    std::lock_guard lock(_mutex);
    FERRY_REQUIRE(_classObjects.count(clsid) == 0, Errc::nameInUse,
                  "this process already registered a class object for '{}'; revoke it first",
                  clsid);
    token = _nextToken++;
    _classObjects[clsid] = ClassObject{token, std::move(factory), use, apartment};
  }
  tellFerryd(classObjectFrame(clsid, use == ClassUse::singleUse, false));
  return token;
}

void ActivationService::revokeClassObject(uint64_t token) noexcept {
  std::string clsid;
  {
    std::lock_guard lock(_mutex);
    auto it = std::find_if(_classObjects.begin(), _classObjects.end(),
                           [&](const auto& entry) { return entry.second.token == token; });
    if (it == _classObjects.end()) return;  // revoked, or used (singleUse)
    clsid = it->first;
    _classObjects.erase(it);
  }
  try {
    tellFerryd(classObjectFrame(clsid, false, true));
  } catch (const std::exception& e) {
    FERRY_LOG(debug, "not told to ferryd: " << e.what());
  }
}

std::optional<ActivationService::ClassObject> ActivationService::take(const std::string& clsid) {
  ClassObject out;
  {
    std::lock_guard lock(_mutex);
    auto it = _classObjects.find(clsid);
    if (it == _classObjects.end()) return std::nullopt;
    out = it->second;
    if (out.use == ClassUse::multipleUse) return out;
    _classObjects.erase(it);
  }
  // A singleUse class object serves one activation.
  tellFerryd(classObjectFrame(clsid, false, true));
  return out;
}

std::optional<ObjRefBytes> ActivationService::activateHere(const std::string& clsid, Iid iid) {
  std::optional<ClassObject> object = take(clsid);
  if (!object) return std::nullopt;
  std::shared_ptr<ApartmentImpl> apartment = object->apartment.lock();
  FERRY_REQUIRE(apartment != nullptr, Errc::objectNotConnected,
                "the apartment that registered the class object for '{}' has shut down; revoke "
                "class objects before their apartment ends",
                clsid);
  return Apartment(apartment).invoke(
      [factory = object->factory, clsid, iid] { return createInstanceObjRef(factory, clsid, iid); });
}

void ActivationService::instantiate(LinkId link, uint64_t callId, const std::string& clsid,
                                    Iid iid, ClassObject object) {
  std::shared_ptr<ApartmentImpl> apartment = object.apartment.lock();
  orpc::Network& network = _network;
  auto answer = [&network, link](std::vector<uint8_t> frame) {
    try {
      network.post([&network, link, frame = std::move(frame)]() mutable {
        network.send(link, std::move(frame));
      });
    } catch (const Error& e) {
      FERRY_LOG(debug, "activation not answered: " << e.what());
    }
  };
  if (apartment == nullptr || apartment->closed()) {
    return answer(errorReplyFrame(
        callId, Errc::objectNotConnected,
        "the apartment that registered the class object for '" + clsid + "' has shut down"));
  }
  try {
    Apartment(apartment).post([answer, callId, clsid, iid, factory = std::move(object.factory)] {
      std::vector<uint8_t> frame;
      try {
        frame = objrefReplyFrame(callId, createInstanceObjRef(factory, clsid, iid));
      } catch (const Error& e) {
        frame = errorReplyFrame(callId, e.code(), e.message());
      } catch (const std::exception& e) {
        frame = errorReplyFrame(callId, Errc::serverFault,
                                "the factory of class '" + clsid + "' threw: " + e.what());
      }
      answer(std::move(frame));
    });
  } catch (const Error& e) {
    answer(errorReplyFrame(callId, e.code(), e.message()));
  }
}

bool ActivationService::waitForExitRequest(std::chrono::milliseconds limit) {
  std::unique_lock lock(_mutex);
  return _exitRequested.wait_for(lock, limit, [this] { return _exit; });
}

void ActivationService::tellFerryd(std::vector<uint8_t> frame) { _resolver.sendToFerryd(std::move(frame)); }

void ActivationService::ferrydLinked(LinkId link) {
  std::lock_guard lock(_mutex);
  for (const auto& [clsid, object] : _classObjects) {
    _network.send(link, classObjectFrame(clsid, object.use == ClassUse::singleUse, false));
  }
}

// ---- frames ------------------------------------------------------------------------------------

std::string ActivationService::refusal(const orpc::LinkInfo& info, const std::string& clsid) const {
  const RuntimeOptions& options = _runtime.options;
  if (info.distance == MarshalContext::differentMachine && info.level < SecurityLevel::integrity &&
      !options.allowInsecureActivation) {
    bool loopbackOnly = true;
    for (const std::string& address : options.listenAddresses) {
      loopbackOnly = loopbackOnly && security::isLoopbackAddress(address);
    }
    if (!loopbackOnly) {
      return "activation of '" + clsid + "' from the network needs at least integrity, and the " +
             "requester's connection has " + std::string(toString(info.level)) +
             "; configure a security provider at both ends (RuntimeOptions::security), or let "
             "the host activate for unauthenticated peers (RuntimeOptions::"
             "allowInsecureActivation; ferryd: insecure_activation = yes)";
    }
  }
  if (_activator != nullptr) {
    if (std::string why = _activator->refusal(info, clsid); !why.empty()) return why;
  }
  if (options.activationCheck) {
    ActivationRequester requester{clsid, ClientBlanket{info.provider, info.principal, info.level},
                                  info.hasCredentials, info.uid, info.pid};
    bool allowed = false;
    try {
      allowed = options.activationCheck(requester);
    } catch (const std::exception& e) {
      FERRY_LOG(warn, "the activation check threw, which refuses: " << e.what());
    }
    if (!allowed) {
      return "the activation check of this host (RuntimeOptions::activationCheck) refused to "
             "activate '" + clsid + "' for " +
             (info.principal.empty() ? std::string("an anonymous requester")
                                     : "principal '" + info.principal + "'");
    }
  }
  return "";
}

void ActivationService::received(LinkId link, const orpc::LinkInfo& info,
                                 const orpc::FrameHeader& header, OrpcMessage message) {
  if (header.kind == orpc::FrameKind::activation) {
    return serveActivation(link, info, header.callId, std::move(message));
  }
  // Frame kind 19: class objects are registered with ferryd by processes of its host.
  if (_activator == nullptr || !info.hasCredentials) {
    return _network.reject(link, "class objects are only registered with ferryd, over the pipe");
  }
  std::string clsid;
  bool singleUse = false;
  bool revoke = false;
  try {
    auto registration = message.root<wire::ClassObjectRegistration>();
    clsid = registration.getClsid().cStr();
    singleUse = registration.getSingleUse();
    revoke = registration.getRevoke();
  } catch (const kj::Exception& e) {
    return _network.reject(link, "malformed class object registration: " +
                                     std::string(kjReason(e.getDescription().cStr())));
  }
  if (*whyBadObjectName(clsid) != '\0') {
    return _network.reject(link, "a class object registration names an invalid class");
  }
  _activator->classObject(link, info.pid, clsid, singleUse, revoke);
}

void ActivationService::serveActivation(LinkId link, const orpc::LinkInfo& info, uint64_t callId,
                                        OrpcMessage message) {
  if (callId == 0) return _network.reject(link, "an activation request without a call id");
  bool fromFerryd = _resolver.isFerrydLink(link);
  try {
    auto request = message.root<wire::ActivationRequest>();
    switch (request.which()) {
      case wire::ActivationRequest::ACTIVATE: {
        std::string clsid = request.getActivate().getClsid().cStr();
        Iid iid(request.getActivate().getIid());
        if (const char* why = whyBadObjectName(clsid); *why != '\0') {
          stats().protocolErrors.fetch_add(1, std::memory_order_relaxed);
          return _network.send(link, errorReplyFrame(callId, Errc::invalidArgument,
                                                     "'" + clsid + "' is not a class name: " + why));
        }
        if (!fromFerryd) {
          std::string why = refusal(info, clsid);
          if (!why.empty()) {
            stats().callsDenied.fetch_add(1, std::memory_order_relaxed);
            FERRY_LOG(warn, "refused an activation of " << clsid << " (pid " << info.pid
                                                        << ", principal '" << info.principal
                                                        << "'): " << why);
            return _network.send(link, errorReplyFrame(callId, Errc::accessDenied, why));
          }
        }
        if (std::optional<ClassObject> object = take(clsid)) {
          return instantiate(link, callId, clsid, iid, std::move(*object));
        }
        if (_activator != nullptr) {
          return _activator->activate(link, callId, clsid, iid.value,
                                      std::chrono::steady_clock::now() +
                                          _runtime.options.callTimeout);
        }
        return _network.send(
            link, errorReplyFrame(callId, Errc::classNotRegistered,
                                  "no class object for '" + clsid +
                                      "' is registered in the process that was asked (it is not "
                                      "ferryd, which would launch a server); ask the host's "
                                      "ferryd, at port 7135"));
      }
      case wire::ActivationRequest::IDLE_QUERY:
      case wire::ActivationRequest::EXIT: {
        if (!fromFerryd) {
          return _network.send(link, errorReplyFrame(callId, Errc::accessDenied,
                                                     "only this process's ferryd asks it that"));
        }
        if (request.isIdleQuery()) {
          // COM's local-server rule: the objects whose references another process holds (or
          // the table holds for others), in every apartment.
          uint64_t objects = 0;
          for (const auto& apartment : _runtime.apartments()) {
            objects += apartment->exports().heldForOthers();
          }
          return _network.send(link, idleReplyFrame(callId, objects));
        }
        FERRY_LOG(info, "ferryd asks this process to exit: it held no references for others for "
                        "its class's idle timeout");
        {
          std::lock_guard lock(_mutex);
          _exit = true;
        }
        _exitRequested.notify_all();
        return _network.send(link, doneReplyFrame(callId));
      }
      default:
        stats().protocolErrors.fetch_add(1, std::memory_order_relaxed);
        return _network.send(link, errorReplyFrame(callId, Errc::protocolError,
                                                   "an activation request of an unknown kind"));
    }
  } catch (const kj::Exception& e) {
    return _network.reject(link, "bad activation request: " +
                                     std::string(kjReason(e.getDescription().cStr())));
  }
}

bool ActivationService::receivedReply(LinkId link, uint64_t callId, OrpcMessage& message) {
  return _activator != nullptr && _activator->reply(link, callId, message);
}

bool ActivationService::sendFailed(LinkId link, uint64_t callId, const std::string& why) {
  return _activator != nullptr && _activator->sendFailed(link, callId, why);
}

void ActivationService::ended(LinkId link, const orpc::LinkInfo&) {
  if (_activator != nullptr) _activator->ended(link);
}

void ActivationService::tick(std::chrono::steady_clock::time_point now) {
  if (_activator != nullptr) _activator->tick(now);
}

}  // namespace ferry::detail
