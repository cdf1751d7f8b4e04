# Interfaces of the distributed GC tests (dgc-test.cpp): a factory whose objects count their
# lives, so the exporting test sees when a client's references were released.
@0xd0ca63939188198d;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("dgctest");

interface Token {
  touch @0 () -> (serial :UInt64);
  # The token's serial number: a call that proves the object is still there.
}

interface Factory {
  make @0 (count :UInt32) -> (tokens :List(Token));
  # `count` new tokens, made in the factory's apartment.
}
