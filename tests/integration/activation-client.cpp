// The client host of netns-test's activation case: activates CLASS on HOST through its ferryd
// and calls the instance with references passed both ways.
//   ferry-activation-client <host> <class> <listen address>
// Prints "pid N" (the server's) and "ok" when every check held, or "error CODE: message".
#include <cstdio>

#include <ferry/ferry.h>

#include "activation.ferry.h"

namespace {

class DoublingListener final : public ferry::Implements<acttest::iface::Listener> {
public:
  int64_t heard(int64_t value) override { return value * 2; }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: ferry-activation-client <host> <class> <listen address>\n");
    return 2;
  }
  try {
    ferry::RuntimeOptions options;
    options.listenAddresses = {argv[3]};
    options.allowInsecureNetwork = true;
    options.resolver = "none";
    ferry::Runtime runtime(options);
    auto mta = runtime.joinMta();
    auto object = ferry::createInstance<acttest::iface::Activated>({argv[2]}, {.host = argv[1]});
    int32_t pid = object->pid();
    std::printf("pid %d\n", pid);
    // Client → server: the server calls back into this host.
    bool heard = object->callBack(ferry::make<DoublingListener>(), 21) == 42;
    // Server → client: an object of the server's host.
    bool sibling = object->sibling()->pid() == pid;
    // Another host: a network transport, never the pipe.
    bool network = ferry::transportOf(object.get()).rfind("pipe:", 0) != 0;
    std::printf("%s\n", heard && sibling && network ? "ok" : "failed");
  } catch (const ferry::Error& e) {
    std::printf("error %s: %s\n", std::string(ferry::errcName(e.code())).c_str(),
                e.message().c_str());
  }
  std::fflush(stdout);
  return 0;
}
