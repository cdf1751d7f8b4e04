# Annotations understood by capnpc-ferry. Import with:
#
#     using Ferry = import "/ferry/annotations.capnp";
#
# and annotate methods, e.g. `notify @0 (event :Text) -> () $Ferry.oneway;`.
@0x95e8e32fe30ee399;

annotation oneway @0xbfff24751f0de528 (method) :Void;
# The caller does not wait: the proxy sends the request and returns at once, and no response is
# ever sent. The method must have no results. Failures (unreachable object, servant exception) are
# not reported to the caller; they are logged and counted by the runtime.

annotation idempotent @0xda852124e0c1b0d0 (method) :Void;
# Executing the call twice has the same effect as executing it once. Over datagram transports an
# idempotent call may be retried transparently after a loss; any other call is executed at most
# once (the UDP transport's reply cache enforces it).

annotation exception @0xadb5a649ee0e4343 (struct) :Void;
# The struct is an error a servant may throw: capnpc-ferry emits an exception class of the same
# name in the interface namespace (`<ns>::iface::OutOfStock`, derived from ferry::ApplicationError,
# see ferry/application-error.h), constructed from the struct's fields and read back with
# `fields()`. The caller catches it as that class, with its fields, whatever process or host the
# servant runs in. The struct may not hold interfaces (nor AnyPointer), and may not be generic.

enum Threading {
  # A class's threading model (ferry::ThreadingModel): which apartments its objects tolerate.
  apartment @0;  # an STA only
  free @1;       # the MTA only
  both @2;
}

annotation threading @0xa6f55c66b2f09880 (const) :Threading;
# Declares a class for activation (ferry/activation.h): on a Text constant whose value is the
# class name, beside the interfaces its objects implement, e.g.
#
#     const calculatorClass :Text = "demo.Calculator" $Ferry.threading(both);
#
# capnp's C++ output gives the name as demo::CALCULATOR_CLASS (ferry::Clsid{demo::CALCULATOR_CLASS.get().cStr()});
# the threading model is the one to give Runtime::registerClass for the class in-process. The name
# follows the rule of published names (1 to 128 characters: segments of [A-Za-z0-9._~-]
# separated by single '/'), and a class file of that name tells ferryd which server to launch.
