# ORPC: the request and response messages of a call from a proxy to a stub.
#
# A call names the stub by IPID and the method by (interfaceId, methodId): interfaceId is the IID
# of the interface that *declares* the method (a base of the proxied interface, for inherited
# methods) and methodId its ordinal there. The params and results are the Cap'n Proto structs the
# schema declares for the method; interface-typed fields inside them are left null and the
# interface pointers travel in `caps` instead, numbered in the order of the interface-typed fields.
#
# In one process the messages are handed over as built (no serialization); between processes they
# are serialized with Cap'n Proto's standard framing, one message per transport message.
@0xb34fe436a4584f51;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::wire");

using import "objref.capnp".ObjRef;
using import "objref.capnp".Ipid;

struct Request {
  ipid @0 :Ipid;
  interfaceId @1 :UInt64;
  methodId @2 :UInt16;

  causality @3 :CausalityId;
  # The logical call chain. A call made while serving another carries the served call's id, so
  # the receiver can tell a nested callback (same id) from a new top-level call.

  timeoutMicros @4 :UInt64;
  # Time left until the caller's deadline when the request was sent (0 = no deadline). Relative,
  # so the clocks of the two sides need not agree. The server does not start a call whose
  # deadline has passed; it answers `deadlineExceeded`.

  flags @5 :UInt16;
  # Bit 0 (oneway): the caller expects no response. Other bits must be 0.

  params @6 :AnyPointer;
  caps @7 :List(ObjRef);
}

struct Response {
  union {
    ok @0 :Void;
    error @1 :ErrorInfo;
  }
  results @2 :AnyPointer;
  caps @3 :List(ObjRef);
}

struct ErrorInfo {
  code @0 :UInt16;
  # A ferry::Errc value (core/include/ferry/error.h). An unknown value is read as `protocolError`.

  message @1 :Text;
  # Human-readable: what failed and why (at most 4 KiB; longer messages are truncated).
}

struct CausalityId {
  hi @0 :UInt64;
  lo @1 :UInt64;
}
