# expect: result 'entry': struct Entry contains an AnyPointer (field 'Entry.payload')
# expect-line: 10
@0xb8d482b40f5bfde1;

struct Entry {
  payload @0 :AnyPointer;
}

interface Journal {
  last @0 () -> (entry :Entry);
}
