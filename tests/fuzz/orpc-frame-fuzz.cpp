// libFuzzer target for what a peer's connection delivers to the ORPC layer: one frame
// (core/src/orpc/frame.h decodeFrame), then its message as the endpoint reads it by kind: a
// request's header fields, its RemUnknown parameters when it names a RemUnknown method, and its
// acknowledgements and caller into the reply cache (admit, complete, cancel, expire, as the
// endpoint drives it); a response's outcome; the resolver's requests, replies and registrations
// through readResolution; pings; named-object requests and replies. Any input must decode or fail with ferry::Error(protocolError) or a
// kj::Exception (what Cap'n Proto's readers throw for a malformed message, which the endpoint
// turns into a rejected link); nothing may read out of bounds (ASan) or leave the cache
// inconsistent.
//
// Input: the frame as it came off the transport.
#include <atomic>
#include <cstdlib>

#include <capnp/any.h>
#include <kj/exception.h>

#include "activation.capnp.h"
#include "orpc/frame.h"
#include "orpc/reply-cache.h"
#include "ping.capnp.h"
#include "remunknown.capnp.h"
#include "resolver.capnp.h"
#include "resolver/resolution.h"

namespace {

using namespace ferry::detail;
using namespace ferry::detail::orpc;
namespace wire = ferry::wire;

ReplyCache& cache() {
  static ReplyCache instance([] {
    ReplyCache::Limits limits;
    limits.maxEntries = 64;
    limits.maxBytes = 4096;
    limits.perCaller = 16;
    limits.perLink = 32;
    limits.retention = std::chrono::seconds(1);
    return limits;
  }());
  return instance;
}

// Walks a message part the endpoint hands on without reading it itself (parameters, results):
// the size it reports is what a traversal costs.
void walk(capnp::AnyPointer::Reader pointer) { (void)pointer.targetSize(); }

void readRemUnknownParams(capnp::AnyPointer::Reader params, uint16_t method) {
  switch (method) {
    case 0: {
      auto request = params.getAs<wire::RemUnknown::QueryInterfacesParams>().getRequest();
      (void)request.getIpid().getHi();
      for (uint64_t iid : request.getIids()) (void)iid;
      break;
    }
    case 1:
    case 2:
      for (auto entry : params.getAs<wire::RemUnknown::AddRefsParams>().getRequest().getEntries()) {
        (void)entry.getRefs();
      }
      break;
    case 3:
    case 4: {
      auto claim = params.getAs<wire::RemUnknown::ClaimPacketParams>().getRequest();
      (void)claim.getPacketId();
      (void)claim.getIpid().getLo();
      break;
    }
    default:
      walk(params);
  }
}

void serve(const Frame& frame, OrpcMessage& message, LinkId link, ReplyCache::Clock::time_point now) {
  switch (frame.header.kind) {
    case FrameKind::request: {
      auto request = message.root<wire::Request>();
      CallerKey caller{request.getCaller(), request.getCallerToken()};
      std::vector<uint64_t> acknowledged;
      for (uint64_t id : request.getAcknowledged()) acknowledged.push_back(id);
      (void)request.getCausality().getHi();
      if (request.getInterfaceId() == 0xef82f385fdfd76e2ull) {
        readRemUnknownParams(request.getParams(), request.getMethodId());
      } else {
        walk(request.getParams());
      }
      for (auto cap : request.getCaps()) (void)cap;
      auto admission = cache().admit(caller, frame.header.callId, link, acknowledged, now,
                                     std::make_shared<std::atomic<bool>>(false));
      if (admission.kind == ReplyCache::Admission::Kind::run) {
        auto reply = std::make_shared<const std::vector<uint8_t>>(frame.header.callId % 200, 0);
        cache().complete(caller, frame.header.callId, link, reply, now);
      }
      if (cache().entries() > 64) std::abort();
      break;
    }
    case FrameKind::response: {
      auto response = message.root<wire::Response>();
      if (response.isError()) (void)response.getError().getMessage().size();
      walk(response.getResults());
      break;
    }
    case FrameKind::resolve:
    case FrameKind::withdrawal:
      (void)message.root<wire::ResolveRequest>().getOxid();
      break;
    case FrameKind::resolveReply: {
      auto reply = message.root<wire::ResolveReply>();
      if (reply.isResolution()) (void)readResolution(reply.getResolution());
      break;
    }
    case FrameKind::registration:
      (void)readResolution(message.root<wire::Registration>().getResolution());
      break;
    case FrameKind::ping: {
      auto ping = message.root<wire::Ping>();
      (void)ping.getSetId();
      for (uint64_t oid : ping.getAdded()) (void)oid;
      for (uint64_t oid : ping.getRemoved()) (void)oid;
      break;
    }
    case FrameKind::pingReply:
      (void)message.root<wire::PingReply>().getCode();
      break;
    case FrameKind::bind:
      // The bind layer's (record-bind-fuzz reads it as the exchange does); here only its traversal.
      (void)message.root<capnp::AnyStruct>().totalSize();
      break;
    case FrameKind::names: {
      auto request = message.root<wire::NameRequest>();
      switch (request.which()) {
        case wire::NameRequest::LOOKUP:
          (void)request.getLookup().size();
          break;
        case wire::NameRequest::PUBLISH:
          (void)request.getPublish().getName().size();
          (void)request.getPublish().getObjref().size();
          break;
        default:
          break;
      }
      break;
    }
    case FrameKind::namesReply: {
      auto reply = message.root<wire::NameReply>();
      if (reply.isNames()) {
        for (auto entry : reply.getNames()) (void)entry.getName().size();
      } else if (reply.isProcesses()) {
        for (auto entry : reply.getProcesses()) (void)entry.getAdmin().size();
      } else if (reply.isError()) {
        (void)reply.getError().getMessage().size();
      }
      break;
    }
    case FrameKind::nameWithdrawal:
      (void)message.root<wire::NameWithdrawal>().getName().size();
      break;
    case FrameKind::adminRegistration:
      (void)message.root<wire::AdminRegistration>().getObjref().size();
      break;
    case FrameKind::classObject:
      (void)message.root<wire::ClassObjectRegistration>().getClsid().size();
      break;
    case FrameKind::activation: {
      auto request = message.root<wire::ActivationRequest>();
      if (request.isActivate()) (void)request.getActivate().getClsid().size();
      break;
    }
    case FrameKind::activationReply: {
      auto reply = message.root<wire::ActivationReply>();
      if (reply.isObjref()) {
        (void)reply.getObjref().size();
      } else if (reply.isError()) {
        (void)reply.getError().getMessage().size();
      }
      break;
    }
    case FrameKind::cancel:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static uint64_t inputs = 0;
  auto now = ReplyCache::Clock::time_point() + std::chrono::milliseconds(100 * ++inputs);
  LinkId link{0, 1 + (size > 0 ? uint64_t{data[size - 1]} % 4 : 0)};
  try {
    Frame frame = decodeFrame(data, size);
    if (frame.header.kind == FrameKind::cancel) {
      if (frame.message.has_value()) std::abort();
      cache().cancel(CallerKey{1, 1}, frame.header.callId, link);
    } else {
      if (!frame.message.has_value()) std::abort();
      serve(frame, *frame.message, link, now);
    }
  } catch (const ferry::Error& e) {
    if (e.code() != ferry::Errc::protocolError) std::abort();
  } catch (const kj::Exception&) {
    // A malformed message: the endpoint rejects the link.
  }
  cache().expire(now);
  if (inputs % 1000 == 0) cache().dropLink(CallerKey{1, 1}, link);
  return 0;
}
