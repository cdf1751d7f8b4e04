# Distributed garbage collection between two processes (COM's ComplexPing / SimplePing,
# [MS-DCOM] 3.1.2.5.1.2-3, 3.2.6.1), carried in ORPC frames of kind 8 (Ping) and 9 (PingReply)
# (orpc.capnp) on the connection the client already uses to the exporter.
#
# A client keeps one *ping set* per exporter process it holds objects of: every OID of that
# process it holds through a proxy, except those of OBJREFs marked noPing. Every
# `RuntimeOptions::pingPeriod` its I/O thread (never an apartment, so a blocked STA keeps its
# objects) sends one Ping naming the set, carrying only the OIDs added and removed since the
# exporter last acknowledged a ping; an unchanged set sends empty lists (SimplePing). Traffic is
# one message per period and pair of processes, whatever the number of objects.
#
# The exporter keeps, per client (Ping.caller and callerToken, the key its references are held
# under: remunknown.capnp), when it last heard from it — a ping or any request — and the OIDs of
# its set. A client silent for three periods is *collected*: its references are released as if
# it had returned them itself (stubs go, the ExternalConnection hook is told, objects whose last
# reference this was are released in their apartment), except on objects marshaled with noPing
# and table-strong entries, which a client never holds. References of a collected client on an
# object that another live set names move to transit (that client may hold them by hand-on);
# transit references of an object that no live set names any more go with the last set that
# named it. The exporter forgets the set; a later Ping naming it is answered `objectNotConnected`
# and the client's proxies of that exporter process then fail with objectNotConnected.
@0xd5a4c1f2e3b69a07;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::wire");

struct Ping {
  caller @0 :UInt64;
  callerToken @1 :UInt64;
  # The client, as in its requests (orpc.capnp Request.caller, callerToken). All frames on one
  # connection name the same caller.

  setId @2 :UInt64;
  # The set, as the exporter's last PingReply named it; 0 asks for a new set (the client's first
  # ping, or after the set was collected).

  sequence @3 :UInt64;
  # Increases by one with each ping of the set. The exporter applies the lists of a ping whose
  # sequence is above the last it applied, and ignores older copies (datagrams reorder).

  added @4 :List(UInt64);
  removed @5 :List(UInt64);
  # OIDs that entered and left the set since the last ping the exporter acknowledged: resent
  # until acknowledged. At most 65536 each per ping (a larger change goes in several periods).
}

struct PingReply {
  code @0 :UInt16;
  # 0, or objectNotConnected: the set named is not (or no longer) known: the client was
  # collected. Its proxies of this process fail from then on; a new set starts with setId 0.

  setId @1 :UInt64;
  # The set's id (a new one when the ping asked for one).

  sequence @2 :UInt64;
  # The ping's sequence, echoed: the lists of that ping and all before it are applied.
}
