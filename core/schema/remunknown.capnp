# RemUnknown: the remote face of every exporter (COM's IRemUnknown).
#
# Each apartment exports one RemUnknown object under a well-known IPID (handed out by the OXID
# resolver, or by the in-process apartment registry). Importers use it to query further
# interfaces of an object they hold, to acquire references and to return them. Calls to it are
# never subject to distributed GC, never refcounted and never disconnected, and the message filter
# always admits them.
@0xcade5de71b9867ef;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::wire");

using Ferry = import "/ferry/annotations.capnp";
using import "objref.capnp".Ipid;

interface RemUnknown @0xef82f385fdfd76e2 {
  queryInterfaces @0 (request :QiRequest) -> (reply :QiReply);
  # Asks the object that `request.ipid` belongs to for each IID in `request.iids`, in one round
  # trip. For each IID found, the exporter creates (or reuses) its interface stub and transfers
  # `request.refs` public references on it to the caller.

  addRefs @1 (request :RefBatch) -> (reply :AddRefReply);
  # Acquires references: `refs` more public references on each IPID. Per entry, an unknown IPID is
  # `objectNotRegistered` and changes nothing.

  releaseRefs @2 (request :RefBatch) -> () $Ferry.oneway;
  # Returns public references, batched per exporter. References are held per client (the
  # request's caller and callerToken, orpc.capnp): an entry returns references the caller holds
  # — those it acquired (addRefs, queryInterfaces, claimPacket, the results of its calls) or
  # received in an OBJREF the exporter could not attribute — and never another client's. An
  # entry asking for more is refused whole and counted (releasesRefused); an unknown IPID is
  # ignored (the object was disconnected). The rest of the batch still applies. When an object's
  # last strong reference goes, its stubs go and the object is released in its apartment.

  claimPacket @3 (request :PacketClaim) -> (reply :ClaimReply);
  # An importer in another process unmarshals an explicitly marshaled packet (packetId != 0): a
  # `normal` packet is consumed and its references pass to the caller; a table packet gives the
  # caller `tableRefs` new references. The claim must match the exporter's record of the packet.
  # Errors as for unmarshalInterface: objectNotConnected, invalidObjRef, objectNotRegistered.

  releasePacket @4 (request :PacketClaim) -> (reply :ClaimReply);
  # releaseMarshalData from another process. `tableRefs` is ignored.

  handOn @5 (request :RefBatch) -> () $Ferry.oneway;
  # The caller put `refs` of the references it holds on each IPID's object into an OBJREF for a
  # third process (a proxy marshaled onward): they leave the caller's account and are in transit
  # until the receiver returns them (releaseRefs). Entries asking for more than the caller holds
  # are refused whole and counted (releasesRefused), as for releaseRefs.
}

struct PacketClaim {
  packetId @0 :UInt64;
  oid @1 :UInt64;
  ipid @2 :Ipid;
  iid @3 :UInt64;
  table @4 :UInt8;          # 0 normal, 1 tableStrong, 2 tableWeak
  publicRefs @5 :UInt32;
  noPing @6 :Bool;
  tableRefs @7 :UInt32;     # 0..1024
}

struct ClaimReply {
  code @0 :UInt16;          # 0 (ok) or a ferry::Errc
  message @1 :Text;
  publicRefs @2 :UInt32;    # references now owned by the caller
}

struct QiRequest {
  ipid @0 :Ipid;
  refs @1 :UInt32;          # 1..1024
  iids @2 :List(UInt64);    # 1..64 entries
}

struct QiReply {
  results @0 :List(QiResult);   # one per requested IID, same order
}

struct QiResult {
  code @0 :UInt16;          # 0 (ok) or a ferry::Errc, typically noInterface
  ipid @1 :Ipid;            # the interface's stub, when ok
}

struct RefBatch {
  entries @0 :List(RefEntry);   # 1..1024 entries
}

struct RefEntry {
  ipid @0 :Ipid;
  refs @1 :UInt32;          # 1..1024
}

struct AddRefReply {
  codes @0 :List(UInt16);   # one per entry: 0 or a ferry::Errc
}
