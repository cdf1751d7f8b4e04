#include "frames.h"

#include <capnp/message.h>

#include "../message.h"
#include "../orpc/frame.h"
#include "activation.capnp.h"

namespace ferry::detail::activation {

using orpc::FrameKind;

namespace {

template <class Root, class Fill>
std::vector<uint8_t> frame(FrameKind kind, uint64_t callId, Fill fill) {
  capnp::MallocMessageBuilder message(64);
  fill(message.initRoot<Root>());
  return orpc::encodeFrame(kind, callId, Oxid(), message);
}

}  // namespace

std::vector<uint8_t> classObjectFrame(const std::string& clsid, bool singleUse, bool revoke) {
  return frame<wire::ClassObjectRegistration>(FrameKind::classObject, 0, [&](auto r) {
    r.setClsid(clsid);
    r.setSingleUse(singleUse);
    r.setRevoke(revoke);
  });
}

std::vector<uint8_t> activateFrame(uint64_t callId, const std::string& clsid, uint64_t iid) {
  return frame<wire::ActivationRequest>(FrameKind::activation, callId, [&](auto r) {
    auto activate = r.initActivate();
    activate.setClsid(clsid);
    activate.setIid(iid);
  });
}

std::vector<uint8_t> idleQueryFrame(uint64_t callId) {
  return frame<wire::ActivationRequest>(FrameKind::activation, callId,
                                        [](auto r) { r.setIdleQuery(); });
}

std::vector<uint8_t> exitFrame(uint64_t callId) {
  return frame<wire::ActivationRequest>(FrameKind::activation, callId, [](auto r) { r.setExit(); });
}

std::vector<uint8_t> objrefReplyFrame(uint64_t callId, const ObjRefBytes& objref) {
  return frame<wire::ActivationReply>(FrameKind::activationReply, callId, [&](auto r) {
    r.setObjref(capnp::Data::Reader(objref.data(), objref.size()));
  });
}

std::vector<uint8_t> idleReplyFrame(uint64_t callId, uint64_t objects) {
  return frame<wire::ActivationReply>(FrameKind::activationReply, callId,
                                      [&](auto r) { r.setIdle(objects); });
}

std::vector<uint8_t> doneReplyFrame(uint64_t callId) {
  return frame<wire::ActivationReply>(FrameKind::activationReply, callId,
                                      [](auto r) { r.setDone(); });
}

std::vector<uint8_t> errorReplyFrame(uint64_t callId, Errc code, const std::string& message) {
  return frame<wire::ActivationReply>(FrameKind::activationReply, callId,
                                      [&](auto r) { writeError(r.initError(), code, message); });
}

}  // namespace ferry::detail::activation
