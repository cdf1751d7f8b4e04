// Greets the server whose OBJREF text is the argument, and says which transport it used.
#include <cstdio>

#include <ferry/ferry.h>

#include "greeter.ferry.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: greeter-client <objref> <name>\n");
    return 2;
  }
  try {
    ferry::Runtime runtime;
    auto mta = runtime.joinMta();
    auto greeter = ferry::unmarshalInterface<greeter::iface::Greeter>(ferry::objRefFromText(argv[1]));
    std::printf("%s\n", greeter->greet(argv[2]).c_str());
    std::printf("greetings: %u\n", greeter->count());
    std::printf("transport: %s\n", ferry::transportOf(greeter.get()).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "greeter-client: %s\n", e.what());
    return 1;
  }
  return 0;
}
