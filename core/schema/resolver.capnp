# The OXID resolver protocol: OXID → where the exporter listens and its RemUnknown IPID.
#
# Every process answers resolve requests for its own apartments on its own endpoints (the
# embedded resolver). A host daemon, ferryd, answers the same requests for every process of its
# host that registered with it. A requester may cache replies, a bounded number of them, while
# they work: ferry drops a cached resolution when a connection to one of its bindings cannot be
# opened or is lost, and when none of its bindings can be opened for an import (the exporter may
# be gone or have moved), and the least recently used one beyond 1024. Resolution is idempotent
# and may be retried.
@0xb4107682426c83ff;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::wire");

using import "objref.capnp".Ipid;
using import "objref.capnp".StringBinding;
using import "orpc.capnp".ErrorInfo;

struct ResolveRequest {
  oxid @0 :UInt64;
  # Never 0.
}

struct ResolveReply {
  union {
    resolution @0 :Resolution;
    error @1 :ErrorInfo;
    # objectNotRegistered: no apartment with this OXID is known here ("unknown OXID").
  }
}

struct Resolution {
  oxid @0 :UInt64;
  remUnknown @1 :Ipid;
  # The IPID of the exporter's RemUnknown.

  bindings @2 :List(StringBinding);
  # Where the exporter listens, cheapest first (at most 32).

  processId @3 :UInt64;
  hostId @4 :Data;
  # As in the exporter's OBJREFs (16 bytes).
}

struct Registration {
  # Frame kind 5, sent by a process to its host's ferryd over the pipe (oneway): ferryd answers
  # resolve requests for `resolution.oxid` until the process unregisters it (frame kind 6, a
  # ResolveRequest naming the OXID) or its connection closes. ferryd accepts registrations on
  # pipe connections only: they come from processes of its own host. An OXID belongs to the
  # process that registered it first (the pipe's peer credentials: pid and uid): a registration
  # or withdrawal of it from another process is refused, logged and counted, and changes nothing.
  # A process registers again, on a new connection, after ferryd restarts.
  resolution @0 :Resolution;
}
