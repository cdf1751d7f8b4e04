// Marshaling internals shared by the public API and the call path (interface parameters).
#pragma once

#include <ferry/marshal.h>

#include "objref.h"

namespace ferry::detail {

class ProxyManager;

// Marshals from the calling thread's apartment. `object` may be null (a null OBJREF).
// `recordPacket` false: the packet is not recorded at the exporter (packetId 0) — for interface
// pointers inside a call to another process, consumed by the callee and nobody else.
ObjRefData marshalData(Interface* object, Iid iid, MarshalContext context, MarshalFlags flags,
                       bool recordPacket = true);

// Unmarshals into the calling thread's apartment; returns an addRef'd pointer to `iid` (null for
// a null OBJREF). `iid` may differ from the marshaled one (then it is queried).
void* unmarshalData(const ObjRefData& objref, Iid iid);

// releaseMarshalData from any apartment.
void releaseData(const ObjRefData& objref);

// The proxy manager behind `object` (an interface proxy or a proxy identity), or null.
ProxyManager* asProxyManager(Interface* object) noexcept;

}  // namespace ferry::detail
