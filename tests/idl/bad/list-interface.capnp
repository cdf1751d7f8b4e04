# expect: parameter 'listeners': List(interface) is not supported
# expect-line: 8
@0xc88ce10c8e6925e9;

interface Listener { onEvent @0 () -> (); }

interface Hub {
  addAll @0 (listeners :List(Listener)) -> ();
}
