// peer-ferry: ferry in the comparison matrix, through its public API only, with bench.capnp's
// Bench interface (null is the ping). The server exports a Bench object from its MTA, as
// ferry-bench does; its address is the object's OBJREF as text. The client's thread joins its
// MTA and picks the transport on the proxy: tcp, unix (ferry's pipe transport) or udp.
// inproc: both sides in one process (no other transport loaded): the object lives in an STA and
// the caller in the MTA, so every call is a hand-off to the STA's thread and back, the work the
// raw inproc floor (futex words) does at least.
// FERRY_BENCH_LOOP_SPIN=MICROSECONDS in the environment sets RuntimeOptions::loopSpin of both
// processes (README, "Waking with the transport loop"), for comparing settings in one matrix.
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>

#include <ferry/ferry.h>

#include "bench-servant.h"
#include "bench.ferry.h"
#include "harness.h"

namespace {

using bench::BenchImpl;

// Both processes' RuntimeOptions::loopSpin, in microseconds, from FERRY_BENCH_LOOP_SPIN when it
// is set (as ferry-bench's --loop-spin sets it for its server); ferry's default otherwise.
ferry::RuntimeOptions benchOptions() {
  ferry::RuntimeOptions options;
  if (const char* spin = std::getenv("FERRY_BENCH_LOOP_SPIN")) {
    options.loopSpin = std::chrono::microseconds(std::atoi(spin));
  }
  return options;
}

class FerryServer final : public peers::Server {
public:
  FerryServer() : _runtime(benchOptions()) {
    _objref = _runtime.mta().invoke([] {
      return ferry::marshalInterface(ferry::Ref<bench::iface::Bench>(ferry::make<BenchImpl>()),
                                     ferry::MarshalContext::local,
                                     ferry::MarshalFlags::tableStrong);
    });
  }

  std::string address() const override { return ferry::objRefToText(_objref); }

  void run() override {
    std::unique_lock lock(_mutex);
    _stopped.wait(lock, [this] { return _stopping; });
  }

  void stop() override {
    std::lock_guard lock(_mutex);
    _stopping = true;
    _stopped.notify_all();
  }

private:
  ferry::Runtime _runtime;
  ferry::ObjRefBytes _objref;
  std::mutex _mutex;
  std::condition_variable _stopped;
  bool _stopping = false;
};

ferry::RuntimeOptions clientOptions(const std::string& transport) {
  ferry::RuntimeOptions options = benchOptions();
  options.outOfProcess = transport != "inproc";
  return options;
}

class FerryConnection final : public peers::Connection {
public:
  FerryConnection(const std::string& transport, const std::string& address)
      : _runtime(clientOptions(transport)), _mta(_runtime.joinMta()) {
    ferry::ObjRefBytes objref;
    if (transport == "inproc") {
      _sta.emplace(_runtime.newSta("peer-server"));
      objref = _sta->invoke([] {
        return ferry::marshalInterface(ferry::Ref<bench::iface::Bench>(ferry::make<BenchImpl>()));
      });
    } else {
      objref = ferry::objRefFromText(address);
    }
    _proxy = ferry::unmarshalInterface<bench::iface::Bench>(objref);
    if (transport != "inproc") ferry::setTransport(_proxy.get(), transport == "unix" ? "pipe" : transport);
  }

  void ping() override { _proxy->null(); }

  void echo(std::span<const uint8_t> request, const peers::ReplyCheck& check) override {
    std::vector<uint8_t> reply = _proxy->echo(request);
    check(0, reply);
  }

  void echoInFlight(const std::vector<std::vector<uint8_t>>& requests,
                    const peers::ReplyCheck& check) override {
    _inFlight.clear();
    for (const auto& request : requests) _inFlight.push_back(_proxy->echoAsync(request));
    for (size_t i = 0; i < _inFlight.size(); ++i) check(i, _inFlight[i].get());
  }

private:
  ferry::Runtime _runtime;
  std::optional<ferry::Sta> _sta;
  // The calling thread is in the MTA while the connection lives; the proxy is released first.
  ferry::MtaScope _mta;
  ferry::Ref<bench::iface::Bench> _proxy;
  std::vector<ferry::Future<std::vector<uint8_t>>> _inFlight;
};

}  // namespace

int main(int argc, char** argv) {
  peers::System system;
  system.name = "ferry";
  system.transports = {{"tcp", ""}, {"unix", ""}, {"udp", ""}, {"inproc", ""}};
  system.serve = [](const peers::ServeArgs&) -> std::unique_ptr<peers::Server> {
    // The OBJREF carries the bindings of every loaded transport; the client picks one.
    return std::make_unique<FerryServer>();
  };
  system.connect = [](const std::string& transport,
                      const std::string& address) -> std::unique_ptr<peers::Connection> {
    return std::make_unique<FerryConnection>(transport, address);
  };
  return peers::main(argc, argv, system);
}
