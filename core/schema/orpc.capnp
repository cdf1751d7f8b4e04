# ORPC: the request and response messages of a call from a proxy to a stub.
#
# A call names the stub by IPID and the method by (interfaceId, methodId): interfaceId is the IID
# of the interface that *declares* the method (a base of the proxied interface, for inherited
# methods) and methodId its ordinal there. The params and results are the Cap'n Proto structs the
# schema declares for the method; interface-typed fields inside them are left null and the
# interface pointers travel in `caps` instead, numbered in the order of the interface-typed fields.
# Interface pointers inside the values of other fields (a struct field of interface type, the
# elements of a List(I), at any depth) are Cap'n Proto capability pointers: capability pointer k
# names caps[n + k], where n is the number of the method's own interface-typed fields. A capability
# pointer beyond `caps` reads as a broken capability, which the receiver reports as a protocol
# error when the servant (or caller) reads it.
#
# In one process the messages are handed over as built (no serialization). Between processes each
# transport message is one frame:
#
#   offset size  field
#        0    4  magic "FRY1" (0x46 0x52 0x59 0x31)
#        4    1  kind: 1 request, 2 response, 3 resolve request, 4 resolve reply,
#                5 register, 6 unregister (resolver.capnp, to ferryd only),
#                7 cancel: the caller asks that call `call id` (its own, on this connection) be
#                  canceled; no payload, no reply. A call still queued is answered with
#                  `canceled` and never runs; a running one is told (ferry::callCanceled()).
#                8 ping, 9 ping reply (ping.capnp): distributed GC between two processes;
#                  the call id is the client's name for its ping set, echoed by the reply;
#                  OXID 0.
#                10 bind: the bind exchange (struct Bind below); call id and OXID 0.
#                11 sealed: a frame protected by the record layer (below); its header differs
#                  after byte 5.
#                16 named-object request, 17 its reply, 18 name withdrawal (resolver.capnp:
#                  NameRequest, NameReply, NameWithdrawal; 18 to ferryd only).
#                19 class object registration (to ferryd only), 20 activation request, 21 its
#                  reply (activation.capnp: ClassObjectRegistration, ActivationRequest,
#                  ActivationReply).
#        5    1  flags: 0, except bit 0 (resent) in a request: the caller sent this request before,
#                with the same call id, on a connection that was lost while it waited; the
#                exporter's reply cache (below) answers it without running the call twice. Any
#                other bit, or bit 0 in another kind, is a protocol error.
#        6    2  reserved: 0
#        8    8  call id (little-endian): chosen by the requester, echoed by the reply; 0 only for
#                oneway requests
#       16    8  OXID (little-endian): the exporter a request is for; 0 in replies and resolves
#       24    -  a Cap'n Proto message in standard framing (segment table, then segments; empty for
#                kind 7):
#                Request, Response, resolver.capnp ResolveRequest, ResolveReply,
#                Registration, ResolveRequest (unregister), ping.capnp Ping or PingReply,
#                NameRequest, NameReply or NameWithdrawal by kind.
#
# The receiver checks every field, the payload's length (a multiple of 8, at most the negotiated
# maximum message size) and its structure before it acts; a frame that fails is counted as a
# protocol error and closes that connection only. Calls on one connection are multiplexed by call
# id; responses may arrive in any order.
#
# At most once across lost connections. Transports deliver each message at most once on a
# connection; a connection can still be lost (a udp session timing out, a reset) while a call is
# in flight, and then the caller cannot know whether the call ran. So the caller keeps each
# request until its response comes and, when the connection is lost, sends it again — same call
# id, same bytes, the `resent` flag set — on a new connection to the same binding (at most twice
# per call, within the call's deadline). The exporter keeps a *reply cache* keyed by
# (Request.caller, Request.callerToken, call id), one entry per call that expects a response, from
# the request's arrival. The caller's process id is public (it is in every OBJREF the caller
# marshals); its token is not, so a peer that names another's process id reaches none of its
# entries, and none of its calls' fates:
#
#   - a request whose key is in the cache never runs again: while the call runs, its response is
#     redirected to the connection the newest copy came on; once it has completed, the cached
#     response frame is sent again (if it was too large to keep, the answer is `outcomeUnknown`);
#   - a request whose key is not in the cache runs, unless its call id is at most the caller's
#     `forgotten` mark (the highest call id whose entry was dropped by age): then the answer is
#     `outcomeUnknown`, since it may have run;
#   - a resent request for an apartment this process does not have is answered `outcomeUnknown`
#     (the exporter that had it may have run the call before it went), not `disconnected`.
#
# An entry goes when the caller acknowledges the response (Request.acknowledged, in a later
# request), when the connection closes cleanly (the caller went away; a call still running is
# canceled), or `RuntimeOptions::replyRetention` (default 60 s, longer than a udp idle timeout)
# after the call completed. A connection that is *lost* (closed with an error) leaves its entries
# and lets their calls finish, so a resent copy finds them. The cache holds at most 262144 entries,
# and at most `RuntimeOptions::replyCachePerCaller` (default 65536) of one caller (a request
# beyond either bound is answered `retryLater` without running), and 64 MiB of responses (a larger
# response is sent but not kept).
#
# Security: the bind exchange and sealed frames. A client configured with security providers
# (RuntimeOptions::security) begins every connection, before any other frame, with a bind
# exchange, in clear, of Bind messages (kind 8), on every transport alike:
#
#   client → offer {version 1, the providers it would use on this transport, the least level it
#            accepts}
#   server → choice {one provider both sides have and that fits the transport, and the level:
#            the higher of the client's and the server's minimums} — or refusal
#   client → token, server → token, ... as the provider's step() writes them: the client sends a
#            token after each of its steps (possibly empty), the server after each of its own
#            steps that needs more, and `accept` (its last token) once it has authenticated the
#            client. The client then has its last step to take, if any; both ends are done.
#
# Any failure — no common provider or level, a token the provider refuses, a message out of
# turn — is answered with the one generic `refusal` (the reason is logged locally only, so no
# answer is an oracle) and ends the exchange; the client fails the calls waiting for the link
# with `unavailable`, naming the settings to check. A server that gets a first frame of any other
# kind runs that connection at level none (calls below its minimum are then refused
# accessDenied); a client without providers never sends an offer, and nothing on the wire changes
# for it. An exchange not done within 10 s ends the connection.
#
# Once done, both ends key the record layer (core/src/security/record.h) with the provider's
# export_secret("ferry/1 record", SHA-256(offer frame ‖ choice frame)): whoever altered the clear
# negotiation (a provider struck from the offer, a lower level chosen) holds keys that differ, and
# the first sealed frame fails. Every later frame on the connection, both ways, is sealed (kind 11)
# at the chosen level, unless the provider is kernel-protected (local: the pipe's kernel keeps
# frames private, the level is privacy, and frames go as they are):
#
#   offset size  field
#        0    4  magic "FRY1"
#        4    1  kind 11
#        5    3  0
#        8    8  frame number (little-endian): 0, 1, 2, ... per direction; a new AES-256-GCM key
#                every 2^22 frames (its phase: number >> 22)
#       16    8  0
#       24    n  the inner frame (a whole frame of the kinds above): encrypted at privacy, as it
#                is at integrity
#     24+n   16  the AES-256-GCM tag over the 24-byte header (and, at integrity, the inner frame)
#                with nonce IV xor number, keys per direction (a frame reflected to its sender
#                fails)
#
# A receiver drops (and counts; it never answers) a sealed frame that is malformed, whose number
# it has seen or is older than its 2048-frame window, or whose tag fails; a frame in clear after
# the exchange is dropped the same way. A number is committed to the window only after the tag
# verified.
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
  # Bit 0 (oneway): the caller expects no response. Bit 1 (idempotent): the method is marked
  # $Ferry.idempotent; the caller may send the same call again after a transport failure.
  # Other bits must be 0.

  params @6 :AnyPointer;
  caps @7 :List(ObjRef);

  caller @8 :UInt64;
  # The requesting process's id (the processId of its OBJREFs): with the call id, the key of the
  # exporter's reply cache (see the top of this file); with `callerToken`, the client whose
  # references RemUnknown requests add and release (remunknown.capnp). Required (non-zero) in
  # every request sent between processes, oneway ones included; all requests on one connection
  # name the same caller. 0 in process.

  callerToken @10 :UInt64;
  # A random number the calling process chose once, non-zero, sent with every request it makes
  # and shown to no one else: with `caller`, whose entries of the reply cache and whose
  # references these are. All requests on one connection carry the same token.

  acknowledged @9 :List(UInt64);
  # Call ids of this caller whose responses it has received on this connection and not yet
  # acknowledged: the exporter forgets their reply cache entries. At most 64 (more is a protocol
  # error); a caller with more sends the rest in its following requests (so a burst of N calls is
  # acknowledged by the next N/64 requests). Ids the exporter does not hold are ignored.
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
  # Values are only ever appended, never renumbered: 0 ok … 20 internal, 21 changedMode,
  # 22 nameInUse, 23 serverStartFailed, 24 applicationError.

  message @1 :Text;
  # Human-readable: what failed and why (at most 4 KiB; longer messages are truncated).

  detailType @2 :UInt64;
  # With code 24 (applicationError): the Cap'n Proto type id of the struct, annotated
  # $Ferry.exception in the interface's schema, that the servant threw; 0 when the error has no
  # such detail. A receiver that compiles that schema throws its generated exception class; one
  # that does not, a generic ApplicationError with the id and the fields.

  detail @3 :AnyPointer;
  # With detailType: the struct's fields. It holds no capability pointers (the IDL compiler refuses
  # interfaces in an exception struct). A detail that is not a struct is a protocol error.
}

struct CausalityId {
  hi @0 :UInt64;
  lo @1 :UInt64;
}

struct Bind {
  # One message of the bind exchange (see the top of this file).
  union {
    offer @0 :BindOffer;
    choice @1 :BindChoice;
    token @2 :Data;
    # The provider's token, as step() wrote it (at most its max_token_size; may be empty).
    accept @3 :Data;
    # The server authenticated the client: its last token (may be empty).
    refusal @4 :Void;
    # The exchange failed. Deliberately says nothing more.
  }
}

struct BindOffer {
  version @0 :UInt16;
  # 1. A server answers a higher version with refusal.
  providers @1 :List(UInt8);
  # ferry_security_provider_id values, the client's preference first; at most 16.
  level @2 :UInt8;
  # ferry_security_level: the least the client accepts (2 integrity, 3 privacy).
}

struct BindChoice {
  provider @0 :UInt8;
  # One of the offered ids.
  level @1 :UInt8;
  # The level the record layer will apply: at least the offer's. A kernel-protected provider's
  # is 3 (privacy).
}
