# expect: generic interfaces are not supported
# expect-line: 5
@0xf10d46a632ebcc13;

interface Box(T) {
  get @0 () -> (value :T);
}
