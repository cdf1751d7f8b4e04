# expect: streaming methods (-> stream) are not supported
# expect-line: 8
@0xf1b2a4a0c3d5e6f7;

# A stream is refused rather than compiled as a plain call without flow control.

interface Upload {
  write @0 (chunk :Data) -> stream;
  done @1 () -> ();
}
