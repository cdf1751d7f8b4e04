// A server that ferryd launches for the activation tests (tests/integration/activation-test.cpp,
// netns-test.cpp), from class files those tests write:
//   ferry-test-class-server --class CLASS [--single-use] [--pids FILE] [--listen ADDR]
//                           [--fail | --never-register | --hold-own]
// It appends its pid to FILE first. Then, by mode: registers a class object for CLASS (serving
// acttest::Activated) and runs until ferryd asks it to exit, exiting 0; --fail writes a line to
// standard error and exits 3 at once; --never-register runs 60 s without registering;
// --hold-own also exports an object of its STA that its MTA holds a proxy to while it runs (a
// reference that holds the process for nobody else).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <ferry/ferry.h>

#include "activation.ferry.h"

namespace {

class ActivatedImpl final : public ferry::Implements<acttest::iface::Activated> {
public:
  int32_t pid() override { return static_cast<int32_t>(getpid()); }
  int64_t callBack(ferry::Ref<acttest::iface::Listener> listener, int64_t value) override {
    return listener->heard(value);
  }
  ferry::Ref<acttest::iface::Activated> sibling() override { return ferry::make<ActivatedImpl>(); }
};

}  // namespace

int main(int argc, char** argv) {
  std::string clsid;
  std::string pids;
  std::string listen = "127.0.0.1";
  bool singleUse = false;
  bool fail = false;
  bool neverRegister = false;
  bool holdOwn = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--class" && i + 1 < argc) clsid = argv[++i];
    else if (a == "--pids" && i + 1 < argc) pids = argv[++i];
    else if (a == "--listen" && i + 1 < argc) listen = argv[++i];
    else if (a == "--single-use") singleUse = true;
    else if (a == "--fail") fail = true;
    else if (a == "--never-register") neverRegister = true;
    else if (a == "--hold-own") holdOwn = true;
    else {
      std::fprintf(stderr, "class-server: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (!pids.empty()) {
    int fd = open(pids.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    std::string line = std::to_string(getpid()) + "\n";
    if (fd < 0 || write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 2;
    close(fd);
  }
  if (fail) {
    std::fprintf(stderr, "class-server: cannot open its database /nonexistent/db\n");
    return 3;
  }
  if (neverRegister) {
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  }
  try {
    ferry::RuntimeOptions options;
    options.listenAddresses = {listen};
    options.allowInsecureNetwork = listen != "127.0.0.1";
    ferry::Runtime runtime(options);
    ferry::Sta sta = runtime.newSta("class-server");
    ferry::ClassObjectRegistration registration = sta.invoke([&] {
      return ferry::registerClassObject(
          {clsid}, [] { return ferry::Ref<ferry::Interface>(ferry::make<ActivatedImpl>()); },
          singleUse ? ferry::ClassUse::singleUse : ferry::ClassUse::multipleUse);
    });
    ferry::Ref<acttest::iface::Activated> own;
    if (holdOwn) {
      ferry::ObjRefBytes packet = sta.invoke([] {
        return ferry::marshalInterface(
            ferry::Ref<acttest::iface::Activated>(ferry::make<ActivatedImpl>()));
      });
      own = runtime.mta().invoke(
          [&] { return ferry::unmarshalInterface<acttest::iface::Activated>(packet); });
    }
    while (!ferry::waitForExitRequest(std::chrono::milliseconds(200))) {
    }
    runtime.mta().invoke([&] { own = nullptr; });
    registration.revoke();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "class-server: %s\n", e.what());
    return 1;
  }
  return 0;
}
