// Interface pointers inside Cap'n Proto values: a struct field of interface type, a List(I).
//
// capnp's generated struct accessors hold an interface as its `Client` class. ferry fills such a
// field with an interface pointer wrapped by capability() and reads one back with refOf<I>():
//
//     ferry::Owned<idltest::Holder> holder;
//     holder.builder().setListener(ferry::capability(listener));   // Ref<Everything_Listener>
//     ...
//     ferry::Ref<Everything_Listener> l = ferry::refOf<Everything_Listener>(reader.getListener());
//
// The wrapped pointer holds one reference to the object for as long as the value (or any copy
// of it: copying a capnp value shares the wrapper) exists. When such a value is a parameter or a
// result, ferry marshals each interface pointer in it like an interface-typed parameter (its
// OBJREF travels in the message's capability list, orpc.capnp) and the receiver reads proxies
// (or, in the object's own apartment, the object itself) out of it. Only pointers made by
// capability() or received by ferry can travel: a capnp RPC capability cannot. A wrapped pointer
// cannot be called through the capnp Client; call the Ref that refOf() returns.
#pragma once

#include <utility>

#include <capnp/capability.h>

#include <ferry/api.h>
#include <ferry/object.h>

namespace ferry {

namespace detail {

// A capnp capability holding a new reference to `object` (the interface `iid` of it), or capnp's
// null capability for null.
FERRY_API kj::Own<capnp::ClientHook> wrapInterface(Interface* object, Iid iid);

// An addRef'd pointer to the interface `iid` of the object `hook` holds; null for a null
// capability. Throws invalidArgument for a capability ferry did not make, protocolError for one a
// peer sent outside the message's capability list, noInterface when the object lacks `iid`.
FERRY_API void* unwrapInterface(capnp::ClientHook& hook, Iid iid);

}  // namespace detail

// `object` as capnp's Client of its interface, for a struct field or list element.
template <InterfaceType I>
typename I::CapnpInterface::Client capability(const Ref<I>& object) {
  return typename I::CapnpInterface::Client(detail::wrapInterface(object.get(), I::iid));
}

// The interface pointer a field or element holds (null for a null one). See unwrapInterface for
// what it throws.
template <InterfaceType I>
Ref<I> refOf(capnp::Capability::Client client) {
  return Ref<I>::adopt(static_cast<I*>(
      detail::unwrapInterface(*capnp::ClientHook::from(kj::mv(client)), I::iid)));
}

}  // namespace ferry
