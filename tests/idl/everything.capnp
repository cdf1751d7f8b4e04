# Every construct capnpc-ferry supports, for the core round-trip tests. Keep it stable: tests
# implement these interfaces. Generated C++ lives in namespace idltest::iface (everything.ferry.h).
#
# What a test servant should do, so that each round trip through a proxy is checkable:
#
#   Named.name            returns the servant's name (a Text chosen by the test).
#   Counter.increment     adds `by` to a counter and returns the new value.
#   Switch.toggle         flips a flag (initially off) and returns the new state.
#   Gadget.reset          sets the counter to 0 and the flag to off.
#     Gadget extends Counter and Switch, which both extend Named: a diamond. One servant
#     implements all four interfaces; queryInterface must reach each of them.
#
#   Everything.echoScalars   returns its eleven arguments unchanged (multiple results).
#   Everything.add           returns a + b (wrapping).
#   Everything.divmod        returns quot = a / b and rem = a % b.
#   Everything.echoColor     returns its argument (enum).
#   Everything.echoText      returns its argument.
#   Everything.echoData      returns its argument.
#   Everything.echoLists     returns its fourteen lists unchanged (List of every supported element).
#   Everything.movePoint     returns `point` moved by (dx, dy), label unchanged (struct in and out).
#   Everything.describePair  returns "<number>:<text>", e.g. "7:seven" (named params struct).
#   Everything.echoPair      returns its argument (named params and named results struct).
#   Everything.doNothing     does nothing (no params, no results).
#   Everything.notify        records `event` (one-way: the caller does not wait).
#   Everything.lastNotification  returns the last event notify recorded, or "" if none.
#   Everything.echoListener  returns its argument: the same object (interface in and out).
#   Everything.callListener  calls listener.onEvent(event) and returns once it has returned.
#   Everything.makeGadget    returns a new Gadget whose counter starts at `start` (interface result).
#   Everything.drain         calls sink.put(item) for each item in order and returns how many
#                            (an interface parameter from another file, imported.capnp).
#   Everything.echoPoints    returns its list of structs unchanged.
#   Everything.echoNested    returns its lists of lists unchanged.
#   Everything.echoListeners returns its list of interfaces: the same objects, nulls kept.
#   Everything.notifyAll     calls onEvent(event) on each non-null listener; returns how many.
#   Everything.echoHolder    returns its argument (a struct holding interfaces, in and out).
#   Everything.keep          keeps `holder` (and the interface pointers in it) until releaseKept.
#   Everything.releaseKept   calls onEvent("released") on the listener and each listener of every
#                            holder kept, drops them and returns how many holders it kept.
#   Everything.describeShape returns "circle <radius> <label>" or "rectangle <w>x<h> <label>"
#                            (%g numbers; a params struct with a union and a group, passed whole).
#   Everything.scaleShape    returns `shape` with every length multiplied by `factor` (a results
#                            struct with a union, returned whole).
#   Everything.step          returns value + by (`by` defaults to the constant defaultStep).
#   Everything.greet         returns "<greeting> <name> x<times> <color>" (color as its number),
#                            e.g. "hello world x1 1" for the defaults.
#   Everything.defaultConfig returns a Config with no field set (the reader sees the defaults).
#   Everything.echoConfig    returns its argument.
#   Everything.Listener.onEvent  (a nested interface) records `event`.
@0xcc7ace88e48249a1;

using Cxx = import "/capnp/c++.capnp";
using Ferry = import "/ferry/annotations.capnp";
using Imported = import "imported.capnp";

$Cxx.namespace("idltest");

enum Color {
  red @0;
  green @1;
  blue @2;
}

struct Point {
  x @0 :Float64;
  y @1 :Float64;
  label @2 :Text;
}

struct Pair {
  number @0 :Int32;
  text @1 :Text;
}

const defaultStep :Int64 = 5;
# A constant of the file, used as a default value below.

struct Holder {
  # Interfaces inside a struct: each travels as an interface pointer.
  name @0 :Text;
  listener @1 :Everything.Listener;
  listeners @2 :List(Everything.Listener);
}

struct Shape {
  # A union and a group: methods pass such a struct whole, as capnp's type.
  union {
    circle @0 :Float64;
    # The radius.
    rectangle :group {
      width @1 :Float64;
      height @2 :Float64;
    }
  }
  label @3 :Text;
}

struct Config {
  # Default values: a field never set reads as its default.
  retries @0 :Int32 = 3;
  name @1 :Text = "default";
  ratio @2 :Float64 = 0.5;
  color @3 :Color = blue;
}

struct OutOfRange $Ferry.exception {
  # A typed application error: the servant of `checkedStep` throws it, the caller catches it as
  # idltest::iface::OutOfRange with these fields.
  value @0 :Int64;
  limit @1 :Int64;
  reason @2 :Text;
}

interface Named {
  # Something with a name.

  name @0 () -> (name :Text) $Ferry.idempotent;
  # The servant's name.
}

interface Counter extends(Named) {
  increment @0 (by :Int64) -> (value :Int64);
  # Adds `by` to the counter; returns the new value.
}

interface Switch extends(Named) {
  toggle @0 () -> (on :Bool);
  # Flips the switch; returns the new state.
}

interface Gadget extends(Counter, Switch) {
  # A counter and a switch: multiple inheritance with a diamond over Named.

  reset @0 () -> ();
  # Counter back to 0, switch off.
}

interface Everything {
  # One method per supported parameter and result shape.

  interface Listener {
    # A callback, declared inside Everything (C++ class Everything_Listener).

    onEvent @0 (event :Text) -> ();
  }

  echoScalars @0 (b :Bool, i8 :Int8, i16 :Int16, i32 :Int32, i64 :Int64,
                  u8 :UInt8, u16 :UInt16, u32 :UInt32, u64 :UInt64,
                  f32 :Float32, f64 :Float64)
              -> (b :Bool, i8 :Int8, i16 :Int16, i32 :Int32, i64 :Int64,
                  u8 :UInt8, u16 :UInt16, u32 :UInt32, u64 :UInt64,
                  f32 :Float32, f64 :Float64);
  # Returns every argument unchanged.

  add @1 (a :Int32, b :Int32) -> (sum :Int32);
  # a + b.

  divmod @2 (a :Int32, b :Int32) -> (quot :Int32, rem :Int32);
  # a / b and a % b.

  echoColor @3 (color :Color) -> (color :Color);

  echoText @4 (text :Text) -> (text :Text);

  echoData @5 (data :Data) -> (data :Data);

  echoLists @6 (bools :List(Bool), int8s :List(Int8), int16s :List(Int16), int32s :List(Int32),
                int64s :List(Int64), uint8s :List(UInt8), uint16s :List(UInt16),
                uint32s :List(UInt32), uint64s :List(UInt64), float32s :List(Float32),
                float64s :List(Float64), colors :List(Color), texts :List(Text),
                datas :List(Data))
            -> (bools :List(Bool), int8s :List(Int8), int16s :List(Int16), int32s :List(Int32),
                int64s :List(Int64), uint8s :List(UInt8), uint16s :List(UInt16),
                uint32s :List(UInt32), uint64s :List(UInt64), float32s :List(Float32),
                float64s :List(Float64), colors :List(Color), texts :List(Text),
                datas :List(Data));
  # Returns every list unchanged.

  movePoint @7 (point :Point, dx :Float64, dy :Float64) -> (point :Point);
  # `point` moved by (dx, dy); the label is kept.

  describePair @8 Pair -> (description :Text);
  # "<number>:<text>".

  echoPair @9 Pair -> Pair;
  # Returns the pair unchanged.

  doNothing @10 () -> ();

  notify @11 (event :Text) -> () $Ferry.oneway;
  # Records `event`; see lastNotification.

  lastNotification @12 () -> (event :Text);
  # The last event notify recorded, or "".

  echoListener @13 (listener :Listener) -> (listener :Listener);
  # Returns the same object.

  callListener @14 (listener :Listener, event :Text) -> ();
  # Calls listener.onEvent(event).

  makeGadget @15 (start :Int64) -> (gadget :Gadget);
  # A new Gadget whose counter starts at `start`.

  drain @16 (sink :Imported.Sink, items :List(Text)) -> (count :UInt32);
  # Puts each item into `sink`, in order; returns how many.

  const maxItems :UInt32 = 100;
  # A constant of the interface: its ferry class re-exports it.

  echoPoints @17 (points :List(Point)) -> (points :List(Point));

  echoNested @18 (matrix :List(List(Int32)), words :List(List(Text)),
                  paths :List(List(Point)))
             -> (matrix :List(List(Int32)), words :List(List(Text)),
                 paths :List(List(Point)));

  echoListeners @19 (listeners :List(Listener)) -> (listeners :List(Listener));

  notifyAll @20 (listeners :List(Listener), event :Text) -> (count :UInt32);

  echoHolder @21 (holder :Holder) -> (holder :Holder);

  keep @22 (holder :Holder) -> ();

  releaseKept @23 () -> (count :UInt32);

  describeShape @24 Shape -> (description :Text);

  scaleShape @25 (shape :Shape, factor :Float64) -> Shape;

  step @26 (value :Int64, by :Int64 = .defaultStep) -> (value :Int64);

  greet @27 (greeting :Text, name :Text = "world", times :UInt8 = 1, color :Color = green)
        -> (text :Text);

  defaultConfig @28 () -> (config :Config);

  echoConfig @29 (config :Config) -> (config :Config);

  checkedStep @30 (value :Int64, limit :Int64) -> (value :Int64);
  # value + 1, or throws OutOfRange when value is at or past the limit.
}
