# expect: parameter 'value': AnyPointer is not supported
# expect-line: 6
@0xb80c97cbb0781f53;

interface Store {
  put @0 (key :Text,
          value :AnyPointer) -> ();
}
