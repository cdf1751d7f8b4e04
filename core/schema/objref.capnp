# OBJREF: the marshaled form of an interface pointer.
#
# An ObjRef names an object and the apartment it lives in; it never carries the object's state
# (except the `byValue` kind, which an object opts into). It is produced by marshalInterface in the
# object's apartment (the *exporter*) and consumed by unmarshalInterface in the *importer*, which
# may be another apartment of the same process, another process, or another host.
#
# Decoding rules (core/src/objref.cpp, `decodeObjRef`, the entry point the fuzzer drives):
#   * the message must be a single segment no larger than 64 KiB, and every field below must hold
#     a value in its documented range; anything else is `invalidObjRef` and changes nothing;
#   * exactly one member of the `kind` union is set; `iid` is never 0;
#   * the importer never trusts `publicRefs` beyond the value the exporter recorded for the
#     packet (`packetId`).
@0xc4e91196c00ee434;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::wire");

struct ObjRef {
  iid @0 :UInt64;
  # The interface the pointer was marshaled as: the Cap'n Proto type id of the interface. 0 is
  # never valid. The identity interface is 1.

  union {
    null @1 :Void;
    # A null interface pointer (only valid inside a call's capability list).

    standard @2 :StdObjRef;
    # Standard marshaling: the importer gets a proxy (or the real object in the exporter's own
    # apartment).

    custom @3 :CustomObjRef;
    # The object supplied its own marshaler (ferry::CustomMarshaler); the importing process hands
    # `data` to the unmarshaler registered under `unmarshalerClass`
    # (Runtime::registerUnmarshaler), whose release function also serves releaseMarshalData.

    byValue @4 :CustomObjRef;
    # The object chose to marshal its state: the importer creates a fresh object of
    # `unmarshalerClass` from `data`. No reference to the original object remains.
  }
}

struct StdObjRef {
  oxid @0 :UInt64;
  # The exporter (apartment). Never 0.

  oid @1 :UInt64;
  # The object's identity inside the exporter. Never 0.

  ipid @2 :Ipid;
  # The (object, interface) stub calls are addressed to. Never all-zero.

  publicRefs @3 :UInt32;
  # Public references transferred to the importer with this packet (0..1024). `normal` packets
  # carry 5 (COM's number); table packets carry 0 and the importer acquires its own on each
  # unmarshal. References are returned with RemUnknown.releaseRefs.

  flags @4 :MarshalFlags;

  packetId @5 :UInt64;
  # Unique per marshal operation. The exporter keeps a record per packet until it is consumed
  # (`normal`) or released (`releaseMarshalData`): a second unmarshal of a `normal` packet, or a
  # release of an unknown packet, fails with `objectNotConnected`; a packet whose fields disagree
  # with the record (oid, ipid, iid, table kind, publicRefs, noPing) is `invalidObjRef` and is not
  # consumed.
  #
  # 0 only for a `normal` packet an importer writes when it hands its proxy onward: such packets
  # are not recorded at the exporter (the importer cannot reach the exporter's table without a
  # round trip), and the references they carry are taken as transferred.

  hostId @6 :Data;
  # 16 bytes identifying the exporter's host (derived from /etc/machine-id). Together with
  # `processId` it tells the importer how far away the exporter is (its marshal context).

  processId @7 :UInt64;
  # The exporter's process: its pid in the high 32 bits and a per-process random 32-bit value in
  # the low ones, so a recycled pid is not mistaken for the same process.

  bindings @8 :List(StringBinding);
  # Where the exporter listens, cheapest first. Empty for `inproc` packets.

  securityBindings @9 :List(SecurityBinding);
  # The security providers the exporter accepts, in preference order.
}

struct Ipid {
  hi @0 :UInt64;
  lo @1 :UInt64;
}

struct MarshalFlags {
  table @0 :TableKind;
  noPing @1 :Bool;
  # Exempt from distributed garbage collection: the importer never pings this object and it lives
  # until its references are released explicitly.

  enum TableKind {
    normal @0;       # unmarshaled at most once; the successful unmarshal consumes it
    tableStrong @1;  # unmarshaled any number of times; the table entry keeps the object alive
    tableWeak @2;    # unmarshaled any number of times while the object lives
  }
}

struct StringBinding {
  # "protseq:address[endpoint]", e.g. "tcp:192.0.2.7[7135]" or "pipe:/run/user/0/ferry/x".
  protseq @0 :Text;     # 1..16 characters [a-z0-9]
  address @1 :Text;     # 0..255 bytes
  endpoint @2 :Text;    # 0..255 bytes
}

struct SecurityBinding {
  provider @0 :Text;    # security provider name, e.g. "none", "psk", "tls", "local"; 1..32 chars
  principal @1 :Text;   # the exporter's principal name for that provider; 0..255 bytes
}

struct CustomObjRef {
  unmarshalerClass @0 :Text;
  # The registered class that reconstructs the object (1..255 bytes).

  data @1 :Data;
  # The marshaler's bytes (0..64 KiB total OBJREF).
}
