# A downstream project's interface: built against an installed ferry, outside ferry's tree.
@0xd3c1a4b3e6f21a07;

using Cxx = import "/capnp/c++.capnp";
using Ferry = import "/ferry/annotations.capnp";
$Cxx.namespace("greeter");

interface Greeter {
  greet @0 (name :Text) -> (greeting :Text);
  count @1 () -> (greetings :UInt32) $Ferry.idempotent;
}
