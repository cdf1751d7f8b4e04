# expect: parameter 'values': List(AnyList) is not supported
# expect-line: 8
@0xa7993d59934151d1;

# capnp itself rejects List(AnyPointer) and List(AnyStruct); List(AnyList) and List(Capability)
# reach capnpc-ferry.
interface Bag {
  putAll @0 (values :List(AnyList)) -> ();
}
