# expect: result 'lists': List(AnyList) is not supported
# expect-line: 10
@0xc959d33a43b60d5b;

# Every problem is reported, not only the first: the one checked here is the second.

interface Broken {
  first @0 (value :AnyPointer) -> ();
  fine @1 (value :Int32) -> (value :Int32);
  second @2 () -> (lists :List(AnyList));
}
