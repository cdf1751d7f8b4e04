#include "channel.h"

#include "log.h"
#include "marshal-impl.h"
#include "message.h"
#include "stats.h"

namespace ferry::detail {

namespace {

// A request queued to the target apartment.
class CallItem final : public WorkItem {
public:
  CallItem(std::shared_ptr<ApartmentImpl> target, std::unique_ptr<OutgoingRequest> request,
           Deadline deadline, std::shared_ptr<ReplySink> replyTo)
      : WorkItem(Kind::call),
        _target(std::move(target)),
        _request(std::move(request->message)),
        _deadline(deadline),
        _replyTo(std::move(replyTo)) {
    auto root = _request.root();
    auto c = root.getCausality();
    causality = CausalityId(c.getHi(), c.getLo());
    interfaceId = root.getInterfaceId();
    methodId = root.getMethodId();
    internal = Ipid(root.getIpid().getHi(), root.getIpid().getLo()) == _target->remUnknownIpid();
  }

  void run() noexcept override {
    _target->serve(_request, _deadline, MarshalContext::inproc, _replyTo);
  }

  void reject(Errc code) noexcept override {
    if (_replyTo) _replyTo->fail(code, "the server's message filter refused the call");
  }

  void abandon() noexcept override {
    if (_replyTo) {
      _replyTo->fail(Errc::disconnected, "the object's apartment shut down before serving the call");
    }
  }

private:
  std::shared_ptr<ApartmentImpl> _target;
  IncomingRequest _request;
  Deadline _deadline;
  std::shared_ptr<ReplySink> _replyTo;
};

}  // namespace

void InprocChannel::send(std::unique_ptr<OutgoingRequest> request, Deadline deadline,
                         std::shared_ptr<ReplySink> replyTo) noexcept {
  std::shared_ptr<ApartmentImpl> target = _target.lock();
  if (target != nullptr && !target->closed()) {
    std::unique_ptr<WorkItem> item;
    try {
      item = std::make_unique<CallItem>(target, std::move(request), deadline, replyTo);
    } catch (const std::exception& e) {
      if (replyTo) replyTo->fail(Errc::internal, e.what());
      return;
    }
    if (target->post(item)) return;
    // Not accepted: the request is inside the item; the item's abandon answers the caller.
    item->abandon();
    return;
  }
  if (request) releaseRequestCaps(*request);
  if (replyTo) {
    replyTo->fail(Errc::disconnected, "the object's apartment has shut down");
  } else {
    // A oneway to a dead apartment (typically a release): nothing is left to release.
    FERRY_LOG(debug, "oneway call to an apartment that has shut down dropped");
  }
}

void releaseRequestCaps(OutgoingRequest& request) noexcept {
  auto caps = request.root.asReader().getCaps();
  for (auto cap : caps) {
    try {
      ObjRefData data = readObjRef(cap);
      releaseData(data);
    } catch (const std::exception& e) {
      FERRY_LOG(debug, "could not release a capability of an undelivered request: " << e.what());
    }
  }
}

}  // namespace ferry::detail
