# Naming corners capnpc-ferry must get right; compiled (not run) by the tests.
#
#   - no $Cxx.namespace: capnp types are global, ferry classes are in namespace `iface`;
#   - an interface nested in a struct (iface::Holder_Inner) using an enum nested there too;
#   - an interface nested in an interface that extends its parent (iface::Tree_Node);
#   - an interface without methods, used as a base and as a parameter;
#   - C++ keywords as method, parameter and result names (delete_, default_, new_, ...);
#   - $Cxx.name on a method, a struct and an interface;
#   - Void parameters and results, which are skipped.
@0x850b5f768641d35b;

using Cxx = import "/capnp/c++.capnp";

struct Holder {
  enum Mode {
    fast @0;
    safe @1;
  }

  interface Inner {
    run @0 (mode :Mode) -> (mode :Mode);
  }
}

interface Empty {}

struct Renamed $Cxx.name("CxxRenamedStruct") {
  x @0 :Int32;
}

interface Keywords extends(Empty) {
  delete @0 (default :Int32, class :Text) -> (new :Int32, this :Text);
  renamed @1 () -> (value :Int32) $Cxx.name("cxxRenamed");
  useInner @2 (inner :Holder.Inner) -> (inner :Holder.Inner);
  useEmpty @3 (empty :Empty) -> ();
  voids @4 (nothing :Void, x :Int32) -> (nothing :Void);
  echoRenamed @5 Renamed -> Renamed;
  passRenamed @6 (value :Renamed) -> (value :Renamed);
}

interface Tree {
  root @0 () -> (node :Node);

  interface Node extends(Tree) {
    parent @0 () -> (node :Node);
  }
}

interface RenamedInterface $Cxx.name("CxxInterface") {
  ping @0 () -> ();
}
