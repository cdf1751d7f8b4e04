# An interface defined in its own file and namespace, used as a parameter type by
# everything.capnp: proves that a generated header includes the ferry headers of its imports.
#
# Test servant:
#   Sink.put    appends `item` to a list the test can inspect afterwards.
@0xd841f9e6dd3a68f2;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("idltest::imported");

interface Sink {
  # Receives items one at a time.

  put @0 (item :Text) -> ();
  # Appends `item` to what the sink has received.
}
