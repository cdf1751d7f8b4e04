# expect: groups are not supported in parameters
# expect-line: 14
@0xe43f2984f4def3ea;

struct Located {
  position :group {
    x @0 :Int32;
    y @1 :Int32;
  }
}

interface Map {
  mark @0 (name :Text) -> ();
  place @1 Located -> ();
}
