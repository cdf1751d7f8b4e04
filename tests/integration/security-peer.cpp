// The other process of the security tests: serves a Probe whose `echo` of no bytes answers who
// called it, as ferry::clientBlanket() says ("provider|principal|level"), prints its OBJREF
// ("probe <hex>") and "ready", runs until its standard input closes, then prints "ran <calls the
// servant ran> denied <calls refused accessDenied> dropped <sealed frames dropped> replays
// <replays dropped> closed <connections closed for forgeries>" and exits 0. Before "ready" it
// prints "bindings <its string bindings, comma separated>".
//
//   ferry-security-peer [--transport tcp|udp|pipe[,...]] [--listen ADDRESS] [--security NAME]
//                       [--settings TEXT] [--minimum none|integrity|privacy] [--deny PRINCIPAL]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include <ferry/ferry.h>

#include "testing.ferry.h"

namespace {

std::atomic<int> gRan{0};

class BlanketProbe final : public ferry::Implements<testing::iface::Probe> {
public:
  uint64_t threadId() override { return ran(), static_cast<uint64_t>(getpid()); }
  std::vector<uint8_t> echo(std::span<const uint8_t> d) override {
    ran();
    if (!d.empty()) return {d.begin(), d.end()};
    std::optional<ferry::ClientBlanket> blanket = ferry::clientBlanket();
    std::string text = blanket ? blanket->provider + "|" + blanket->principal + "|" +
                                     std::string(ferry::toString(blanket->level))
                               : std::string("no blanket");
    return {text.begin(), text.end()};
  }
  void nothing() override { ran(); }
  void fail(std::string_view m) override { ran(), throw std::runtime_error(std::string(m)); }
  void sleepMillis(uint32_t) override { ran(); }
  uint64_t count() override { return ran(), ++_counted; }
  uint64_t peek() override { return ran(), _counted; }
  uint64_t countSlowly(uint32_t) override { return ran(), ++_counted; }
  bool waitForCancel(uint32_t) override { return ran(), false; }

private:
  static void ran() { gRan.fetch_add(1); }
  std::atomic<uint64_t> _counted{0};
};

ferry::SecurityLevel levelNamed(const std::string& name) {
  if (name == "privacy") return ferry::SecurityLevel::privacy;
  if (name == "integrity") return ferry::SecurityLevel::integrity;
  return ferry::SecurityLevel::none;
}

}  // namespace

int main(int argc, char** argv) {
  ferry::RuntimeOptions options;
  std::string provider, settings, deny;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--transport") {
      options.transports.clear();
      for (size_t start = 0; start <= value.size();) {
        size_t end = std::min(value.find(',', start), value.size());
        options.transports.push_back(value.substr(start, end - start));
        start = end + 1;
      }
    }
    if (flag == "--listen") options.listenAddresses = {value};
    if (flag == "--security") provider = value;
    if (flag == "--settings") settings = value;
    if (flag == "--minimum") options.minimumLevel = levelNamed(value);
    if (flag == "--deny") deny = value;
  }
  if (!provider.empty()) options.security.emplace_back(provider, settings);
  if (!deny.empty()) {
    options.accessCheck = [deny](const ferry::ClientBlanket& caller, const ferry::CallTarget&) {
      return caller.principal != deny;
    };
  }
  try {
    {
      ferry::Runtime runtime(options);
      auto packet = runtime.mta().invoke([] {
        return ferry::marshalInterface(
            ferry::Ref<testing::iface::Probe>(ferry::make<BlanketProbe>()),
            ferry::MarshalContext::differentMachine, ferry::MarshalFlags::tableStrong);
      });
      std::string bindings;
      for (const std::string& binding : runtime.bindings()) {
        bindings += (bindings.empty() ? "" : ",") + binding;
      }
      std::printf("probe %s\nbindings %s\nready\n", ferry::objRefToText(packet).c_str(),
                  bindings.c_str());
      std::fflush(stdout);
      char buffer[256];
      while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
      }
    }
    ferry::RuntimeStats stats = ferry::Runtime::stats();
    std::printf("ran %d denied %lld dropped %lld replays %lld closed %lld\n", gRan.load(),
                static_cast<long long>(stats.callsDenied),
                static_cast<long long>(stats.sealedFramesDropped),
                static_cast<long long>(stats.replaysDropped),
                static_cast<long long>(stats.linksClosedForForgeries));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "peer failed: %s\n", e.what());
    return 1;
  }
}
