# expect: parameter 'pair': generic structs are not supported
# expect-line: 11
@0xdd4e9c8deed14f78;

struct Pair(A, B) {
  first @0 :A;
  second @1 :B;
}

interface Pairs {
  add @0 (pair :Pair(Text, Text)) -> ();
}
