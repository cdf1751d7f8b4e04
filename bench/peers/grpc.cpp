// peer-grpc: gRPC C++ (HTTP/2, insecure credentials, default channel and server settings) in the
// comparison matrix, with grpc-bench.proto's Bench service. The server uses the callback API
// (the one gRPC recommends for performance); the client calls the synchronous stub, and issues
// 32 in flight through a completion queue on its one channel (one HTTP/2 connection).
// Transports: tcp on 127.0.0.1 and unix; gRPC has no datagram transport.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>

#include "grpc-bench.grpc.pb.h"
#include "harness.h"

namespace {

// Every call's deadline: a lost reply fails the run.
constexpr auto kReplyTimeout = std::chrono::seconds(10);

class BenchImpl final : public peerbench::Bench::CallbackService {
public:
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context, const peerbench::Empty*,
                                 peerbench::Empty*) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const peerbench::Data* request,
                                 peerbench::Data* response) override {
    response->set_data(request->data());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class GrpcServer final : public peers::Server {
public:
  explicit GrpcServer(const peers::ServeArgs& args) {
    grpc::ServerBuilder builder;
    int port = 0;
    if (args.transport == "unix") {
      _path = args.socketDir + "/grpc.sock";
      unlink(_path.c_str());
      _address = _path;
      builder.AddListeningPort("unix:" + _path, grpc::InsecureServerCredentials());
    } else {
      builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    }
    builder.RegisterService(&_service);
    _server = builder.BuildAndStart();
    if (!_server) throw peers::Failure("gRPC could not start a server on 127.0.0.1 or " + _path);
    if (args.transport != "unix") _address = "127.0.0.1:" + std::to_string(port);
  }
  ~GrpcServer() override {
    if (!_path.empty()) unlink(_path.c_str());
  }

  std::string address() const override { return _address; }
  void run() override { _server->Wait(); }
  void stop() override { _server->Shutdown(std::chrono::system_clock::now() + kReplyTimeout); }

private:
  BenchImpl _service;
  std::unique_ptr<grpc::Server> _server;
  std::string _address;
  std::string _path;
};

void requireOk(const grpc::Status& status) {
  if (!status.ok()) {
    throw peers::Failure("a gRPC call failed: " + status.error_message() + " (code " +
                         std::to_string(status.error_code()) + ")");
  }
}

class GrpcConnection final : public peers::Connection {
public:
  explicit GrpcConnection(const std::string& address)
      : _stub(peerbench::Bench::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

  ~GrpcConnection() override {
    _queue.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (_queue.Next(&tag, &ok)) {
    }
  }

  void ping() override {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kReplyTimeout);
    peerbench::Empty request;
    peerbench::Empty reply;
    requireOk(_stub->Ping(&context, request, &reply));
  }

  void echo(std::span<const uint8_t> request, const peers::ReplyCheck& check) override {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kReplyTimeout);
    _request.set_data(request.data(), request.size());
    peerbench::Data reply;
    requireOk(_stub->Echo(&context, _request, &reply));
    check(0, bytes(reply));
  }

  void echoInFlight(const std::vector<std::vector<uint8_t>>& requests,
                    const peers::ReplyCheck& check) override {
    auto deadline = std::chrono::system_clock::now() + kReplyTimeout;
    std::vector<Call> calls(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      Call& call = calls[i];
      call.context.set_deadline(deadline);
      _request.set_data(requests[i].data(), requests[i].size());
      call.reader = _stub->AsyncEcho(&call.context, _request, &_queue);
      call.reader->Finish(&call.reply, &call.status, reinterpret_cast<void*>(i));
    }
    for (size_t done = 0; done < calls.size(); ++done) {
      void* tag = nullptr;
      bool ok = false;
      if (_queue.AsyncNext(&tag, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT || !ok) {
        throw peers::Failure("a gRPC call of the 32 in flight got no reply within its deadline");
      }
      auto i = reinterpret_cast<size_t>(tag);
      requireOk(calls[i].status);
      check(i, bytes(calls[i].reply));
    }
  }

private:
  struct Call {
    grpc::ClientContext context;
    peerbench::Data reply;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<peerbench::Data>> reader;
  };

  static std::span<const uint8_t> bytes(const peerbench::Data& data) {
    return {reinterpret_cast<const uint8_t*>(data.data().data()), data.data().size()};
  }

  std::unique_ptr<peerbench::Bench::Stub> _stub;
  grpc::CompletionQueue _queue;
  peerbench::Data _request;
};

}  // namespace

int main(int argc, char** argv) {
  peers::System system;
  system.name = "grpc";
  system.transports = {{"tcp", ""},
                       {"unix", ""},
                       {"udp", "gRPC runs over HTTP/2 on byte streams only"},
                       {"inproc", "not measured (ferry's inproc row compares with the futex floor)"}};
  system.serve = [](const peers::ServeArgs& args) -> std::unique_ptr<peers::Server> {
    return std::make_unique<GrpcServer>(args);
  };
  system.connect = [](const std::string& transport,
                      const std::string& address) -> std::unique_ptr<peers::Connection> {
    return std::make_unique<GrpcConnection>(transport == "unix" ? "unix:" + address : address);
  };
  return peers::main(argc, argv, system);
}
