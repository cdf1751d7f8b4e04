# expect: method 'Printer.start' and method 'Scanner.start' clash in C++
# expect-line: 13
@0x9eee0655727fe9f6;

interface Printer {
  start @0 () -> ();
}

interface Scanner {
  start @0 () -> ();
}

interface Copier extends(Printer, Scanner) {
  copy @0 () -> ();
}
