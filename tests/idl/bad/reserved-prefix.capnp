# expect: method name '_ferryDispatch' is reserved
# expect-line: 8
@0xd5b4bf95a0231cdc;

using Cxx = import "/capnp/c++.capnp";

interface Thing {
  dispatch @0 () -> () $Cxx.name("_ferryDispatch");
}
