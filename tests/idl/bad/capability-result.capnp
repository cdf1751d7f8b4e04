# expect: result 'cap': Capability is not supported
# expect-line: 6
@0xc95b575771053160;

interface Factory {
  make @0 () -> (cap :Capability);
}
