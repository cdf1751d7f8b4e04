# expect: method 'Derived.open' collides with method 'Base.open'
# expect-line: 11
@0xcf866b9f6513dfe9;

interface Base {
  open @0 () -> ();
}

interface Derived extends(Base) {
  close @0 () -> ();
  open @1 (path :Text) -> ();
}
