// Support for the code capnpc-ferry generates. Not for hand-written code: the names here may
// change with the generator, which is built and shipped together with this header.
//
// For every Cap'n Proto `interface I` in a schema, capnpc-ferry emits (namespace `<ns>::iface`,
// where <ns> is the schema's $Cxx.namespace):
//
//   class I : public virtual ferry::Interface (or its `extends` bases)
//       static constexpr ferry::Iid iid; static constexpr const char* interfaceName;
//       one pure virtual method per schema method, plus a non-virtual `fooAsync` companion;
//       static ferryCast(I*, Iid)         queryInterface support over I and its bases;
//       static _ferryDispatch(I*, method, ServerCall&)  the stub for I's own methods;
//       static _ferryBuild_foo / _ferryRead_foo          params/results (de)serialization.
//   a proxy class (in the .ferry.c++) deriving from I and ProxyBase;
//   a stub dispatcher covering I and all its ancestors;
//   an InterfaceRegistration tying the IID to the proxy factory and the stub dispatcher.
//
// Wire convention: interface-typed parameters and results are left null inside the params and
// results structs; the interface pointers travel as OBJREFs in the message's capability list,
// numbered 0.. in the order of the interface-typed fields (orpc.capnp, `Request.caps`). Interface
// pointers inside struct values and lists (ferry/capability.h) are capnp capability pointers;
// capability pointer k is the OBJREF at (number of interface-typed fields) + k in the same list.
// The generated code asks for them with the `collectCaps` / `...WithCaps` forms below.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <capnp/any.h>
#include <capnp/capability.h>
#include <capnp/message.h>
#include <capnp/raw-schema.h>

#include <ferry/api.h>
#include <ferry/capability.h>
#include <ferry/error.h>
#include <ferry/future.h>
#include <ferry/ids.h>
#include <ferry/object.h>
#include <ferry/owned.h>

namespace ferry::detail {

class ProxyBase;
class ProxyManager;
class PendingCall;
class OutgoingRequest;
class IncomingResponse;
class IncomingRequest;
struct ProxyInit;
class ClientResponse;

// A request being built by a proxy method. Move-only, used once.
class FERRY_API ClientCall {
public:
  ClientCall(ProxyBase& proxy, uint64_t interfaceId, uint16_t methodId, uint32_t capCount);
  ClientCall(ClientCall&&) noexcept;
  ClientCall& operator=(ClientCall&&) = delete;
  ~ClientCall();

  // `collectCaps`: the params may hold interface pointers inside struct values or lists; they
  // are collected as they are written, and sealCaps() marshals them.
  template <typename Params>
  typename Params::Builder initParams(bool collectCaps = false) {
    return paramsPointer(collectCaps).template initAs<Params>();
  }
  // The params as a copy of `value` (a params struct passed whole).
  template <typename Params>
  void setParams(typename Params::Reader value, bool collectCaps = false) {
    paramsPointer(collectCaps).template setAs<Params>(value);
  }

  // Marshals `object` (may be null) as the index-th capability of the request.
  void setCap(uint32_t index, Interface* object, Iid iid);

  // After the params were written with `collectCaps` and every setCap: marshals the interface
  // pointers collected, after the `capCount` the method declares.
  void sealCaps();

  // The method is $Ferry.idempotent: send() may resend it after a transport failure that leaves
  // its outcome unknown. Other calls are never resent (at most once).
  void setIdempotent() noexcept;

  // Sends and waits for the response (an STA dispatches incoming calls meanwhile). Throws
  // ferry::Error on any failure, including the servant's (serverFault).
  ClientResponse send();
  // Sends; the caller waits or attaches a continuation through Future.
  std::shared_ptr<PendingCall> sendAsync();
  // Sends without a response. Errors are not reported (logged).
  void sendOneway();

private:
  capnp::AnyPointer::Builder paramsPointer(bool collectCaps);

  ProxyBase* _proxy;
  std::unique_ptr<OutgoingRequest> _request;
  // The interface pointers inside the params, until sealCaps().
  std::unique_ptr<capnp::BuilderCapabilityTable> _collectedCaps;
  bool _idempotent = false;
};

// A response received by a proxy, read in the calling apartment.
class FERRY_API ClientResponse {
public:
  explicit ClientResponse(std::unique_ptr<IncomingResponse> response);
  ClientResponse(ClientResponse&&) noexcept;
  ClientResponse& operator=(ClientResponse&&) = delete;
  ~ClientResponse();

  template <typename Results>
  typename Results::Reader results() const {
    return resultsPointer().template getAs<Results>();
  }
  // The results, able to read the interface pointers inside struct values and lists: the
  // capabilities from `first` (the method's interface-typed result count) on, unmarshaled into
  // the calling apartment and held as long as this response.
  template <typename Results>
  typename Results::Reader resultsWithCaps(uint32_t first) {
    return embeddedCaps(first).imbue(resultsPointer().template getAs<Results>());
  }

  // Unmarshals the index-th capability of the results into the calling apartment (null if the
  // servant returned null).
  template <InterfaceType I>
  Ref<I> cap(uint32_t index) {
    return Ref<I>::adopt(static_cast<I*>(unmarshalCap(index, I::iid)));
  }

private:
  capnp::AnyPointer::Reader resultsPointer() const;
  void* unmarshalCap(uint32_t index, Iid iid);
  capnp::ReaderCapabilityTable& embeddedCaps(uint32_t first);

  std::unique_ptr<IncomingResponse> _response;
  std::unique_ptr<capnp::ReaderCapabilityTable> _embeddedCaps;
};

// A request being served by a stub, in the object's apartment.
class FERRY_API ServerCall {
public:
  virtual ~ServerCall() = default;

  template <typename Params>
  typename Params::Reader params() const {
    return paramsPointer().template getAs<Params>();
  }
  // The params, able to read the interface pointers inside struct values and lists: the
  // capabilities from `first` (the method's interface-typed parameter count) on, unmarshaled into
  // the object's apartment and held until the call ends.
  template <typename Params>
  typename Params::Reader paramsWithCaps(uint32_t first) {
    return embeddedCaps(first).imbue(paramsPointer().template getAs<Params>());
  }

  template <InterfaceType I>
  Ref<I> cap(uint32_t index) {
    return Ref<I>::adopt(static_cast<I*>(unmarshalCap(index, I::iid)));
  }

  // `collectCaps` as for ClientCall::initParams; then sealResultCaps() marshals them.
  template <typename Results>
  typename Results::Builder initResults(uint32_t capCount, bool collectCaps = false) {
    return resultsPointer(capCount, collectCaps).template initAs<Results>();
  }
  // The results as a copy of `value` (a results struct passed whole).
  template <typename Results>
  void setResults(uint32_t capCount, typename Results::Reader value, bool collectCaps = false) {
    resultsPointer(capCount, collectCaps).template setAs<Results>(value);
  }

  // Marshals `object` (may be null) as the index-th capability of the results.
  virtual void setResultCap(uint32_t index, Interface* object, Iid iid) = 0;
  // After the results were written with `collectCaps` and every setResultCap: marshals the
  // interface pointers collected, after the `capCount` the method declares.
  virtual void sealResultCaps() = 0;

protected:
  virtual capnp::AnyPointer::Reader paramsPointer() const = 0;
  virtual void* unmarshalCap(uint32_t index, Iid iid) = 0;
  virtual capnp::ReaderCapabilityTable& embeddedCaps(uint32_t first) = 0;
  virtual capnp::AnyPointer::Builder resultsPointer(uint32_t capCount, bool collectCaps) = 0;
};

// The base of every generated interface proxy. One interface proxy exists per (proxy manager,
// IID); the proxy manager is the identity. Reference counts are local: only the last release of
// an interface proxy goes on the wire (as a batched remote release of its cached references).
class FERRY_API ProxyBase : public virtual Interface {
public:
  uint32_t addRef() noexcept final;
  uint32_t release() noexcept final;
  void* queryInterface(Iid id) final;

  ClientCall newCall(uint64_t interfaceId, uint16_t methodId, uint32_t capCount) {
    return ClientCall(*this, interfaceId, methodId, capCount);
  }

  ProxyManager& manager() const noexcept { return *_manager; }
  // This proxy as a pointer to the interface it proxies (what queryInterface returns for it).
  void* interfacePointer() noexcept { return castSelf(_iid); }
  Iid proxiedIid() const noexcept { return _iid; }
  Ipid ipid() const noexcept { return _ipid; }

protected:
  explicit ProxyBase(const ProxyInit& init) noexcept;
  ~ProxyBase() override;

  // Generated: `return I::ferryCast(this, id);`
  virtual void* castSelf(Iid id) noexcept = 0;

private:
  friend class ProxyManager;

  ProxyManager* _manager;
  Iid _iid;
  Ipid _ipid;
  std::atomic<uint32_t> _localRefs{0};
};

// nullptr when `object` is a real object rather than a proxy.
FERRY_API ProxyBase* asProxy(Interface* object) noexcept;

using ProxyFactory = ProxyBase* (*)(const ProxyInit& init);
// `pointer` (what queryInterface(iid) returned) as the object's Interface.
using InterfaceUpcast = Interface* (*)(void* pointer) noexcept;
// `object` is the pointer queryInterface(iid) returned for the interface the stub serves.
using StubDispatch = void (*)(void* object, uint64_t interfaceId, uint16_t methodId,
                              ServerCall& call);

struct InterfaceInfo {
  Iid iid;
  const char* name;        // "file.capnp:Interface"
  ProxyFactory newProxy;
  StubDispatch dispatch;
  InterfaceUpcast upcast;
  // The schema names of the interface's own methods, indexed by method number (an entry may be
  // null); for logs and error messages.
  const char* const* methodNames = nullptr;
  uint16_t methodCount = 0;
  // The interface's compiled Cap'n Proto schema node, with its dependencies (method params and
  // results, the types they name, base interfaces): what an exporter answers for reflection
  // (the admin interface, core/schema/admin.capnp). Null for an interface without one.
  const capnp::_::RawSchema* schema = nullptr;
};

// A static object in each generated .ferry.c++ registers its interfaces at load time.
class FERRY_API InterfaceRegistration {
public:
  explicit InterfaceRegistration(const InterfaceInfo& info) noexcept;
};

[[noreturn]] FERRY_API void unknownMethod(uint64_t interfaceId, uint16_t methodId);

}  // namespace ferry::detail
