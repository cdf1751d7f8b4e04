# expect: generic methods are not supported
# expect-line: 7
@0xde527e0681b90ef9;

interface Echo {
  echoText @0 (text :Text) -> (text :Text);
  echo @1 [T] (value :T) -> (value :T);
}
