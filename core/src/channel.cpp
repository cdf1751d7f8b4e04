#include "channel.h"

#include <kj/exception.h>

#include "log.h"
#include "marshal-impl.h"
#include "message.h"
#include "pending-call.h"
#include "stats.h"
#include "thread-state.h"

namespace ferry::detail {

CallItem::CallItem(std::shared_ptr<ApartmentImpl> target, IncomingRequest request,
                   Deadline deadline, MarshalContext distance, std::shared_ptr<ReplySink> replyTo,
                   std::shared_ptr<std::atomic<bool>> canceled, orpc::CallerKey client,
                   std::shared_ptr<const ClientBlanket> caller)
    : WorkItem(Kind::call),
      _target(std::move(target)),
      _request(std::move(request)),
      _deadline(deadline),
      _distance(distance),
      _replyTo(std::move(replyTo)),
      _canceled(std::move(canceled)),
      _client(client),
      _caller(std::move(caller)) {
  // What the message filter sees. A malformed request reads as zeros here; serve() reports it.
  try {
    auto root = _request.root();
    auto c = root.getCausality();
    causality = CausalityId(c.getHi(), c.getLo());
    interfaceId = root.getInterfaceId();
    methodId = root.getMethodId();
    auto ipid = root.getIpid();
    internal = Ipid(ipid.getHi(), ipid.getLo()) == _target->remUnknownIpid();
  } catch (const kj::Exception&) {
  }
}

void CallItem::run() noexcept {
  if (_canceled && _canceled->load(std::memory_order_acquire)) {
    // Canceled while queued: it never runs.
    if (_replyTo) _replyTo->fail(Errc::canceled, "the call was canceled before it ran");
    return;
  }
  ThreadState& state = threadState();
  const std::atomic<bool>* previous =
      std::exchange(state.cancelFlag, _canceled ? _canceled.get() : nullptr);
  const orpc::CallerKey* previousClient = std::exchange(state.client, &_client);
  const ClientBlanket* previousCaller = std::exchange(state.blanket, _caller.get());
  _target->serve(_request, _deadline, _distance, _replyTo);
  state.blanket = previousCaller;
  state.cancelFlag = previous;
  state.client = previousClient;
}

void CallItem::reject(Errc code) noexcept {
  if (_replyTo) _replyTo->fail(code, "the server's message filter refused the call");
}

void CallItem::abandon() noexcept {
  if (_replyTo) {
    _replyTo->fail(Errc::disconnected, "the object's apartment shut down before serving the call");
  }
}

void InprocChannel::send(std::unique_ptr<OutgoingRequest> request, Deadline deadline,
                         std::shared_ptr<OutboundCall> call) noexcept {
  std::shared_ptr<ApartmentImpl> target = _target.lock();
  if (target != nullptr && !target->closed()) {
    std::unique_ptr<WorkItem> item;
    try {
      auto canceled = std::make_shared<std::atomic<bool>>(false);
      if (call) {
        call->setCancelHook([canceled] { canceled->store(true, std::memory_order_release); });
      }
      item = std::make_unique<CallItem>(target, IncomingRequest(std::move(request->message)),
                                        deadline, MarshalContext::inproc, call, canceled);
    } catch (const std::exception& e) {
      if (call) call->fail(Errc::internal, e.what());
      return;
    }
    if (target->post(item)) return;
    // Not accepted: the request is inside the item; the item's abandon answers the caller.
    item->abandon();
    return;
  }
  if (request) releaseRequestCaps(*request);
  if (call) {
    call->fail(Errc::disconnected, "the object's apartment has shut down");
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
