# expect: parameter 'points': List(struct) is not supported
# expect-line: 8
@0xd8798a145c68346f;

struct Point { x @0 :Float64; y @1 :Float64; }

interface Plotter {
  plot @0 (points :List(Point)) -> ();
}
