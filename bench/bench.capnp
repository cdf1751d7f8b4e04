@0x9ec0d0d55ebaf541;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("bench");

interface Bench {
  null @0 () -> ();
  echo @1 (data :Data) -> (data :Data);
}
