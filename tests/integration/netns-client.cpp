// The client "host" of the cross-host test, run inside its own network namespace, and the client
// of another user in the cross-user test:
//   ferry-netns-client <holder OBJREF hex> <own address> [<resolver binding>] [--expect PREFIX]
// With a resolver binding (the server host's ferryd, e.g. "tcp:192.0.2.1[7135]"), the OBJREF's
// own bindings are replaced by it, so the exporter is found through ferryd. The proxy's transport
// (ferry::transportOf) must start with PREFIX; by default, with the other host's udp binding when
// the udp plugin is loaded, else its tcp binding.
// Calls the server's Holder across hosts, hands it a callback of its own (a reference passed the
// other way), has the server call back, and prints one line per check ("ok …" / "FAIL …").
// Exits 0 when every check passed.
#include <cstdio>
#include <string>
#include <vector>

#include <ferry/ferry.h>

#include "objref.h"
#include "testing.ferry.h"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok" : "FAIL", what.c_str());
  std::fflush(stdout);
  if (!ok) ++failures;
}

class RecordingCallback final : public ferry::Implements<testing::iface::Callback> {
public:
  uint64_t called(int64_t value) override {
    last = value;
    return 4242;
  }
  int64_t last = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  std::string expected;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--expect" && i + 1 < argc) {
      expected = argv[++i];
    } else {
      args.emplace_back(argv[i]);
    }
  }
  if (args.size() != 2 && args.size() != 3) {
    std::fprintf(stderr, "usage: ferry-netns-client <holder objref hex> <own address> "
                         "[<resolver>] [--expect PREFIX]\n");
    return 2;
  }
  ferry::ObjRefBytes packet = ferry::objRefFromText(args[0]);
  if (args.size() == 3) {
    std::string r = args[2];
    size_t colon = r.find(':');
    size_t open = r.rfind('[');
    ferry::detail::ObjRefData data = ferry::detail::decodeObjRef(packet);
    data.bindings = {{r.substr(0, colon), r.substr(colon + 1, open - colon - 1),
                      r.substr(open + 1, r.size() - open - 2)}};
    packet = ferry::detail::encodeObjRef(data);
  }
  try {
    ferry::RuntimeOptions options;
    options.listenAddresses = {args[1]};  // where the server calls our callback
    // The test's own network namespaces, in the clear.
    options.allowInsecureNetwork = true;
    ferry::Runtime runtime(options);
    ferry::Sta sta = runtime.newSta("netns-client");
    sta.invoke([&] {
      auto holder = ferry::unmarshalInterface<testing::iface::Holder>(packet);
      std::string transport = ferry::transportOf(holder.get());
      if (expected.empty()) {
        // Off-host, the distance rule prefers udp when its plugin is loaded, else tcp.
        bool haveUdp = false;
        for (const auto& p : ferry::Runtime::plugins()) haveUdp = haveUdp || p.name == "udp";
        expected = haveUdp ? "udp:192.0.2.1[" : "tcp:192.0.2.1[";
      }
      check(transport.rfind(expected, 0) == 0,
            "the exporter is reached over " + expected + ": " + transport);
      auto callback = ferry::make<RecordingCallback>();
      ferry::Ref<testing::iface::Callback> cb(callback.get());
      holder->set(cb);
      check(holder->callBack(11) == 4242, "the server called our callback across hosts");
      check(callback->last == 11, "the callback saw the value");
      check(holder->get().get() == cb.get(), "our own object came home as itself");
      check(holder->isSameAs(cb), "the server sees one identity");
      holder->set(nullptr);
    });
  } catch (const std::exception& e) {
    check(false, std::string("exception: ") + e.what());
  }
  return failures == 0 ? 0 : 1;
}
