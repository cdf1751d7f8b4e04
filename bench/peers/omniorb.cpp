// peer-omniorb: omniORB (CORBA, GIOP) in the comparison matrix, with omniorb-bench.idl's Bench
// interface. The server activates a Bench servant in the root POA (omniORB's default
// thread-per-connection dispatch); its address is the object's IOR. Transports: giop:tcp on
// 127.0.0.1 and giop:unix; GIOP has no datagram transport.
// The client sends a request's octets without copying them (a sequence that borrows the
// buffer). 32 in flight use AMI polling (sendp_echo); so that they share one connection, as in
// every other system's row, the client sets oneCallPerConnection=0 and
// maxGIOPConnectionPerServer=1 (with the default, omniORB opens a connection per concurrent call,
// up to 5); sequential calls use one connection either way.
#include <omniORB4/CORBA.h>
#include <unistd.h>

#include <mutex>

#include "harness.h"
#include "omniorb-bench.hh"

namespace {

// The replies' wait bound, in milliseconds.
constexpr CORBA::ULong kReplyTimeoutMs = 10000;

class BenchImpl final : public POA_PeerBench::Bench {
public:
  void ping() override {}
  PeerBench::Bytes* echo(const PeerBench::Bytes& data) override { return new PeerBench::Bytes(data); }
};

// Options for CORBA::ORB_init, as {name, value} pairs ending with {nullptr, nullptr}.
CORBA::ORB_ptr initOrb(const char* options[][2]) {
  int argc = 1;
  char name[] = "peer-omniorb";
  char* argv[] = {name, nullptr};
  return CORBA::ORB_init(argc, argv, "omniORB4", options);
}

class OmniServer final : public peers::Server {
public:
  explicit OmniServer(const peers::ServeArgs& args) {
    std::string endpoint = args.transport == "unix"
                               ? "giop:unix:" + args.socketDir + "/omniorb.sock"
                               : std::string("giop:tcp:127.0.0.1:");
    if (args.transport == "unix") _path = args.socketDir + "/omniorb.sock";
    if (!_path.empty()) unlink(_path.c_str());
    const char* options[][2] = {{"endPoint", endpoint.c_str()}, {nullptr, nullptr}};
    _orb = initOrb(options);
    CORBA::Object_var poaObject = _orb->resolve_initial_references("RootPOA");
    PortableServer::POA_var poa = PortableServer::POA::_narrow(poaObject);
    PortableServer::Servant_var<BenchImpl> servant = new BenchImpl();
    PortableServer::ObjectId_var id = poa->activate_object(servant);
    CORBA::Object_var object = servant->_this();
    CORBA::String_var ior = _orb->object_to_string(object);
    _address = ior.in();
    PortableServer::POAManager_var manager = poa->the_POAManager();
    manager->activate();
  }

  ~OmniServer() override {
    _orb->destroy();
    CORBA::release(_orb);
    if (!_path.empty()) unlink(_path.c_str());
  }

  std::string address() const override { return _address; }
  void run() override { _orb->run(); }
  void stop() override { _orb->shutdown(false); }

private:
  CORBA::ORB_ptr _orb = CORBA::ORB::_nil();
  std::string _address;
  std::string _path;
};

// A sequence that borrows `bytes` (no copy; valid while `bytes` is).
PeerBench::Bytes borrow(std::span<const uint8_t> bytes) {
  auto length = static_cast<CORBA::ULong>(bytes.size());
  return PeerBench::Bytes(length, length,
                          reinterpret_cast<CORBA::Octet*>(const_cast<uint8_t*>(bytes.data())), false);
}

std::span<const uint8_t> view(const PeerBench::Bytes& sequence) {
  return {reinterpret_cast<const uint8_t*>(sequence.get_buffer()), sequence.length()};
}

class OmniConnection final : public peers::Connection {
public:
  explicit OmniConnection(const std::string& address) {
    const char* options[][2] = {{"oneCallPerConnection", "0"},
                                {"maxGIOPConnectionPerServer", "1"},
                                {nullptr, nullptr}};
    _orb = initOrb(options);
    CORBA::Object_var object = _orb->string_to_object(address.c_str());
    _bench = PeerBench::Bench::_narrow(object);
    if (CORBA::is_nil(_bench)) throw peers::Failure("the IOR given is not a PeerBench::Bench");
  }

  ~OmniConnection() override {
    CORBA::release(_bench);
    _orb->destroy();
    CORBA::release(_orb);
  }

  void ping() override { _bench->ping(); }

  void echo(std::span<const uint8_t> request, const peers::ReplyCheck& check) override {
    PeerBench::Bytes_var reply = _bench->echo(borrow(request));
    check(0, view(reply.in()));
  }

  void echoInFlight(const std::vector<std::vector<uint8_t>>& requests,
                    const peers::ReplyCheck& check) override {
    _pollers.clear();
    for (const auto& request : requests) _pollers.emplace_back(_bench->sendp_echo(borrow(request)));
    for (size_t i = 0; i < _pollers.size(); ++i) {
      PeerBench::Bytes_var reply;
      _pollers[i]->echo(kReplyTimeoutMs, reply.out());
      check(i, view(reply.in()));
    }
  }

private:
  CORBA::ORB_ptr _orb = CORBA::ORB::_nil();
  PeerBench::Bench_ptr _bench = PeerBench::Bench::_nil();
  std::vector<PeerBench::AMI_BenchPoller_var> _pollers;
};

}  // namespace

int main(int argc, char** argv) {
  peers::System system;
  system.name = "omniorb";
  system.transports = {{"tcp", ""},
                       {"unix", ""},
                       {"udp", "GIOP runs over connections only (giop:tcp, giop:unix, giop:ssl)"},
                       {"inproc", "not measured (ferry's inproc row compares with the futex floor)"}};
  system.serve = [](const peers::ServeArgs& args) -> std::unique_ptr<peers::Server> {
    return std::make_unique<OmniServer>(args);
  };
  system.connect = [](const std::string&,
                      const std::string& address) -> std::unique_ptr<peers::Connection> {
    return std::make_unique<OmniConnection>(address);
  };
  try {
    return peers::main(argc, argv, system);
  } catch (const CORBA::Exception& e) {
    std::fprintf(stderr, "%s: a CORBA call failed: %s\n", argv[0], e._name());
    return 1;
  }
}
