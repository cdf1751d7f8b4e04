# Activation: creating an object by its class in a server process (COM's class objects and SCM).
#
# A server process registers a class object with its host's ferryd (frame kind 19, over the
# pipe). A client asks a host's ferryd for an instance (frame kind 20, over any transport: the
# pipe on its own host, tcp or udp at port 7135 on another); ferryd asks a server that registered
# the class (the same request, forwarded over the server's connection) or launches the server its
# class file names, waits for it to register, then asks it; the server creates the instance in the
# apartment that registered the class object and answers with a normal OBJREF of it (frame kind
# 21), which ferryd hands back to the client unchanged. A process without a ferryd answers
# activation requests for its own class objects on its own endpoints.
#
# Class names follow the rule of published names (resolver.capnp): 1 to 128 characters, segments
# of [A-Za-z0-9._~-] separated by single '/'.
@0xc8ee8759735d8162;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::wire");

using import "orpc.capnp".ErrorInfo;

struct ClassObjectRegistration {
  # Frame kind 19, oneway, to ferryd over its pipe (refused elsewhere: the connection is closed as
  # a protocol error). ferryd routes activations of `clsid` to the registering connection until
  # it is revoked, used once (singleUse), or the connection closes. Several processes may register
  # the same class; ferryd asks the one registered first that is not being asked to exit.
  clsid @0 :Text;
  singleUse @1 :Bool;
  revoke @2 :Bool;
  # True: the process withdraws its class object (`singleUse` is ignored).
}

struct ActivationRequest {
  # Frame kind 20, a request (call id not 0) answered by an ActivationReply in frame kind 21 with
  # the same call id.
  union {
    activate @0 :Activate;
    idleQuery @1 :Void;
    # From ferryd to a server it launched: ActivationReply.idle.
    exit @2 :Void;
    # From ferryd to a server it launched that has been idle for its class file's idle timeout:
    # the server's waitForExitRequest() returns true. ActivationReply.done.
  }
}

struct Activate {
  clsid @0 :Text;
  iid @1 :UInt64;
  # The interface the OBJREF is marshaled for; the object must implement it (else noInterface).
}

struct ActivationReply {
  union {
    objref @0 :Data;
    # A normal OBJREF of the new instance, marshaled for another machine (one unmarshal).
    idle @1 :UInt64;
    # How many objects of the server have references held by other apartments (0: idle).
    done @2 :Void;
    error @3 :ErrorInfo;
    # classNotRegistered: no class object and no class file; serverStartFailed: the launched
    # server exited before registering (the message has its exit status and last lines of
    # standard error); deadlineExceeded: it did not register within its start timeout;
    # accessDenied: the level rule or the access check refused the requester; noInterface.
  }
}
