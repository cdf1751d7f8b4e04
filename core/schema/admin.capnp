# The admin interface: what a running ferry process shows of itself and how it is called from
# the shell (`ferry ps`, `ferry ls`, `ferry ping`, `ferry call`; core/src/admin/README.md).
#
# Every process that runs transports exports one admin object in its MTA (RuntimeOptions::admin):
# by default to this host's processes only, over the pipe, its OBJREF written to
# <runtime dir>/admin/<pid> (mode 0600); a call from another host is refused accessDenied unless
# the process set RuntimeOptions::admin to network, and then runs at adminMinimumLevel at least
# (integrity by default). Everything it answers is a snapshot taken when the call runs.
@0xbb754c036c98377c;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::wire");

interface Admin @0xd6a3b0f1c2e45a17 {
  describe @0 () -> (process :Process);
  # The whole picture: apartments with the objects they export and the proxies they hold,
  # transports, plugins, counters, per-method statistics and health.

  health @1 () -> (serving :Bool, reason :Text);
  # What the process set with Runtime::setServing (serving unless it said otherwise), like
  # grpc.health.v1. `ferry ping` times this call.

  schema @2 (iid :UInt64) -> (nodes :List(Data));
  # Reflection: the Cap'n Proto schema nodes of interface `iid` and of every type it depends on
  # (its methods' params and results, the types they name, its base interfaces), each a
  # single-segment message whose root is a capnp `schema.Node` (/capnp/schema.capnp), as
  # compiled into this process. noInterface when no schema compiled into the process declares
  # `iid`.

  object @3 (oid :UInt64, iid :UInt64) -> (objref :Data);
  # An OBJREF (normal, for another host) of interface `iid` of the object `oid` that one of the
  # process's apartments exports — the `<pid>/<oid>` targets of `ferry call`. Its references go
  # to the caller when it unmarshals it. objectNotRegistered for an OID no apartment exports,
  # noInterface when the object lacks `iid` (0: the interface of its first stub).
}

struct Process {
  pid @0 :UInt32;
  processId @1 :UInt64;         # pid << 32 | 32 random bits, as OBJREFs name the process
  name @2 :Text;                # /proc/self/comm
  serving @3 :Bool;
  servingReason @4 :Text;
  bindings @5 :List(Text);      # where it listens, cheapest first
  apartments @6 :List(Apartment);
  transports @7 :List(Transport);
  plugins @8 :List(Plugin);
  counters @9 :List(Counter);   # Runtime::stats(), by name (FERRY_RUNTIME_COUNTERS)
  methods @10 :List(MethodStats);
  latencyBoundsMicros @11 :List(UInt64);
  # The upper bounds of the latency histogram buckets of `methods`; the last bucket has none.
  callsInFlight @12 :UInt32;    # calls this process sent and awaits over the network
  servedCallsKept @13 :UInt32;  # reply cache entries: served calls running or not acknowledged
  connections @14 :List(Connection);
}

struct Connection {
  # One open link: who is at the other end, what it carried, and what its transport measures of
  # its path. Refusals are counted per transport (Process.transports).
  protseq @0 :Text;
  peer @1 :Text;                # inbound: the peer's address as the transport prints it;
                                # outbound: the binding
  outbound @2 :Bool;
  peerPid @3 :Int32;            # the kernel's credentials (the pipe), else 0
  peerUid @4 :UInt32;
  level @5 :Text;               # none, integrity or privacy
  provider @6 :Text;            # the security provider that authenticated the peer, or ""
  principal @7 :Text;
  callerProcess @8 :UInt64;     # the process whose requests it carries (0: none yet)
  messagesSent @9 :UInt64;      # ORPC frames handed to the transport, since it opened
  bytesSent @10 :UInt64;        # their bytes (the transport's framing not included)
  messagesReceived @11 :UInt64;
  bytesReceived @12 :UInt64;
  callsInFlight @13 :UInt32;    # calls this process sent on it and awaits
  rttMicros @14 :UInt64;        # the transport's smoothed round-trip time; 0: not measured
  rttVarMicros @15 :UInt64;     # its mean deviation; 0: not measured
  packetsLost @16 :UInt64;      # udp: packets declared lost; tcp: segments retransmitted
  bytesRetransmitted @17 :UInt64; # udp: message bytes sent again
}

struct Apartment {
  kind @0 :Text;                # "sta" or "mta"
  name @1 :Text;
  oxid @2 :UInt64;
  threads @3 :UInt32;           # 1 for an STA; the pool's size for the MTA
  queueDepth @4 :UInt32;        # work queued and not yet started
  objects @5 :List(ExportedObject);
  proxies @6 :List(ImportedObject);
}

struct ExportedObject {
  oid @0 :UInt64;
  className @1 :Text;           # the servant's C++ type
  interfaces @2 :List(InterfaceName);
  strongRefs @3 :UInt32;        # the sum of every holder's references
  weakEntries @4 :UInt32;       # tableWeak entries
  transitRefs @5 :UInt32;       # in OBJREFs whose importer is not known yet
  tableEntries @6 :UInt32;      # marshaled packets not yet claimed or released
  noPing @7 :Bool;
  clients @8 :List(ClientRefs);
}

struct InterfaceName {
  iid @0 :UInt64;
  name @1 :Text;                # "file.capnp:Interface", or "" when none compiled in declares it
}

struct ClientRefs {
  process @0 :UInt64;           # the client's process id (its pid in the high 32 bits); 0: this
                                # process's own apartments
  references @1 :UInt32;
}

struct ImportedObject {
  oxid @0 :UInt64;              # the exporter
  oid @1 :UInt64;
  interfaces @2 :List(InterfaceName);
  publicRefs @3 :UInt32;        # references cached for later marshaling and releases
  disconnected @4 :Bool;
}

struct Transport {
  protseq @0 :Text;
  counters @1 :List(Counter);   # as the plugin names them; now_* are current levels
}

struct Plugin {
  kind @0 :Text;                # "transport" or "security"
  name @1 :Text;
  path @2 :Text;
}

struct Counter {
  name @0 :Text;
  value @1 :Int64;
}

struct MethodStats {
  iface @0 :InterfaceName;
  method @1 :UInt16;
  methodName @2 :Text;          # from the interface's schema, or "" when none compiled in
  calls @3 :UInt64;             # served, since the process started
  errors @4 :UInt64;            # of which answered with an error
  latency @5 :List(UInt64);     # calls per bucket of Process.latencyBoundsMicros
}
