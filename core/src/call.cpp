// The generated code's view of a call: ClientCall/ClientResponse on the proxy side,
// ServerCallImpl on the stub side, and the Future plumbing.
#include <ferry/generated.h>

#include "apartment-impl.h"
#include "capability-impl.h"
#include "import-table.h"
#include "interface-registry.h"
#include "log.h"
#include "marshal-impl.h"
#include "message.h"
#include "pending-call.h"
#include "server-call.h"
#include "thread-state.h"

namespace ferry::detail {

namespace {

wire::ObjRef::Builder capSlot(capnp::List<wire::ObjRef>::Builder caps, uint32_t index) {
  FERRY_ASSERT(index < caps.size(), index, caps.size());
  return caps[index];
}

wire::ObjRef::Reader capSlot(capnp::List<wire::ObjRef>::Reader caps, uint32_t index) {
  FERRY_REQUIRE(index < caps.size(), Errc::protocolError,
                "the message carries {} interface pointers where the method declares at least {}; "
                "the peer was built from another version of the schema",
                caps.size(), index + 1);
  return caps[index];
}

// The OBJREF of an interface pointer a call carries to an importer at `distance`.
ObjRefData marshalCap(Interface* object, Iid iid, MarshalContext distance) {
  return marshalData(object, iid, distance, MarshalFlags::normal,
                     distance == MarshalContext::inproc);
}

// Marshals the interface pointers `collected` gathered while params or results were written, as
// the OBJREFs after those `root` (a Request or Response) already has: the capability pointer k
// of the params or results names caps[own + k].
template <typename Root>
void appendCollectedCaps(Root root, capnp::BuilderCapabilityTable& collected,
                         MarshalContext distance) {
  auto table = collected.getTable();
  if (table.size() == 0) return;
  uint32_t own = root.hasCaps() ? root.getCaps().size() : 0;
  auto previous = root.disownCaps();
  auto caps = root.initCaps(own + static_cast<uint32_t>(table.size()));
  for (uint32_t i = 0; i < own; ++i) caps.setWithCaveats(i, previous.getReader()[i]);
  for (uint32_t k = 0; k < table.size(); ++k) {
    std::pair<Interface*, Iid> target{nullptr, Iid()};
    KJ_IF_MAYBE (hook, table[k]) {
      target = wrappedInterface(**hook);
    }
    writeObjRef(caps[own + k], marshalCap(target.first, target.second, distance));
  }
}

// The interface pointers inside received params or results: caps[first..] unmarshaled into the
// calling apartment, as the capability table their capability pointers index.
std::unique_ptr<capnp::ReaderCapabilityTable> unmarshalEmbeddedCaps(
    capnp::List<wire::ObjRef>::Reader caps, uint32_t first) {
  uint32_t count = caps.size() > first ? caps.size() - first : 0;
  auto table = kj::heapArrayBuilder<kj::Maybe<kj::Own<capnp::ClientHook>>>(count);
  for (uint32_t k = 0; k < count; ++k) {
    ObjRefData data = readObjRef(caps[first + k]);
    void* pointer = unmarshalData(data, data.iid);
    if (pointer == nullptr) {
      table.add(wrapInterface(nullptr, Iid()));
      continue;
    }
    // Unmarshaling succeeded, so a proxy (or the real object) exists for the IID: registered.
    const InterfaceInfo* info = tryFindInterface(data.iid);
    FERRY_ASSERT(info != nullptr && info->upcast != nullptr, toString(data.iid));
    Interface* object = info->upcast(pointer);
    table.add(wrapInterface(object, data.iid));
    object->release();  // the hook holds its own reference
  }
  return std::make_unique<capnp::ReaderCapabilityTable>(table.finish());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ClientCall

ClientCall::ClientCall(ProxyBase& proxy, uint64_t interfaceId, uint16_t methodId,
                       uint32_t capCount)
    : _proxy(&proxy) {
  proxy.manager().checkUsable();
  _request = std::make_unique<OutgoingRequest>();
  auto ipid = _request->root.initIpid();
  ipid.setHi(proxy.ipid().hi);
  ipid.setLo(proxy.ipid().lo);
  _request->root.setInterfaceId(interfaceId);
  _request->root.setMethodId(methodId);
  if (capCount > 0) _request->root.initCaps(capCount);
}

ClientCall::ClientCall(ClientCall&&) noexcept = default;
ClientCall::~ClientCall() = default;

capnp::AnyPointer::Builder ClientCall::paramsPointer(bool collectCaps) {
  if (!collectCaps) return _request->root.getParams();
  if (!_collectedCaps) _collectedCaps = std::make_unique<capnp::BuilderCapabilityTable>();
  return _collectedCaps->imbue(_request->root).getParams();
}

void ClientCall::setCap(uint32_t index, Interface* object, Iid iid) {
  MarshalContext distance = _proxy->manager().link()->channel().distance();
  writeObjRef(capSlot(_request->root.getCaps(), index), marshalCap(object, iid, distance));
}

void ClientCall::sealCaps() {
  if (!_collectedCaps) return;
  appendCollectedCaps(_request->root, *_collectedCaps,
                      _proxy->manager().link()->channel().distance());
  _collectedCaps.reset();  // the OBJREFs hold their own references now
}

void ClientCall::setIdempotent() noexcept {
  _idempotent = true;
  _request->root.setFlags(_request->root.getFlags() | kRequestFlagIdempotent);
}

namespace {
// An idempotent call is sent again at most this many times after a transport failure.
constexpr int kIdempotentRetries = 2;
}  // namespace

ClientResponse ClientCall::send() {
  ProxyManager& manager = _proxy->manager();
  ApartmentImpl& home = manager.apartment();
  MessageFilter* filter =
      home.kind() == ApartmentKind::sta ? static_cast<StaImpl&>(home).filter() : nullptr;
  bool hasCaps = _request->root.hasCaps() && _request->root.getCaps().size() > 0;
  int transportRetries = 0;
  for (int attempt = 1;; ++attempt) {
    // A rejected call consumes nothing; keep what is needed to resend it or release its caps.
    std::unique_ptr<OutgoingRequest> kept;
    if (filter != nullptr || hasCaps || _idempotent) kept = OutgoingRequest::copyOf(*_request);
    std::shared_ptr<ExporterLink> link = manager.link();
    auto call = startCall(home, link->channel(), std::move(_request), /*waitsAtOnce=*/true);
    try {
      return ClientResponse(finishCall(*call));
    } catch (const Error& e) {
      // The transport lost the call (or never delivered it): an idempotent one may run again —
      // unless it carries interface pointers, whose references the lost attempt may already
      // have handed over.
      bool lost = e.code() == Errc::outcomeUnknown || e.code() == Errc::unavailable;
      if (lost && _idempotent && !hasCaps && transportRetries < kIdempotentRetries) {
        ++transportRetries;
        FERRY_LOG(info, "resending an idempotent call after: " << e.what());
        _request = std::move(kept);
        continue;
      }
      bool rejected = e.code() == Errc::callRejected || e.code() == Errc::retryLater;
      if (!rejected) throw;
      std::optional<std::chrono::milliseconds> delay;
      if (filter != nullptr) {
        delay = filter->retryRejectedCall(
            e.code() == Errc::callRejected ? FilterVerdict::reject : FilterVerdict::retryLater,
            attempt);
      }
      if (!delay) {
        if (kept) releaseRequestCaps(*kept);
        throw;
      }
      static_cast<StaImpl&>(home).pause(Clock::now() + *delay);
      _request = std::move(kept);
    }
  }
}

std::shared_ptr<PendingCall> ClientCall::sendAsync() {
  ProxyManager& manager = _proxy->manager();
  return startCall(manager.apartment(), manager.link()->channel(), std::move(_request));
}

void ClientCall::sendOneway() {
  detail::sendOneway(_proxy->manager().link()->channel(), std::move(_request));
}

// ---------------------------------------------------------------------------------------------
// ClientResponse

ClientResponse::ClientResponse(std::unique_ptr<IncomingResponse> response)
    : _response(std::move(response)) {}
ClientResponse::ClientResponse(ClientResponse&&) noexcept = default;
ClientResponse::~ClientResponse() = default;

capnp::AnyPointer::Reader ClientResponse::resultsPointer() const {
  return _response->root().getResults();
}

void* ClientResponse::unmarshalCap(uint32_t index, Iid iid) {
  return unmarshalData(readObjRef(capSlot(_response->root().getCaps(), index)), iid);
}

capnp::ReaderCapabilityTable& ClientResponse::embeddedCaps(uint32_t first) {
  if (!_embeddedCaps) _embeddedCaps = unmarshalEmbeddedCaps(_response->root().getCaps(), first);
  return *_embeddedCaps;
}

// ---------------------------------------------------------------------------------------------
// ServerCallImpl

void* ServerCallImpl::unmarshalCap(uint32_t index, Iid iid) {
  MarshalPeerScope peer;
  return unmarshalData(readObjRef(capSlot(_request.getCaps(), index)), iid);
}

capnp::ReaderCapabilityTable& ServerCallImpl::embeddedCaps(uint32_t first) {
  MarshalPeerScope peer;
  if (!_embeddedCaps) _embeddedCaps = unmarshalEmbeddedCaps(_request.getCaps(), first);
  return *_embeddedCaps;
}

capnp::AnyPointer::Builder ServerCallImpl::resultsPointer(uint32_t capCount, bool collectCaps) {
  if (capCount > 0) _response.root.initCaps(capCount);
  if (!collectCaps) return _response.root.getResults();
  if (!_collectedCaps) _collectedCaps = std::make_unique<capnp::BuilderCapabilityTable>();
  return _collectedCaps->imbue(_response.root).getResults();
}

void ServerCallImpl::setResultCap(uint32_t index, Interface* object, Iid iid) {
  MarshalPeerScope peer;
  writeObjRef(capSlot(_response.root.getCaps(), index), marshalCap(object, iid, _distance));
}

void ServerCallImpl::sealResultCaps() {
  if (!_collectedCaps) return;
  MarshalPeerScope peer;
  appendCollectedCaps(_response.root, *_collectedCaps, _distance);
  _collectedCaps.reset();
}

// ---------------------------------------------------------------------------------------------
// Future plumbing (ferry/future.h)

void waitPendingCall(PendingCall& call, const std::function<void(ClientResponse&)>& read) {
  ClientResponse response(finishCall(call));
  read(response);
}

void onPendingCallDone(const std::shared_ptr<PendingCall>& call,
                       std::function<void(ClientResponse*, const Error*)> onDone) {
  call->setContinuation([call, onDone = std::move(onDone)] {
    std::unique_ptr<IncomingResponse> response;
    try {
      response = call->takeResponse();
    } catch (const Error& e) {
      onDone(nullptr, &e);
      return;
    }
    ClientResponse wrapped(std::move(response));
    onDone(&wrapped, nullptr);
  });
}

void cancelPendingCall(PendingCall& call) noexcept { call.cancel(); }

void postToCurrentApartment(std::function<void()> fn) {
  ApartmentImpl& here = requireCurrentApartment();
  std::unique_ptr<WorkItem> task = makeTask(std::move(fn));
  FERRY_REQUIRE(here.post(task), Errc::shuttingDown,
                "cannot queue work in apartment '{}': it is shutting down", here.label());
}

Error currentExceptionAsError() {
  try {
    throw;
  } catch (const Error& e) {
    return e;
  } catch (const std::exception& e) {
    return Error(Errc::serverFault, e.what());
  } catch (...) {
    return Error(Errc::serverFault,
                 "the servant threw an exception not derived from std::exception");
  }
}

}  // namespace ferry::detail
