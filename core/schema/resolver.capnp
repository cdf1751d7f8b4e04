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

# ---- Named objects (COM's running object table, reachable from other hosts) --------------------
#
# A process publishes an object under a name on its host: it marshals the object table-strong
# (the OBJREF stays valid until the name is revoked, and may be unmarshaled any number of times)
# and registers name → OBJREF with its host's ferryd, which answers lookups for it from any
# process of any host until the publisher withdraws the name or its connection to ferryd closes
# (the process exited). Without a ferryd a process answers lookups for its own names on its own
# endpoints. A name belongs to the process that published it first: a publication of the same
# name by another process is refused (nameInUse); the same process may publish it again (the new
# OBJREF replaces the old). Names are 1 to 128 characters of segments of [A-Za-z0-9._~-]
# separated by single '/', as they appear in ferry:// references (README: "Named objects").

struct NameRequest {
  # Frame kind 16, a request (call id not 0) answered by a NameReply in frame kind 17 with the
  # same call id.
  union {
    lookup @0 :Text;
    # The name's OBJREF: NameReply.objref, or error objectNotRegistered ("no object is published
    # under this name here").
    publish @1 :NamePublication;
    # To ferryd over its pipe only (the publisher's kernel credentials identify it; refused with
    # accessDenied elsewhere): NameReply.published, or error nameInUse naming the publisher's pid.
    list @2 :Void;
    # Every name published here: NameReply.names.
    processes @3 :Void;
    # The processes registered here (`ferry ps`): NameReply.processes.
  }
}

struct NamePublication {
  name @0 :Text;
  objref @1 :Data;
  # A table-strong OBJREF of the object (checked to decode; at most 64 KiB).
}

struct NameReply {
  union {
    objref @0 :Data;
    published @1 :Void;
    names @2 :List(PublishedName);
    # Sorted by name; at most 65,536 of them.
    error @3 :ErrorInfo;
    processes @4 :List(RegisteredProcess);
    # Sorted by process id; at most 65,536 of them.
  }
}

struct PublishedName {
  name @0 :Text;
  processId @1 :UInt64;
  # The publisher, as in its OBJREFs (its pid in the high 32 bits).
}

struct NameWithdrawal {
  # Frame kind 18, oneway, to ferryd over its pipe: the publisher revokes `name`. From any other
  # process it is refused, logged and counted, and changes nothing.
  name @0 :Text;
}

# ---- Processes (`ferry ps`) ---------------------------------------------------------------------

struct AdminRegistration {
  # Frame kind 25, oneway, to ferryd over its pipe: the sending process's admin object
  # (admin.capnp), sent with its registrations and again on every new connection; an empty
  # `objref` withdraws it. Only the process the OBJREF names (the pipe peer's pid) may register
  # it: another's is refused, logged and counted. ferryd forgets it with the connection.
  objref @0 :Data;
  network @1 :Bool;
  # The process serves its admin object to other hosts too (RuntimeOptions::admin = network).
}

struct RegisteredProcess {
  processId @0 :UInt64;
  # As in its OBJREFs (its pid in the high 32 bits).
  uid @1 :UInt32;
  # Its user, from the kernel's credentials of its pipe connection to ferryd.
  admin @2 :Data;
  # Its admin object's OBJREF where the asker may call it: to a caller of this host over the pipe
  # for the caller's own processes (every process for root), to anyone for a process that serves
  # other hosts (`adminNetwork`). Empty otherwise, or when it has none.
  adminNetwork @3 :Bool;
}
