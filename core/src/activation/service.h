// Activation over the ORPC network (core/schema/activation.capnp), one per process, owned by the
// resolver service (which hands it frame kinds 19 to 21, link events and ticks):
//   - the client: asks a host's ferryd (or a process) for an instance of a class;
//   - the server: this process's class objects (registerClassObject), registered with its
//     ferryd as its apartments are, and the instances it creates for activation requests;
//   - in ferryd (RuntimeOptions::acceptRegistrations): the activator (activator.h).
// Who may activate: a request from the network (tcp, udp) below integrity is refused unless
// RuntimeOptions::allowInsecureActivation or this process listens on loopback only; then
// RuntimeOptions::activationCheck decides. Requests that ferryd forwards over a server's own
// connection to it were checked by ferryd.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <ferry/activation.h>

#include "../message.h"
#include "../orpc/frame.h"
#include "../orpc/network.h"

namespace ferry::detail {

class ApartmentImpl;
class ResolverService;
class RuntimeImpl;

namespace activation {
class Activator;
}

class ActivationService {
public:
  using LinkId = orpc::LinkId;

  ActivationService(RuntimeImpl& runtime, orpc::Network& network, ResolverService& resolver);
  ~ActivationService();

  // The client: an instance of `clsid` from the resolver at `binding` (a process, or ferryd),
  // as a normal OBJREF marshaled for `iid`. Waits in the calling apartment, bounded by the call
  // timeout; throws the error the reply carries, unavailable when `binding` cannot be reached.
  ObjRefBytes activate(const StringBindingData& binding, const std::string& clsid, Iid iid);

  // The server (any thread). Returns the registration's token.
  uint64_t registerClassObject(const std::string& clsid, ClassFactory factory, ClassUse use,
                               std::shared_ptr<ApartmentImpl> apartment);
  void revokeClassObject(uint64_t token) noexcept;
  // An instance from this process's own class object for `clsid`, if it has one (the caller
  // waits while the class object's apartment creates it).
  std::optional<ObjRefBytes> activateHere(const std::string& clsid, Iid iid);
  bool waitForExitRequest(std::chrono::milliseconds limit);

  // From the resolver service (network thread).
  void received(LinkId link, const orpc::LinkInfo& info, const orpc::FrameHeader& header,
                OrpcMessage message);
  // An ActivationReply: true when it answered a request of ferryd's activator.
  bool receivedReply(LinkId link, uint64_t callId, OrpcMessage& message);
  bool sendFailed(LinkId link, uint64_t callId, const std::string& why);
  // A new link to ferryd: registers every class object on it.
  void ferrydLinked(LinkId link);
  void ended(LinkId link, const orpc::LinkInfo& info);
  void tick(std::chrono::steady_clock::time_point now);

private:
  struct ClassObject {
    uint64_t token = 0;
    ClassFactory factory;
    ClassUse use = ClassUse::multipleUse;
    std::weak_ptr<ApartmentImpl> apartment;
  };
  // Why `info`'s requester may not activate `clsid`, or "".
  std::string refusal(const orpc::LinkInfo& info, const std::string& clsid) const;
  void serveActivation(LinkId link, const orpc::LinkInfo& info, uint64_t callId,
                       OrpcMessage message);
  // Creates the instance in the class object's apartment and answers on `link` (any thread).
  void instantiate(LinkId link, uint64_t callId, const std::string& clsid, Iid iid,
                   ClassObject object);
  // Takes `clsid`'s class object for one activation (a singleUse one is withdrawn), if any.
  std::optional<ClassObject> take(const std::string& clsid);
  void tellFerryd(std::vector<uint8_t> frame);

  RuntimeImpl& _runtime;
  orpc::Network& _network;
  ResolverService& _resolver;
  std::unique_ptr<activation::Activator> _activator;  // ferryd only

  mutable std::mutex _mutex;
  std::map<std::string, ClassObject> _classObjects;
  uint64_t _nextToken = 1;
  std::condition_variable _exitRequested;
  bool _exit = false;
};

}  // namespace ferry::detail
