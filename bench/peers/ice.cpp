// peer-ice: ZeroC Ice (3.7, C++11 mapping, default properties) in the comparison matrix, with
// ice-bench.ice's Bench interface. The server adds a Bench servant to an object adapter on
// 127.0.0.1 (Ice's default thread pool); its address is the servant's stringified proxy. The
// request's bytes travel without a copy into a vector on either side (["cpp:array"]).
// Transports: tcp only: Ice's udp endpoints carry oneway calls only (no replies), and Ice has no
// Unix-domain socket transport.
#include <Ice/Ice.h>

#include "harness.h"
#include "ice-bench.h"

namespace {

class BenchImpl final : public PeerBench::Bench {
public:
  void ping(const Ice::Current&) override {}
  PeerBench::Bytes echo(std::pair<const Ice::Byte*, const Ice::Byte*> data,
                        const Ice::Current&) override {
    return PeerBench::Bytes(data.first, data.second);
  }
};

// The replies' wait bound (Ice's invocation timeout), in milliseconds.
constexpr int kReplyTimeoutMs = 10000;

class IceServer final : public peers::Server {
public:
  IceServer() : _communicator(Ice::initialize()) {
    _adapter = _communicator->createObjectAdapterWithEndpoints("Bench", "tcp -h 127.0.0.1 -p 0");
    auto proxy = _adapter->add(std::make_shared<BenchImpl>(), Ice::stringToIdentity("bench"));
    _adapter->activate();
    _address = _communicator->proxyToString(proxy);
  }
  ~IceServer() override { _communicator->destroy(); }

  std::string address() const override { return _address; }
  void run() override { _communicator->waitForShutdown(); }
  void stop() override { _communicator->shutdown(); }

private:
  std::shared_ptr<Ice::Communicator> _communicator;
  std::shared_ptr<Ice::ObjectAdapter> _adapter;
  std::string _address;
};

std::pair<const Ice::Byte*, const Ice::Byte*> borrow(std::span<const uint8_t> bytes) {
  auto* begin = reinterpret_cast<const Ice::Byte*>(bytes.data());
  return {begin, begin + bytes.size()};
}

class IceConnection final : public peers::Connection {
public:
  explicit IceConnection(const std::string& address) : _communicator(Ice::initialize()) {
    _bench = Ice::checkedCast<PeerBench::BenchPrx>(
        _communicator->stringToProxy(address)->ice_invocationTimeout(kReplyTimeoutMs));
    if (!_bench) throw peers::Failure("the proxy given is not a PeerBench::Bench");
  }
  ~IceConnection() override { _communicator->destroy(); }

  void ping() override { _bench->ping(); }

  void echo(std::span<const uint8_t> request, const peers::ReplyCheck& check) override {
    PeerBench::Bytes reply = _bench->echo(borrow(request));
    check(0, reply);
  }

  void echoInFlight(const std::vector<std::vector<uint8_t>>& requests,
                    const peers::ReplyCheck& check) override {
    _inFlight.clear();
    for (const auto& request : requests) _inFlight.push_back(_bench->echoAsync(borrow(request)));
    for (size_t i = 0; i < _inFlight.size(); ++i) {
      PeerBench::Bytes reply = _inFlight[i].get();
      check(i, reply);
    }
  }

private:
  std::shared_ptr<Ice::Communicator> _communicator;
  std::shared_ptr<PeerBench::BenchPrx> _bench;
  std::vector<std::future<PeerBench::Bytes>> _inFlight;
};

}  // namespace

int main(int argc, char** argv) {
  peers::System system;
  system.name = "ice";
  system.transports = {{"tcp", ""},
                       {"unix", "Ice has no Unix-domain socket transport"},
                       {"udp", "Ice's udp endpoints carry oneway calls only, without replies"},
                       {"inproc", "not measured (ferry's inproc row compares with the futex floor)"}};
  system.serve = [](const peers::ServeArgs&) -> std::unique_ptr<peers::Server> {
    return std::make_unique<IceServer>();
  };
  system.connect = [](const std::string&,
                      const std::string& address) -> std::unique_ptr<peers::Connection> {
    return std::make_unique<IceConnection>(address);
  };
  return peers::main(argc, argv, system);
}
