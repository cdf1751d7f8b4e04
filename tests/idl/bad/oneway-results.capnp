# expect: a $Ferry.oneway method cannot have results
# expect-line: 9
@0xed4dc264cce1b17f;

using Ferry = import "/ferry/annotations.capnp";

interface Logger {
  log @0 (line :Text) -> () $Ferry.oneway;
  flush @1 () -> (written :UInt64) $Ferry.oneway;
}
