# The demo's interfaces: a calculator that reports every result to the listeners it was given.
@0xb4f17908d3f9dcae;

using Cxx = import "/capnp/c++.capnp";
using Ferry = import "/ferry/annotations.capnp";
$Cxx.namespace("demo");

const calculatorClass :Text = "demo.Calculator" $Ferry.threading(both);
# The class part 3 of the demo activates through ferryd; its server registers a class object
# for it.

interface Calculator {
  add @0 (a :Float64, b :Float64) -> (sum :Float64);
  divide @1 (a :Float64, b :Float64) -> (quotient :Float64);
  # Throws (and the caller gets serverFault) when b is 0.

  subscribe @2 (listener :Listener) -> (listeners :UInt32);
  # Every later result is reported to `listener`, in the listener's own apartment. Returns how
  # many listeners there are now.

  unsubscribeAll @3 () -> ();

  whereAmI @4 () -> (apartment :Text);
  # The name of the apartment the calculator runs in.

  whoCalls @5 () -> (caller :Text);
  # Who the calculator's process says is calling: the security provider, the principal it
  # authenticated and the level the call was protected at (ferry::clientBlanket()).
}

interface Listener {
  onResult @0 (operation :Text, value :Float64) -> ();
}
