// The client process of the distributed GC tests (dgc-test.cpp). It unmarshals the exporter's
// Factory from its OBJREF text, then obeys one command per line of its standard input, answering
// each with one line:
//   factory         unmarshals the factory's OBJREF again              → "ok"
//   make N          asks the factory for N tokens and holds them        → "held <total>"
//   hold OBJREF     unmarshals a token's OBJREF text and holds it       → "held <total>"
//   call            touches every held token                            → "ok" or "error <errc>"
//   attack K        sends K RemUnknown.releaseRefs of one reference each for the first held
//                   token, as a hostile client would                    → "attacked"
//   block MS        blocks its apartment's thread for MS milliseconds   → "unblocked"
//   stats           → "stats <pings sent> <ping bytes sent>"
// It exits 0 when its input closes.
//
// With --serve it is the exporter instead (netns-test.cpp's hosts): it exports a Factory from an
// STA, prints "factory <OBJREF text>" and "ready", and answers
//   alive           → "alive <tokens of its factory not yet destroyed>"
//
//   ferry-test-dgc-client --factory OBJREF [--transport pipe|tcp|udp] [--ping-period MS]
//                         [--apartment sta|mta] [--listen ADDRESS] [--udp-settings TEXT]
//   ferry-test-dgc-client --serve [--ping-period MS] [--listen ADDRESS] [--udp-settings TEXT]
// A --listen address other than loopback runs without a security provider (test hosts only).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include <ferry/ferry.h>

#include "dgc.ferry.h"
#include "import-table.h"

namespace {

std::atomic<int> tokensAlive{0};

class TokenImpl final : public ferry::Implements<dgctest::iface::Token> {
public:
  TokenImpl() { ++tokensAlive; }
  ~TokenImpl() override { --tokensAlive; }
  uint64_t touch() override { return 1; }
};

class FactoryImpl final : public ferry::Implements<dgctest::iface::Factory> {
public:
  std::vector<ferry::Ref<dgctest::iface::Token>> make(uint32_t count) override {
    std::vector<ferry::Ref<dgctest::iface::Token>> out;
    for (uint32_t i = 0; i < count; ++i) out.push_back(ferry::make<TokenImpl>());
    return out;
  }
};

// --serve: exports a Factory until its input closes.
int serve(ferry::Runtime& runtime) {
  ferry::Sta sta = runtime.newSta("exporter");
  ferry::ObjRefBytes factory = sta.invoke([] {
    return ferry::marshalInterface(ferry::Ref<dgctest::iface::Factory>(ferry::make<FactoryImpl>()),
                                   ferry::MarshalContext::differentMachine,
                                   ferry::MarshalFlags::tableStrong);
  });
  std::printf("factory %s\nready\n", ferry::objRefToText(factory).c_str());
  std::fflush(stdout);
  for (std::string line; std::getline(std::cin, line);) {
    std::string answer =
        line == "alive" ? "alive " + std::to_string(tokensAlive.load()) : "unknown command";
    std::printf("%s\n", answer.c_str());
    std::fflush(stdout);
  }
  sta.invoke([&] { ferry::releaseMarshalData(factory); });
  return 0;
}

struct Client {
  std::string factoryText;
  ferry::Ref<dgctest::iface::Factory> factory;
  std::vector<ferry::Ref<dgctest::iface::Token>> tokens;

  std::string obey(const std::string& line) {
    std::string word = line.substr(0, line.find(' '));
    std::string rest = line.size() > word.size() ? line.substr(word.size() + 1) : "";
    try {
      if (word == "factory") {
        factory = ferry::unmarshalInterface<dgctest::iface::Factory>(
            ferry::objRefFromText(factoryText));
        return "ok";
      }
      if (word == "make") {
        for (auto& token : factory->make(static_cast<uint32_t>(std::stoul(rest)))) {
          tokens.push_back(std::move(token));
        }
        return "held " + std::to_string(tokens.size());
      }
      if (word == "hold") {
        tokens.push_back(ferry::unmarshalInterface<dgctest::iface::Token>(ferry::objRefFromText(rest)));
        return "held " + std::to_string(tokens.size());
      }
      if (word == "call") {
        for (auto& token : tokens) token->touch();
        return "ok";
      }
      if (word == "attack") {
        ferry::detail::ProxyBase* proxy = ferry::detail::asProxy(tokens.at(0).get());
        auto link = proxy->manager().link();
        for (unsigned long i = 0, n = std::stoul(rest); i < n; ++i) {
          link->release(proxy->ipid(), 1);
          link->flushReleases();  // one message each
        }
        return "attacked";
      }
      if (word == "block") {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::stoul(rest)));
        return "unblocked";
      }
      if (word == "stats") {
        auto stats = ferry::Runtime::stats();
        return "stats " + std::to_string(stats.pingsSent) + " " + std::to_string(stats.pingBytesSent);
      }
      return "unknown command";
    } catch (const ferry::Error& e) {
      return "error " + std::string(ferry::errcName(e.code())) + " " + e.message();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  ferry::RuntimeOptions options;
  std::string factoryText;
  std::string apartment = "sta";
  bool serving = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--serve") == 0) {
      serving = true;
      continue;
    }
    if (i + 1 == argc) break;
    if (std::strcmp(argv[i], "--factory") == 0) factoryText = argv[i + 1];
    if (std::strcmp(argv[i], "--transport") == 0) options.preferredTransport = argv[i + 1];
    if (std::strcmp(argv[i], "--ping-period") == 0) {
      options.pingPeriod = std::chrono::milliseconds(std::stoul(argv[i + 1]));
    }
    if (std::strcmp(argv[i], "--apartment") == 0) apartment = argv[i + 1];
    if (std::strcmp(argv[i], "--listen") == 0) {
      options.listenAddresses = {argv[i + 1]};
      options.allowInsecureNetwork = std::strcmp(argv[i + 1], "127.0.0.1") != 0;
    }
    if (std::strcmp(argv[i], "--udp-settings") == 0) options.transportSettings["udp"] = argv[i + 1];
    ++i;
  }
  try {
    ferry::Runtime runtime(options);
    if (serving) return serve(runtime);
    ferry::Apartment home = runtime.mta();
    ferry::Sta sta;
    if (apartment != "mta") {
      sta = runtime.newSta("client");
      home = sta;
    }
    Client client;
    client.factoryText = factoryText;
    if (home.invoke([&] { return client.obey("factory"); }) != "ok") return 1;
    std::printf("ready\n");
    std::fflush(stdout);
    for (std::string line; std::getline(std::cin, line);) {
      std::string answer = home.invoke([&] { return client.obey(line); });
      std::printf("%s\n", answer.c_str());
      std::fflush(stdout);
    }
    home.invoke([&] {
      client.tokens.clear();
      client.factory = nullptr;
    });
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dgc client failed: %s\n", e.what());
    return 1;
  }
}
