# expect: struct Outer contains an interface (field 'Inner.listener')
# expect-line: 16
@0x8eb7f01f54f0d4eb;

interface Listener { onEvent @0 () -> (); }

struct Inner {
  listener @0 :Listener;
}

struct Outer {
  inner @0 :List(Inner);
}

interface Registry {
  register @0 (outer :Outer) -> ();
}
