# expect: a $Ferry.exception struct cannot hold interfaces
# expect-line: 9
@0xb97dcf38e44e44df;

using Ferry = import "/ferry/annotations.capnp";

interface Shelf {}

struct NotStocked $Ferry.exception {
  item @0 :Text;
  alternative @1 :Shelf;
}

interface Store {
  take @0 (item :Text) -> ();
}
