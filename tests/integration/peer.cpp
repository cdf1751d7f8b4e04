// The other process of the integration tests: serves a Holder, a Probe and an Everything
// (tests/idl/everything.capnp) from an STA, and a Probe from the MTA, and prints their OBJREFs, one
// per line ("holder <hex>", "probe <hex>", "identity <hex>" (the STA Probe's identity),
// "mtaprobe <hex>", "everything <hex>"), then "ready". It runs until its
// standard input closes, then prints "served <duplicate requests> <reply cache entries>
// <protocol errors>" (before the shutdown), shuts down and prints "stats <exported> <proxies> <servants>" (all must be 0) and
// exits 0.
//
// With --publish NAME it publishes the STA Probe under NAME (ferry/naming.h) before "ready" and
// prints "published NAME", or "publish-failed <error code name>" when that fails.
//
//   ferry-test-peer [--listen ADDRESS] [--port PORT] [--transports tcp,pipe]
//                   [--reply-cache-per-caller N] [--loop-spin MICROSECONDS]
//                   [--pipe-directory DIR] [--publish NAME] [--insecure-network yes]
//                   [--admin network|local|off] [--admin-minimum-level none|integrity|privacy]
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <string>
#include <tuple>

#include <ferry/ferry.h>

#include "everything-servants.h"
#include "testing.ferry.h"

namespace {

class PeerProbe final : public ferry::Implements<testing::iface::Probe> {
public:
  uint64_t threadId() override { return static_cast<uint64_t>(getpid()); }
  std::vector<uint8_t> echo(std::span<const uint8_t> d) override { return {d.begin(), d.end()}; }
  void nothing() override {}
  void fail(std::string_view m) override { throw std::runtime_error(std::string(m)); }
  void sleepMillis(uint32_t millis) override { usleep(millis * 1000); }
  uint64_t count() override { return ++_counted; }
  uint64_t peek() override { return _counted; }
  uint64_t countSlowly(uint32_t millis) override {
    uint64_t total = ++_counted;
    usleep(millis * 1000);
    return total;
  }
  bool waitForCancel(uint32_t maxMillis) override {
    for (uint32_t waited = 0; waited < maxMillis; ++waited) {
      if (ferry::callCanceled()) return true;
      usleep(1000);
    }
    return false;
  }

private:
  std::atomic<uint64_t> _counted{0};
};

class PeerHolder final : public ferry::Implements<testing::iface::Holder> {
public:
  void set(ferry::Ref<testing::iface::Callback> cb) override { _held = std::move(cb); }
  ferry::Ref<testing::iface::Callback> get() override { return _held; }
  uint64_t callBack(int64_t value) override { return _held->called(value); }
  bool isSameAs(ferry::Ref<testing::iface::Callback> cb) override {
    return ferry::sameObject(cb, _held);
  }

private:
  ferry::Ref<testing::iface::Callback> _held;
};

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    if (end > start) out.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  ferry::RuntimeOptions options;
  std::string publishAs;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--listen") == 0) options.listenAddresses = split(argv[i + 1]);
    if (std::strcmp(argv[i], "--port") == 0) options.listenPort = argv[i + 1];
    if (std::strcmp(argv[i], "--transports") == 0) options.transports = split(argv[i + 1]);
    if (std::strcmp(argv[i], "--pipe-directory") == 0) options.pipeDirectory = argv[i + 1];
    if (std::strcmp(argv[i], "--publish") == 0) publishAs = argv[i + 1];
    if (std::strcmp(argv[i], "--insecure-network") == 0) {
      options.allowInsecureNetwork = std::strcmp(argv[i + 1], "yes") == 0;
    }
    if (std::strcmp(argv[i], "--reply-cache-per-caller") == 0) {
      options.replyCachePerCaller = std::stoul(argv[i + 1]);
    }
    if (std::strcmp(argv[i], "--admin") == 0) {
      std::string_view value = argv[i + 1];
      options.admin = value == "network" ? ferry::RuntimeOptions::Admin::network
                      : value == "off"   ? ferry::RuntimeOptions::Admin::off
                                         : ferry::RuntimeOptions::Admin::local;
    }
    if (std::strcmp(argv[i], "--admin-minimum-level") == 0) {
      std::string_view value = argv[i + 1];
      options.adminMinimumLevel = value == "none"      ? ferry::SecurityLevel::none
                                  : value == "privacy" ? ferry::SecurityLevel::privacy
                                                       : ferry::SecurityLevel::integrity;
    }
    if (std::strcmp(argv[i], "--loop-spin") == 0) {
      options.loopSpin = std::chrono::microseconds(std::stoul(argv[i + 1]));
    }
  }
  try {
    {
      ferry::Runtime runtime(options);
      ferry::Sta sta = runtime.newSta("peer");
      auto packets = sta.invoke([] {
        auto holder = ferry::Ref<testing::iface::Holder>(ferry::make<PeerHolder>());
        auto probe = ferry::Ref<testing::iface::Probe>(ferry::make<PeerProbe>());
        auto everything =
            ferry::Ref<idltest::iface::Everything>(ferry::make<everything_test::EverythingImpl>());
        // Table packets: the test may unmarshal them several times.
        return std::make_tuple(
            ferry::marshalInterface(holder, ferry::MarshalContext::differentMachine,
                                    ferry::MarshalFlags::tableStrong),
            ferry::marshalInterface(probe, ferry::MarshalContext::differentMachine,
                                    ferry::MarshalFlags::tableStrong),
            ferry::marshalInterface(probe.get(), ferry::Interface::iid,
                                    ferry::MarshalContext::differentMachine,
                                    ferry::MarshalFlags::tableStrong),
            ferry::marshalInterface(everything, ferry::MarshalContext::differentMachine,
                                    ferry::MarshalFlags::tableStrong));
      });
      auto mtaProbe = runtime.mta().invoke([] {
        return ferry::marshalInterface(ferry::Ref<testing::iface::Probe>(ferry::make<PeerProbe>()),
                                       ferry::MarshalContext::differentMachine,
                                       ferry::MarshalFlags::tableStrong);
      });
      ferry::Publication publication;
      if (!publishAs.empty()) {
        try {
          publication = sta.invoke([&] {
            return ferry::publish(publishAs, ferry::unmarshalInterface<testing::iface::Probe>(
                                                 std::get<1>(packets)));
          });
          std::printf("published %s\n", publishAs.c_str());
        } catch (const ferry::Error& e) {
          std::printf("publish-failed %s\n", std::string(ferry::errcName(e.code())).c_str());
        }
      }
      std::printf("holder %s\nprobe %s\nidentity %s\nmtaprobe %s\neverything %s\nready\n",
                  ferry::objRefToText(std::get<0>(packets)).c_str(),
                  ferry::objRefToText(std::get<1>(packets)).c_str(),
                  ferry::objRefToText(std::get<2>(packets)).c_str(),
                  ferry::objRefToText(mtaProbe).c_str(),
                  ferry::objRefToText(std::get<3>(packets)).c_str());
      std::fflush(stdout);
      char buffer[256];
      while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
      }
      publication.revoke();
      auto served = ferry::Runtime::stats();
      std::printf("served %lld %lld %lld\n", static_cast<long long>(served.duplicateRequests),
                  static_cast<long long>(served.replyCacheEntries),
                  static_cast<long long>(served.protocolErrors));
    }
    auto stats = ferry::Runtime::stats();
    std::printf("stats %lld %lld %lld\n", static_cast<long long>(stats.exportedObjects),
                static_cast<long long>(stats.proxyManagers),
                static_cast<long long>(stats.servants));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "peer failed: %s\n", e.what());
    return 1;
  }
}
