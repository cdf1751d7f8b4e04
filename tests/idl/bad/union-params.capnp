# expect: unions are not supported in parameters
# expect-line: 11
@0xdd5a9ce23b341504;

struct Choice {
  union {
    number @0 :Int32;
    text @1 :Text;
  }
}
interface Chooser { choose @0 Choice -> (); }
