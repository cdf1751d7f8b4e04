# expect: result 'rows': List(List) is not supported
# expect-line: 6
@0x860f794469edd553;

interface Matrix {
  rows @0 () -> (rows :List(List(Int32)));
}
