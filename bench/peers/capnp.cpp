// peer-capnp: Cap'n Proto RPC (two-party, the library's defaults) in the comparison matrix, with
// bench.capnp's Bench interface (null is the ping). One KJ event loop per process; the server
// serves every connection on it. Transports: tcp and unix (KJ's network addresses); Cap'n Proto
// RPC has no datagram transport.
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

#include "bench.capnp.h"
#include "harness.h"

namespace {

class BenchImpl final : public bench::Bench::Server {
protected:
  kj::Promise<void> null(NullContext) override { return kj::READY_NOW; }
  kj::Promise<void> echo(EchoContext context) override {
    context.getResults().setData(context.getParams().getData());
    return kj::READY_NOW;
  }
  kj::Promise<void> sink(SinkContext context) override {
    context.getResults().setSize(context.getParams().getData().size());
    return kj::READY_NOW;
  }
};

std::string kjAddress(const std::string& transport, const std::string& where) {
  return transport == "unix" ? "unix:" + where : where;
}

class CapnpServer final : public peers::Server {
public:
  explicit CapnpServer(const peers::ServeArgs& args)
      : _io(kj::setupAsyncIo()), _server(kj::heap<BenchImpl>()) {
    std::string where = args.transport == "unix" ? args.socketDir + "/capnp.sock" : "127.0.0.1:0";
    if (args.transport == "unix") unlink(where.c_str());
    auto address = _io.provider->getNetwork()
                       .parseAddress(kjAddress(args.transport, where))
                       .wait(_io.waitScope);
    _listener = address->listen();
    _address = args.transport == "unix" ? where : "127.0.0.1:" + std::to_string(_listener->getPort());
    _path = args.transport == "unix" ? where : "";
  }

  // noexcept: KJ's members may throw from their destructors; here that ends the program.
  ~CapnpServer() noexcept override {
    if (!_path.empty()) unlink(_path.c_str());
  }

  std::string address() const override { return _address; }

  void run() override {
    auto stopped = kj::newPromiseAndCrossThreadFulfiller<void>();
    {
      std::lock_guard lock(_mutex);
      if (_stopping) return;
      _stop = kj::mv(stopped.fulfiller);
    }
    _server.listen(*_listener).exclusiveJoin(kj::mv(stopped.promise)).wait(_io.waitScope);
  }

  void stop() override {
    std::lock_guard lock(_mutex);
    _stopping = true;
    if (_stop.get() != nullptr) _stop->fulfill();
  }

private:
  kj::AsyncIoContext _io;
  capnp::TwoPartyServer _server;
  kj::Own<kj::ConnectionReceiver> _listener;
  std::string _address;
  std::string _path;
  std::mutex _mutex;
  bool _stopping = false;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> _stop;
};

class CapnpConnection final : public peers::Connection {
public:
  CapnpConnection(const std::string& transport, const std::string& address)
      : _io(kj::setupAsyncIo()),
        _stream(_io.provider->getNetwork()
                    .parseAddress(kjAddress(transport, address))
                    .wait(_io.waitScope)
                    ->connect()
                    .wait(_io.waitScope)),
        _client(*_stream),
        _bench(_client.bootstrap().castAs<bench::Bench>()) {}
  ~CapnpConnection() noexcept override = default;

  void ping() override { _bench.nullRequest().send().wait(_io.waitScope); }

  void echo(std::span<const uint8_t> request, const peers::ReplyCheck& check) override {
    auto call = _bench.echoRequest();
    call.setData(capnp::Data::Reader(request.data(), request.size()));
    auto response = call.send().wait(_io.waitScope);
    capnp::Data::Reader data = response.getData();
    check(0, std::span<const uint8_t>(data.begin(), data.size()));
  }

  void echoInFlight(const std::vector<std::vector<uint8_t>>& requests,
                    const peers::ReplyCheck& check) override {
    kj::Vector<capnp::RemotePromise<bench::Bench::EchoResults>> inFlight(requests.size());
    for (const auto& request : requests) {
      auto call = _bench.echoRequest();
      call.setData(capnp::Data::Reader(request.data(), request.size()));
      inFlight.add(call.send());
    }
    for (size_t i = 0; i < inFlight.size(); ++i) {
      auto response = inFlight[i].wait(_io.waitScope);
      capnp::Data::Reader data = response.getData();
      check(i, std::span<const uint8_t>(data.begin(), data.size()));
    }
  }

private:
  kj::AsyncIoContext _io;
  kj::Own<kj::AsyncIoStream> _stream;
  capnp::TwoPartyClient _client;
  bench::Bench::Client _bench;
};

}  // namespace

int main(int argc, char** argv) {
  peers::System system;
  system.name = "capnp";
  system.transports = {{"tcp", ""},
                       {"unix", ""},
                       {"udp", "Cap'n Proto RPC runs over byte streams only"},
                       {"inproc", "not measured (ferry's inproc row compares with the futex floor)"}};
  system.serve = [](const peers::ServeArgs& args) -> std::unique_ptr<peers::Server> {
    return std::make_unique<CapnpServer>(args);
  };
  system.connect = [](const std::string& transport,
                      const std::string& address) -> std::unique_ptr<peers::Connection> {
    return std::make_unique<CapnpConnection>(transport, address);
  };
  try {
    return peers::main(argc, argv, system);
  } catch (const kj::Exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.getDescription().cStr());
    return 1;
  }
}
