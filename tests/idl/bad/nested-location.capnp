# expect: parameter 'value': AnyPointer is not supported: ferry cannot know what it holds; use a concrete struct, list or interface type (Holder.Inner.put)
# expect-line: 17
@0xf327503c36a6c48f;

interface Inner {
  put @0 (value :Text) -> ();
}

struct Holder {
  # Inner.put @0 is mentioned here, in a comment, and in "put @0" a string:
  label @0 :Text = "put @0";

  interface Other {
    put @0 (value :Text) -> ();
  }
  interface Inner {
    put @0 (value :AnyPointer) -> ();
  }
}
