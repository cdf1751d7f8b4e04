# The interfaces of the activation tests: the class ferry-test-class-server serves, and a
# listener the client passes to it (references both ways).
@0xd2f0c9a8a35f1e61;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("acttest");

interface Activated {
  pid @0 () -> (pid :Int32);
  # The server process's pid.

  callBack @1 (listener :Listener, value :Int64) -> (answer :Int64);
  # Calls listener.heard(value) from the server and returns its answer.

  sibling @2 () -> (sibling :Activated);
  # A new object of the same server process, passed back to the caller.
}

interface Listener {
  heard @0 (value :Int64) -> (answer :Int64);
}
