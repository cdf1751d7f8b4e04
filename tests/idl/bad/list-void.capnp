# expect: parameter 'marks': List(Void) is not supported
# expect-line: 6
@0xd3c6a1e0b2f4a5c7;

interface Tally {
  count @0 (marks :List(Void)) -> (count :UInt32);
}
