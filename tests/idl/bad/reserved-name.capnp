# expect: method name 'iid' is reserved
# expect-line: 7
@0xe1cc9ad86055957d;

interface Thing {
  name @0 () -> (name :Text);
  iid @1 () -> (iid :UInt64);
}
