# expect: struct Slot contains a generic interface (field 'Slot.box')
# expect-line: 14
@0xe2a7b3c4d5f6a1b9;

interface Box(T) {
  get @0 () -> (value :T);
}

struct Slot {
  box @0 :Box(Text);
}

interface Shelf {
  put @0 (slot :Slot) -> ();
}
