@0x9ec0d0d55ebaf541;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("bench");

interface Bench {
  null @0 () -> ();
  echo @1 (data :Data) -> (data :Data);
  sink @2 (data :Data) -> (size :UInt64);
  # Takes a large request, answers with its size: request throughput.
}

interface Pile {
  make @0 (count :UInt32) -> (items :List(Bench));
  # `count` new Bench objects: what a client holds in ferry-bench's distributed GC row.
}
