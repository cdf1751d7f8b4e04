# A schema without interfaces: capnpc-ferry still writes both files (build systems list them as
# outputs), holding only includes and an empty namespace.
@0xef7ceba073e2d7bb;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("idltest");

struct Plain {
  value @0 :Int32;
}
