// Calls between processes on this host: transport choice by distance (pipe), per-proxy override
// (tcp), callbacks both ways, resolution errors, a dying peer. The peer is ferry-test-peer.
//   process-test -- <path to ferry-test-peer> <path to ferryd> <path to ferry>
#define BOOST_TEST_MODULE process
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <map>
#include <sstream>

#include <capnp/message.h>
#include <capnp/compat/json.h>
#include <capnp/serialize.h>

#include "admin.capnp.h"
#include "orpc.capnp.h"
#include "resolver.capnp.h"

#include "child-process.h"
#include "everything-exercise.h"
#include "admin/admin.h"
#include "objref.h"
#include "runtime-impl.h"
#include "servants.h"
#include "transport/hub.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Callback;
using testing::iface::Holder;
using testing::iface::Probe;

namespace {

std::string argument(int index) {
  return testArgument(index, "usage: process-test -- <ferry-test-peer> <ferryd> <ferry>");
}

std::string peerPath() { return argument(1); }

// A ferry-test-peer child process and the OBJREFs it published.
class Peer {
public:
  // `launcher`: a command that runs the peer (e.g. setpriv with its arguments), ending with the
  // peer's own path when it is not the build's.
  explicit Peer(std::vector<std::string> args = {}, std::vector<std::string> launcher = {})
      : _child(withPath(std::move(args), std::move(launcher))) {
    for (const auto& [key, value] : readAnnouncements(_child)) {
      if (key == "holder") holder = ferry::objRefFromText(value);
      if (key == "probe") probe = ferry::objRefFromText(value);
      if (key == "identity") identity = ferry::objRefFromText(value);
      if (key == "mtaprobe") mtaProbe = ferry::objRefFromText(value);
      if (key == "everything") everything = ferry::objRefFromText(value);
      if (key == "published") published = value;
      if (key == "publish-failed") publishFailed = value;
    }
    BOOST_REQUIRE_MESSAGE(!holder.empty() && !probe.empty(), "the peer did not start");
  }

  pid_t pid() const { return _child.pid(); }

  // Closes its input; it shuts down, reports what it had left, and exits 0.
  void finish() {
    _child.closeInput();
    std::string line;
    while (_child.readLine(line, std::chrono::seconds(20))) {
      if (line.rfind("served ", 0) == 0) {
        int64_t duplicates = 0;
        std::istringstream(line.substr(7)) >> duplicates >> replyCacheEntries >> protocolErrors;
      }
      if (line.rfind("stats ", 0) == 0) break;
    }
    BOOST_CHECK_MESSAGE(line == "stats 0 0 0", "the peer ended with: " << line);
    BOOST_CHECK_EQUAL(_child.wait(std::chrono::seconds(20)), 0);
  }

  // Kills it. A killed process leaves its pipe socket file behind: removed unless `leaveSocket`;
  // and its admin file, removed.
  void kill(bool leaveSocket = false) {
    _child.signal(SIGKILL);
    _child.wait(std::chrono::seconds(20));
    if (!leaveSocket) unlink(pipePath().c_str());
    unlink((detail::admin::directory() + "/" + std::to_string(pid())).c_str());
  }

  // Its pipe socket file.
  std::string pipePath() const {
    for (const auto& b : detail::decodeObjRef(probe).bindings) {
      if (b.protseq == "pipe") return b.address + "/" + b.endpoint;
    }
    BOOST_FAIL("the peer has no pipe binding");
    return "";
  }

  ObjRefBytes holder;
  ObjRefBytes mtaProbe;  // a Probe in the peer's MTA
  ObjRefBytes probe;
  ObjRefBytes identity;  // the identity of the object `probe` names
  ObjRefBytes everything;  // an idltest Everything (tests/idl/everything.capnp) in the peer's STA
  // With --publish: the name it published `probe` under, or the error code name of the refusal.
  std::string published;
  std::string publishFailed;
  // What the peer counted, read by finish().
  int64_t replyCacheEntries = -1;
  int64_t protocolErrors = -1;

private:
  static std::vector<std::string> withPath(std::vector<std::string> args,
                                           std::vector<std::string> launcher) {
    if (launcher.empty()) args.insert(args.begin(), peerPath());
    args.insert(args.begin(), launcher.begin(), launcher.end());
    return args;
  }

  Child _child;
};

bool startsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// An ORPC frame (core/schema/orpc.capnp) as bytes: header, then `message` in standard framing.
std::vector<uint8_t> orpcFrame(uint8_t kind, uint8_t flags, uint64_t callId, uint64_t oxid,
                               capnp::MessageBuilder* message) {
  std::vector<uint8_t> frame = {'F', 'R', 'Y', '1', kind, flags, 0, 0};
  for (uint64_t v : {callId, oxid}) {
    for (int i = 0; i < 8; ++i) frame.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  if (message != nullptr) {
    auto words = capnp::messageToFlatArray(*message);
    auto bytes = words.asBytes();
    frame.insert(frame.end(), bytes.begin(), bytes.end());
  }
  return frame;
}

// A connection of the test's own to a peer's pipe endpoint, speaking raw frames as the pipe
// plugin frames messages (4-byte little-endian length first).
class RawConnection {
public:
  explicit RawConnection(const detail::StringBindingData& pipe)
      : _fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    BOOST_REQUIRE(_fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = pipe.address + "/" + pipe.endpoint;
    BOOST_REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    BOOST_REQUIRE(connect(_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  RawConnection(const RawConnection&) = delete;
  ~RawConnection() { close(_fd); }

  void send(const std::vector<uint8_t>& frame) {
    std::vector<uint8_t> bytes(4);
    for (int i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(frame.size() >> (8 * i));
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    BOOST_REQUIRE(::send(_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
                  static_cast<ssize_t>(bytes.size()));
  }

  // True if the peer closes the connection within 5 s (what it sends meanwhile is ignored).
  bool closedByPeer() {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{_fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buffer[256];
      ssize_t n = recv(_fd, buffer, sizeof buffer, 0);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
    }
    return false;
  }

  // The next whole frame (within 10 s).
  std::vector<uint8_t> frame() {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end) {
      if (_buffer.size() >= 4) {
        size_t length = 0;
        for (int i = 0; i < 4; ++i) length |= size_t{_buffer[i]} << (8 * i);
        if (_buffer.size() >= 4 + length) {
          std::vector<uint8_t> frame(_buffer.begin() + 4, _buffer.begin() + 4 + length);
          _buffer.erase(_buffer.begin(), _buffer.begin() + 4 + length);
          BOOST_REQUIRE(frame.size() >= 24);
          return frame;
        }
      }
      pollfd p{_fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      uint8_t chunk[4096];
      ssize_t n = recv(_fd, chunk, sizeof chunk, 0);
      BOOST_REQUIRE_MESSAGE(n > 0 || (n < 0 && errno == EINTR), "the peer closed the connection");
      if (n > 0) _buffer.insert(_buffer.end(), chunk, chunk + n);
    }
    BOOST_FAIL("no frame came within 10 s");
    return {};
  }

  // The next `count` response frames (within 10 s each), as call id -> error code (0: ok).
  std::map<uint64_t, uint16_t> responses(size_t count) {
    std::map<uint64_t, uint16_t> codes;
    while (codes.size() < count) {
      std::vector<uint8_t> frame = this->frame();
      BOOST_REQUIRE(frame[4] == 2);  // a response
      uint64_t callId = 0;
      for (int i = 0; i < 8; ++i) callId |= uint64_t{frame[8 + i]} << (8 * i);
      auto words = kj::heapArray<capnp::word>((frame.size() - 24) / sizeof(capnp::word));
      std::memcpy(words.begin(), frame.data() + 24, words.size() * sizeof(capnp::word));
      capnp::FlatArrayMessageReader reader(words);
      auto response = reader.getRoot<wire::Response>();
      codes[callId] = response.isError() ? response.getError().getCode() : 0;
    }
    return codes;
  }

  // Asks the resolver at the other end for `oxid` (frame kind 3); what it answered, as text:
  // "<RemUnknown IPID hi>.<lo> <binding> ..." or "error <code>".
  std::string resolve(uint64_t oxid) {
    capnp::MallocMessageBuilder request;
    request.initRoot<wire::ResolveRequest>().setOxid(oxid);
    send(orpcFrame(3, 0, ++_lastCallId, 0, &request));
    std::vector<uint8_t> frame = this->frame();
    BOOST_REQUIRE(frame[4] == 4);  // a resolve reply
    auto words = kj::heapArray<capnp::word>((frame.size() - 24) / sizeof(capnp::word));
    std::memcpy(words.begin(), frame.data() + 24, words.size() * sizeof(capnp::word));
    capnp::FlatArrayMessageReader reader(words);
    auto reply = reader.getRoot<wire::ResolveReply>();
    if (reply.isError()) return "error " + std::to_string(reply.getError().getCode());
    auto resolution = reply.getResolution();
    std::string text = std::to_string(resolution.getRemUnknown().getHi()) + "." +
                       std::to_string(resolution.getRemUnknown().getLo());
    for (auto b : resolution.getBindings()) {
      text += std::string(" ") + b.getProtseq().cStr() + ":" + b.getAddress().cStr() + "[" +
              b.getEndpoint().cStr() + "]";
    }
    return text;
  }

private:
  int _fd;
  std::vector<uint8_t> _buffer;
  uint64_t _lastCallId = 0;
};

// The peer's Probe as raw frames see it: its pipe binding, OXID and IPID.
struct RawTarget {
  explicit RawTarget(const ObjRefBytes& objref) : ref(detail::decodeObjRef(objref)) {
    for (const auto& b : ref.bindings) {
      if (b.protseq == "pipe") pipe = b;
    }
    BOOST_REQUIRE(pipe.has_value());
  }

  // A request to the Probe from `caller`, acknowledging `acks` (ids 1, 2, ...).
  std::unique_ptr<capnp::MallocMessageBuilder> request(uint64_t caller, unsigned acks) const {
    auto message = std::make_unique<capnp::MallocMessageBuilder>();
    auto root = message->initRoot<wire::Request>();
    root.initIpid().setHi(ref.ipid.hi);
    root.getIpid().setLo(ref.ipid.lo);
    root.setCaller(caller);
    if (acks > 0) {
      auto list = root.initAcknowledged(acks);
      for (unsigned i = 0; i < acks; ++i) list.set(i, i + 1);
    }
    return message;
  }

  detail::ObjRefData ref;
  std::optional<detail::StringBindingData> pipe;
};

// The transports a call to the peer can take: pipe and tcp, and udp when its plugin is loaded.
std::vector<std::string> crossProcessTransports() {
  std::vector<std::string> transports{"pipe", "tcp"};
  for (const auto& p : Runtime::plugins()) {
    if (p.name == "udp") transports.push_back("udp");
  }
  return transports;
}

}  // namespace

// Runs `command` (a program and its arguments) to its end; its exit status, and its standard
// output and error in `output`.
int runTool(std::vector<std::string> command, std::string& output) {
  Child child(std::move(command), /*withStderr=*/true);
  std::string line;
  output.clear();
  while (child.readLine(line, std::chrono::seconds(20))) output += line + "\n";
  return child.wait(std::chrono::seconds(20));
}

BOOST_FIXTURE_TEST_SUITE(process, RuntimeFixture)

BOOST_AUTO_TEST_CASE(a_proxy_to_a_process_on_this_host_goes_over_the_pipe) {
  Peer peer;
  auto mta = rt().joinMta();
  {
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_MESSAGE(startsWith(transportOf(probe.get()), "pipe:"), transportOf(probe.get()));
    BOOST_CHECK_EQUAL(probe->threadId(), static_cast<uint64_t>(peer.pid()));
    std::vector<uint8_t> big(1 << 20);
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 31);
    BOOST_CHECK(probe->echo(big) == big);
    BOOST_CHECK_EXCEPTION(probe->fail("remote trouble"), Error, [](const Error& e) {
      return e.code() == Errc::serverFault && e.message() == "remote trouble";
    });
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(one_proxy_can_be_moved_to_tcp_and_says_so) {
  Peer peer;
  auto mta = rt().joinMta();
  {
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    setTransport(probe.get(), "tcp");
    BOOST_CHECK_MESSAGE(startsWith(transportOf(probe.get()), "tcp:127.0.0.1["), transportOf(probe.get()));
    BOOST_CHECK_EQUAL(probe->threadId(), static_cast<uint64_t>(peer.pid()));
    std::vector<uint8_t> data(64 * 1024, 0x42);
    BOOST_CHECK(probe->echo(data) == data);
    FERRY_CHECK_ERRC(setTransport(probe.get(), "sctp"), Errc::unavailable);  // nobody offers it
    Ref<Probe> local = make<ProbeImpl>();
    BOOST_CHECK_EQUAL(transportOf(local.get()), "direct");
    FERRY_CHECK_ERRC(setTransport(local.get(), "tcp"), Errc::invalidArgument);
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_process_may_prefer_tcp_for_every_import) {
  Peer peer;
  runtime.reset();
  RuntimeOptions options;
  options.preferredTransport = "tcp";
  runtime.emplace(options);
  auto mta = rt().joinMta();
  {
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_MESSAGE(startsWith(transportOf(probe.get()), "tcp:"), transportOf(probe.get()));
    probe->nothing();
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(calls_keep_their_results_deadlines_and_concurrency_with_and_without_the_loop_spin) {
  // MTA threads waiting on a remote call, and one idle MTA pool thread, poll the transport loop
  // (RuntimeOptions::loopSpin); the other threads sleep. Neither way may lose a response, a
  // deadline or a request, or serialize the MTA's calls.
  for (auto spin : {std::chrono::microseconds(0), RuntimeOptions().loopSpin}) {
    Peer peer({"--loop-spin", std::to_string(spin.count())});
    runtime.reset();
    RuntimeOptions options;
    options.loopSpin = spin;
    runtime.emplace(options);
    auto mta = rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);        // the peer's STA
    Ref<Probe> mtaProbe = unmarshalInterface<Probe>(peer.mtaProbe);  // the peer's MTA
    std::vector<std::string> transports = crossProcessTransports();
    for (const std::string& transport : transports) {
      std::string where = transport + ", spin " + std::to_string(spin.count()) + ": ";
      setTransport(probe.get(), transport);
      setTransport(mtaProbe.get(), transport);
      std::atomic<int> right{0};
      std::vector<std::thread> callers;
      for (int t = 0; t < 4; ++t) {
        callers.emplace_back([&, t] {
          auto member = rt().joinMta();
          std::vector<uint8_t> data(100 + t, static_cast<uint8_t>(t));
          for (int i = 0; i < 50; ++i) {
            if (probe->echo(data) == data && mtaProbe->echo(data) == data &&
                mtaProbe->threadId() == static_cast<uint64_t>(peer.pid())) {
              right.fetch_add(1);
            }
          }
        });
      }
      for (auto& c : callers) c.join();
      BOOST_CHECK_MESSAGE(right.load() == 200, where << right.load() << " of 200 right");
      // Two slow calls into the peer's MTA run side by side on its two idle pool threads, one of
      // which is the one that polls.
      auto start = std::chrono::steady_clock::now();
      std::vector<Future<void>> slow;
      for (int i = 0; i < 2; ++i) slow.push_back(mtaProbe->sleepMillisAsync(300));
      for (auto& f : slow) f.get();
      auto took = std::chrono::steady_clock::now() - start;
      BOOST_CHECK_MESSAGE(took < std::chrono::milliseconds(550),
                          where << "2 calls of 300 ms took "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                << " ms");
      start = std::chrono::steady_clock::now();
      {
        CallTimeout timeout(std::chrono::milliseconds(200));
        FERRY_CHECK_ERRC(mtaProbe->sleepMillis(700), Errc::deadlineExceeded);
      }
      BOOST_CHECK_MESSAGE(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(600),
                          where << "the deadline came late");
    }
    probe.reset();
    mtaProbe.reset();
    peer.finish();
  }
}

BOOST_AUTO_TEST_CASE(an_mta_thread_reads_its_own_responses_off_tcp_and_pipe_connections) {
  // A thread of the MTA that waits for its call's response takes it off the connection itself
  // (ferry_transport_v1 receive_any_thread); over udp, and for an STA that waits in its loop, the
  // I/O thread hands it over. A few may still come the usual way (a DGC ping's reply on the
  // connection at that moment), so at least 15 of 20.
  Peer peer;
  auto mta = rt().joinMta();
  Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
  Sta sta = rt().newSta("waits in its loop");
  Ref<Probe> fromSta = sta.invoke([&] { return unmarshalInterface<Probe>(peer.probe); });
  std::vector<uint8_t> data(3000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  for (const std::string& transport : crossProcessTransports()) {
    BOOST_TEST_CONTEXT(transport) {
      bool lends = transport != "udp";
      setTransport(probe.get(), transport);
      BOOST_CHECK_EQUAL(probe->echo(data).size(), data.size());  // the connection opens
      int64_t before = Runtime::stats().repliesReadByCaller;
      int right = 0;
      for (int i = 0; i < 20; ++i) right += probe->echo(data) == data ? 1 : 0;
      int64_t read = Runtime::stats().repliesReadByCaller - before;
      BOOST_CHECK_EQUAL(right, 20);
      if (lends) {
        BOOST_CHECK_GE(read, 15);
        BOOST_CHECK_LE(read, 20);
      } else {
        BOOST_CHECK_EQUAL(read, 0);
      }
      // Calls whose futures the thread waits on later read what they can as well.
      before = Runtime::stats().repliesReadByCaller;
      std::vector<Future<std::vector<uint8_t>>> futures;
      for (int i = 0; i < 8; ++i) futures.push_back(probe->echoAsync(data));
      right = 0;
      for (auto& f : futures) right += f.get() == data ? 1 : 0;
      BOOST_CHECK_EQUAL(right, 8);
      if (!lends) BOOST_CHECK_EQUAL(Runtime::stats().repliesReadByCaller - before, 0);
      // An STA caller never does.
      sta.invoke([&] { setTransport(fromSta.get(), transport); });
      before = Runtime::stats().repliesReadByCaller;
      right = sta.invoke([&] {
        int same = 0;
        for (int i = 0; i < 10; ++i) same += fromSta->echo(data) == data ? 1 : 0;
        return same;
      });
      BOOST_CHECK_EQUAL(right, 10);
      BOOST_CHECK_EQUAL(Runtime::stats().repliesReadByCaller - before, 0);
    }
  }
  fromSta = sta.invoke([&] { return Ref<Probe>(); });
  probe.reset();
  peer.finish();
}

BOOST_AUTO_TEST_CASE(an_objects_identity_marshals_across_processes_and_names_the_object) {
  Peer peer;
  BOOST_REQUIRE(!peer.identity.empty());
  const auto pid = static_cast<uint64_t>(peer.pid());
  ObjRefInfo info = decodeObjRef(peer.identity);
  BOOST_CHECK(info.iid == Interface::iid);
  BOOST_CHECK(info.oid == decodeObjRef(peer.probe).oid);
  BOOST_CHECK(info.oxid == decodeObjRef(peer.probe).oxid);
  Sta other = rt().newSta("other");
  {
    auto mta = rt().joinMta();
    Ref<Interface> identity = unmarshalInterface<Interface>(peer.identity);
    BOOST_CHECK(isProxy(identity));
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK(sameObject(identity, probe));
    probe.reset();
    // The identity alone reaches the object: a query crosses the process.
    BOOST_CHECK_EQUAL(queryInterface<Probe>(identity)->threadId(), pid);
    BOOST_CHECK_EQUAL(unmarshalInterface<Probe>(peer.identity)->threadId(), pid);
    // The identity proxy goes onward naming the original object, in this process and beyond.
    for (MarshalContext context : {MarshalContext::inproc, MarshalContext::local}) {
      ObjRefBytes onward = marshalInterface(identity.get(), Interface::iid, context);
      BOOST_CHECK(decodeObjRef(onward).oid == info.oid);
      BOOST_CHECK(decodeObjRef(onward).oxid == info.oxid);
      other.invoke([&] {
        Ref<Interface> there = unmarshalInterface<Interface>(onward);
        BOOST_CHECK_EQUAL(queryInterface<Probe>(there)->threadId(), pid);
      });
    }
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(callbacks_cross_both_ways_while_the_caller_waits) {
  Peer peer;
  Sta client = rt().newSta("client");
  client.invoke([&] {
    Ref<Holder> holder = unmarshalInterface<Holder>(peer.holder);
    auto callback = make<CallbackImpl>();
    Ref<Callback> cb(callback.get());
    holder->set(cb);
    // The peer calls back into this STA while it waits for callBack's reply.
    BOOST_CHECK_EQUAL(holder->callBack(7), threadHash());
    BOOST_CHECK(callback->values == std::vector<int64_t>{7});
    // Our own object comes home as itself.
    BOOST_CHECK(holder->get().get() == cb.get());
    BOOST_CHECK(holder->isSameAs(cb));
    holder->set(nullptr);
  });
  // The peer's proxy to our callback was released: nothing of ours stays exported.
  BOOST_CHECK(eventually([&] { return exportedIn(client) == 0; }));
  peer.finish();
}

BOOST_AUTO_TEST_CASE(every_schema_construct_round_trips_to_another_process) {
  Peer peer;
  auto mta = rt().joinMta();
  {
    auto everything = unmarshalInterface<idltest::iface::Everything>(peer.everything);
    BOOST_CHECK_MESSAGE(startsWith(transportOf(everything.get()), "pipe:"),
                        transportOf(everything.get()));
    everything_test::exercise(*everything, true);
    everything_test::exerciseSchemaConstructs(*everything);

    // Interface pointers inside a struct the peer keeps: its proxies hold our listeners until it
    // drops them, then the remote releases bring them back to our one reference.
    auto listener = make<everything_test::ListenerImpl>();
    auto other = make<everything_test::ListenerImpl>();
    {
      Owned<idltest::Holder> holder;
      holder.builder().setListener(capability(everything_test::ListenerRef(listener)));
      holder.builder().initListeners(1).set(0, capability(everything_test::ListenerRef(other)));
      everything->keep(holder.reader());
    }
    BOOST_CHECK_GE(listener->refCount(), 2u);
    BOOST_CHECK_EQUAL(everything->releaseKept(), 1u);
    BOOST_CHECK((listener->events == std::vector<std::string>{"released"}));
    BOOST_CHECK((other->events == std::vector<std::string>{"released"}));
    BOOST_CHECK(eventually([&] { return listener->refCount() == 1 && other->refCount() == 1; }));
  }
  // finish() checks that the peer ends with nothing exported and no proxy left.
  peer.finish();
}

BOOST_AUTO_TEST_CASE(malformed_frames_close_their_connection_only_and_are_counted) {
  Peer peer;
  RawTarget target(peer.probe);
  uint64_t oxid = target.ref.oxid.value;
  auto request = [&](uint64_t caller, unsigned acks) { return target.request(caller, acks); };
  struct Case {
    const char* what;
    std::vector<uint8_t> frame;
  };
  auto good = request(77, 0);
  auto noCaller = request(0, 0);
  auto tooManyAcks = request(77, 65);
  std::vector<Case> cases = {
      {"bad magic", [&] { auto f = orpcFrame(1, 0, 9, oxid, good.get()); f[0] = 'X'; return f; }()},
      {"the resent flag on a response", orpcFrame(2, 1, 9, 0, good.get())},
      {"an unknown flag on a request", orpcFrame(1, 2, 9, oxid, good.get())},
      {"a request without its caller", orpcFrame(1, 0, 9, oxid, noCaller.get())},
      {"a request acknowledging 65 calls", orpcFrame(1, 0, 9, oxid, tooManyAcks.get())},
      {"a cancel with a payload", orpcFrame(7, 0, 9, 0, good.get())},
      {"an unknown kind", orpcFrame(99, 0, 9, 0, good.get())},
      {"a truncated message", [&] { auto f = orpcFrame(1, 0, 9, oxid, good.get()); f.erase(f.end() - 8, f.end()); return f; }()},
      // Shorter than a header: nothing past the message may be read (ASan checks).
      {"an empty message", {}},
      {"a 2-byte message", {'F', 'R'}},
      {"a 5-byte message", {'F', 'R', 'Y', '1', 1}},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.what) {
      RawConnection connection(*target.pipe);
      connection.send(c.frame);
      BOOST_CHECK(connection.closedByPeer());
    }
  }
  // The peer still serves everyone else.
  {
    auto mta = rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_EQUAL(probe->threadId(), static_cast<uint64_t>(peer.pid()));
  }
  peer.finish();
  BOOST_CHECK_EQUAL(peer.protocolErrors, static_cast<int64_t>(cases.size()));
}

BOOST_AUTO_TEST_CASE(a_call_running_when_its_server_rejects_the_connection_runs_once_and_is_answered_on_the_next) {
  Peer peer;
  {
    auto mta = rt().joinMta();
    // In the peer's MTA, so that peek runs beside countSlowly.
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.mtaProbe);
    BOOST_REQUIRE_EQUAL(probe->peek(), 0u);
    int64_t resentBefore = Runtime::stats().callsResent;
    auto running = probe->countSlowlyAsync(1000);
    for (int i = 0; i < 500 && probe->peek() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    BOOST_REQUIRE_EQUAL(probe->peek(), 1u);
    // While it runs, a frame with a bad magic on its connection: the peer closes the connection
    // for a protocol error. The call goes out again on a new connection, where the peer's reply
    // cache answers it with the first run's response.
    auto& hub = *rt().impl().hub();
    std::optional<detail::orpc::LinkId> link = hub.openLink(transportOf(probe.get()));
    BOOST_REQUIRE(link.has_value());
    hub.post([&hub, link = *link] { hub.send(link, std::vector<uint8_t>(24, 'X')); });
    BOOST_CHECK_EQUAL(running.get(), 1u);
    BOOST_CHECK_EQUAL(probe->peek(), 1u);
    BOOST_CHECK_EQUAL(Runtime::stats().callsResent - resentBefore, 1);
  }
  peer.finish();
  BOOST_CHECK_EQUAL(peer.protocolErrors, 1);
}

BOOST_AUTO_TEST_CASE(a_burst_of_calls_is_acknowledged_by_the_calls_that_follow_it) {
  Peer peer;
  {
    auto mta = rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    // 3000 calls in flight at once: their responses come before any further request.
    std::vector<Future<uint64_t>> burst;
    for (int i = 0; i < 3000; ++i) burst.push_back(probe->threadIdAsync());
    for (auto& f : burst) BOOST_REQUIRE_EQUAL(f.get(), static_cast<uint64_t>(peer.pid()));
    // Each later request acknowledges up to 64 of them: 60 requests carry them all.
    for (int i = 0; i < 60; ++i) probe->threadId();
    // What the peer holds for us is the last call (nobody acknowledged it yet); before the
    // caller kept its whole backlog, ~2000 of the burst stayed for replyRetention.
    peer.finish();
  }
  BOOST_CHECK_GE(peer.replyCacheEntries, 1);
  BOOST_CHECK_LE(peer.replyCacheEntries, 2);
}

BOOST_AUTO_TEST_CASE(one_caller_that_does_not_acknowledge_cannot_fill_the_reply_cache) {
  Peer peer({"--reply-cache-per-caller", "16"});
  RawTarget target(peer.probe);
  uint64_t oxid = target.ref.oxid.value;
  const auto retryLater = static_cast<uint16_t>(Errc::retryLater);
  RawConnection greedy(*target.pipe);
  for (uint64_t id = 1; id <= 20; ++id) {
    greedy.send(orpcFrame(1, 0, id, oxid, target.request(77, 0).get()));
  }
  auto codes = greedy.responses(20);
  BOOST_REQUIRE_EQUAL(codes.size(), 20u);
  // Sixteen entries are the caller's share: the first sixteen calls were served (whatever they
  // answered), the rest refused without running.
  for (uint64_t id = 1; id <= 16; ++id) BOOST_CHECK_NE(codes[id], retryLater);
  for (uint64_t id = 17; id <= 20; ++id) BOOST_CHECK_EQUAL(codes[id], retryLater);
  // Another caller is served meanwhile.
  RawConnection other(*target.pipe);
  other.send(orpcFrame(1, 0, 1, oxid, target.request(78, 0).get()));
  auto otherCodes = other.responses(1);
  BOOST_REQUIRE_EQUAL(otherCodes.count(1), 1u);
  BOOST_CHECK_NE(otherCodes[1], retryLater);
  // Acknowledging its sixteen responses gives the first caller room again.
  greedy.send(orpcFrame(1, 0, 21, oxid, target.request(77, 16).get()));
  auto after = greedy.responses(1);
  BOOST_REQUIRE_EQUAL(after.count(21), 1u);
  BOOST_CHECK_NE(after[21], retryLater);
  peer.finish();
}

BOOST_AUTO_TEST_CASE(an_unknown_oxid_is_a_clear_error) {
  Peer peer;
  auto mta = rt().joinMta();
  detail::ObjRefData forged = detail::decodeObjRef(peer.probe);
  forged.oxid = Oxid(forged.oxid.value ^ 1);
  BOOST_CHECK_EXCEPTION(unmarshalInterface<Probe>(detail::encodeObjRef(forged)), Error,
                        [](const Error& e) {
                          return e.code() == Errc::objectNotRegistered &&
                                 std::string(e.what()).find("unknown OXID") != std::string::npos;
                        });
  peer.finish();
}

BOOST_AUTO_TEST_CASE(the_ferry_tool_asks_a_process_where_its_apartment_listens) {
  Peer peer;
  ObjRefInfo probe = decodeObjRef(peer.probe);
  auto ferry = [](std::vector<std::string> args, std::string& output) {
    args.insert(args.begin(), {argument(3), "resolve"});
    return runTool(std::move(args), output);
  };
  BOOST_REQUIRE(!probe.bindings.empty());
  for (const std::string& binding : probe.bindings) {
    std::string output;
    BOOST_CHECK_EQUAL(ferry({toString(probe.oxid), binding}, output), 0);
    BOOST_CHECK_MESSAGE(output.find("oxid        " + toString(probe.oxid) + "\n") == 0, output);
    BOOST_CHECK_MESSAGE(output.find("(pid " + std::to_string(peer.pid()) + ")") !=
                            std::string::npos,
                        output);
    for (const std::string& listening : probe.bindings) {
      BOOST_CHECK_MESSAGE(output.find("binding     " + listening + "\n") != std::string::npos,
                          output);
    }
    // An OXID the process does not have: the resolver's answer, as the tool's error.
    BOOST_CHECK_EQUAL(ferry({toString(Oxid(probe.oxid.value ^ 1)), binding}, output), 1);
    BOOST_CHECK_MESSAGE(output.find("ferry: objectNotRegistered: ") == 0, output);
  }
  std::string output;
  BOOST_CHECK_EQUAL(ferry({toString(probe.oxid), "carrier-pigeon:loft[7]"}, output), 1);
  BOOST_CHECK_MESSAGE(output.find("no 'carrier-pigeon' transport is loaded") != std::string::npos,
                      output);
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_call_in_another_process_can_be_canceled) {
  Peer peer;
  auto mta = rt().joinMta();
  {
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    std::vector<std::string> transports = crossProcessTransports();
    for (const std::string& transport : transports) {
      setTransport(probe.get(), transport);
      // Running: the peer's servant sees the cancel and returns early.
      auto running = probe->waitForCancelAsync(10000);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      running.cancel();
      BOOST_CHECK_MESSAGE(running.get(), transport << ": the running call saw its cancel");
      // Queued behind a busy STA: it never runs.
      auto busy = probe->sleepMillisAsync(300);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto queued = probe->threadIdAsync();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      queued.cancel();
      BOOST_CHECK_EXCEPTION(queued.get(), Error,
                            [](const Error& e) { return e.code() == Errc::canceled; });
      busy.get();
    }
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(calls_to_a_peer_that_died_fail_promptly) {
  Peer peer;
  auto mta = rt().joinMta();
  Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
  probe->nothing();
  peer.kill();
  auto start = std::chrono::steady_clock::now();
  BOOST_CHECK_EXCEPTION(probe->nothing(), Error, [](const Error& e) {
    BOOST_TEST_MESSAGE("after the peer died: " << e.what());
    return e.code() == Errc::outcomeUnknown || e.code() == Errc::unavailable;
  });
  BOOST_CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

// The tcp binding at the end of `text` ("... tcp:127.0.0.1[40211]"), if there is one.
std::optional<detail::StringBindingData> tcpBindingIn(const std::string& text) {
  auto at = text.find("tcp:");
  size_t open = text.rfind('[');
  if (at == std::string::npos || open == std::string::npos || open < at || text.back() != ']') {
    return std::nullopt;
  }
  return detail::StringBindingData{"tcp", text.substr(at + 4, open - at - 4),
                                   text.substr(open + 1, text.size() - open - 2)};
}

// A ferryd on a pipe directory of its own (mode 0755, as systemd makes /run/ferry) and
// ephemeral ports; stopped with SIGTERM at the end.
class Ferryd {
public:
  // `directory`: an existing one of mode 0755, removed (when empty) at the end.
  explicit Ferryd(std::string directory = makeDirectory()) : directory(std::move(directory)) {
    try {
      start();
    } catch (...) {
      _child.reset();
      rmdir(this->directory.c_str());
      throw;
    }
  }

  ~Ferryd() {
    _child->signal(SIGTERM);
    BOOST_CHECK_EQUAL(_child->wait(std::chrono::seconds(20)), 0);
    // The listener's socket file went with it.
    BOOST_CHECK(access((directory + "/ferryd").c_str(), F_OK) != 0);
    rmdir(directory.c_str());
  }

  // Kills it (SIGKILL: it removes nothing) and starts a new one on the same pipe.
  void restart() {
    _child->signal(SIGKILL);
    BOOST_REQUIRE_EQUAL(_child->wait(std::chrono::seconds(20)), 128 + SIGKILL);
    _child.reset();
    tcp = {};
    start();
  }

  std::string pipeBinding() const { return "pipe:" + directory + "[ferryd]"; }

  // An OBJREF for `objref`'s object that names only ferryd's tcp endpoint, so that unmarshaling
  // it resolves the OXID through ferryd.
  ObjRefBytes viaFerryd(const ObjRefBytes& objref) const {
    detail::ObjRefData data = detail::decodeObjRef(objref);
    data.bindings = {tcp};
    return detail::encodeObjRef(data);
  }

  const std::string directory;
  detail::StringBindingData tcp;

  static std::string makeDirectory() {
    char path[] = "/tmp/ferryd-test-XXXXXX";
    BOOST_REQUIRE(mkdtemp(path) != nullptr);
    BOOST_REQUIRE(chmod(path, 0755) == 0);
    return path;
  }

private:
  void start() {
    _child.emplace(std::vector<std::string>{argument(2), "--pipe-directory", directory,
                                            "--pipe-name", "ferryd", "--port", "0",
                                            "--transports", "pipe,tcp"});
    std::string line;
    while (tcp.protseq.empty() && _child->readLine(line, std::chrono::seconds(20))) {
      // "ferryd listening on tcp:127.0.0.1[40211]"
      if (auto binding = tcpBindingIn(line)) tcp = *binding;
    }
    BOOST_REQUIRE_MESSAGE(!tcp.protseq.empty(), "ferryd did not start");
  }

  std::optional<Child> _child;
};

// Sets (or, with nullopt, unsets) an environment variable for its scope, for this process and
// those it starts; restores it after.
class ScopedEnv {
public:
  ScopedEnv(const char* name, std::optional<std::string> value) : _name(name) {
    if (const char* old = std::getenv(name)) _old = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (_old) {
      setenv(_name, _old->c_str(), 1);
    } else {
      unsetenv(_name);
    }
  }

private:
  const char* _name;
  std::optional<std::string> _old;
};

// Whether `probe` (an OBJREF resolved through ferryd) reaches the peer with pid `pid`. The
// registration travels asynchronously: callers poll this.
bool reachesPeer(const ObjRefBytes& probe, pid_t pid) {
  try {
    return unmarshalInterface<Probe>(probe)->threadId() == static_cast<uint64_t>(pid);
  } catch (const Error& e) {
    BOOST_TEST_MESSAGE("not yet: " << e.what());
    return false;
  }
}

BOOST_AUTO_TEST_CASE(ferryd_resolves_the_oxids_of_the_processes_that_registered) {
  Ferryd ferryd;
  // The peer finds ferryd through FERRY_RESOLVER and registers its apartments there.
  std::optional<Peer> peer;
  {
    ScopedEnv resolver("FERRY_RESOLVER", ferryd.pipeBinding());
    peer.emplace();
  }
  // An OBJREF naming only ferryd's endpoint: the resolution must come from ferryd.
  detail::ObjRefData viaFerryd = detail::decodeObjRef(peer->probe);
  viaFerryd.bindings = {ferryd.tcp};
  {
    auto mta = rt().joinMta();
    BOOST_CHECK(eventually([&] {
      try {
        Ref<Probe> probe = unmarshalInterface<Probe>(detail::encodeObjRef(viaFerryd));
        return probe->threadId() == static_cast<uint64_t>(peer->pid());
      } catch (const Error& e) {
        BOOST_TEST_MESSAGE("not yet: " << e.what());  // the registration travels asynchronously
        return false;
      }
    }));
    detail::ObjRefData unknown = viaFerryd;
    unknown.oxid = Oxid(unknown.oxid.value ^ 1);
    BOOST_CHECK_EXCEPTION(unmarshalInterface<Probe>(detail::encodeObjRef(unknown)), Error,
                          [](const Error& e) {
                            return e.code() == Errc::objectNotRegistered &&
                                   std::string(e.what()).find("unknown OXID") != std::string::npos;
                          });
  }
  peer->finish();
  peer.reset();
  // Gone with its process: a fresh runtime (no cached resolution) asks ferryd again.
  runtime.reset();
  runtime.emplace();
  auto mta = rt().joinMta();
  BOOST_CHECK(eventually([&] {
    try {
      unmarshalInterface<Probe>(detail::encodeObjRef(viaFerryd));
      return false;
    } catch (const Error& e) {
      return e.code() == Errc::objectNotRegistered;
    }
  }));
}

// ferry://127.0.0.1:PORT/name/NAME for ferryd's (or a peer's) tcp port.
std::string nameReference(const detail::StringBindingData& tcp, const std::string& name) {
  return "ferry://" + tcp.address + ":" + tcp.endpoint + "/name/" + name;
}

BOOST_AUTO_TEST_CASE(a_client_binds_by_name_to_an_object_another_process_published_with_ferryd) {
  Ferryd ferryd;
  std::optional<Peer> publisher;
  std::optional<Peer> second;
  {
    ScopedEnv resolver("FERRY_RESOLVER", ferryd.pipeBinding());
    publisher.emplace(std::vector<std::string>{"--publish", "inventory/main"});
    // Another process of the host asks for the same name: ferryd refuses it.
    second.emplace(std::vector<std::string>{"--publish", "inventory/main"});
  }
  BOOST_CHECK_EQUAL(publisher->published, "inventory/main");
  BOOST_CHECK_EQUAL(second->publishFailed, "nameInUse");
  std::string reference = nameReference(ferryd.tcp, "inventory/main");
  {
    auto mta = rt().joinMta();
    // No OBJREF passed by hand: the reference names ferryd's port and the name.
    Ref<Probe> probe = ferry::bind<Probe>(reference);
    BOOST_CHECK(isProxy(probe));
    BOOST_CHECK_EQUAL(probe->threadId(), static_cast<uint64_t>(publisher->pid()));
    std::vector<PublishedName> names = listNames("127.0.0.1:" + ferryd.tcp.endpoint);
    BOOST_REQUIRE_EQUAL(names.size(), 1u);
    BOOST_CHECK_EQUAL(names[0].name, "inventory/main");
    BOOST_CHECK_EQUAL(names[0].processId >> 32, static_cast<uint64_t>(publisher->pid()));
    // The same from the shell: `ferry names` and `ferry bind`.
    auto ferryTool = [](std::vector<std::string> args, std::string& output) {
      args.insert(args.begin(), argument(3));
      return runTool(std::move(args), output);
    };
    std::string output;
    BOOST_CHECK_EQUAL(ferryTool({"names", "127.0.0.1:" + ferryd.tcp.endpoint}, output), 0);
    BOOST_CHECK_MESSAGE(output.find("inventory/main") == 0 &&
                            output.find("pid " + std::to_string(publisher->pid())) !=
                                std::string::npos,
                        output);
    BOOST_CHECK_EQUAL(ferryTool({"bind", reference}, output), 0);
    BOOST_CHECK_MESSAGE(output.find("(pid " + std::to_string(publisher->pid()) + ")") !=
                            std::string::npos,
                        output);
    BOOST_CHECK_EQUAL(ferryTool({"bind", "ferry://127.0.0.1/nothing"}, output), 2);
    BOOST_CHECK_EXCEPTION(ferry::bind<Probe>(nameReference(ferryd.tcp, "inventory/other")), Error,
                          [](const Error& e) {
                            BOOST_TEST_MESSAGE(e.what());
                            return e.code() == Errc::objectNotRegistered &&
                                   std::string(e.what()).find("inventory/other") != std::string::npos;
                          });
  }
  // The publisher dies without revoking: ferryd forgets its names with its connection, and the
  // name is free for another process.
  publisher->kill();
  publisher.reset();
  {
    auto mta = rt().joinMta();
    BOOST_CHECK(eventually([&] {
      try {
        ferry::bind<Probe>(reference);
        return false;
      } catch (const Error& e) {
        return e.code() == Errc::objectNotRegistered;
      }
    }));
  }
  std::optional<Peer> third;
  {
    ScopedEnv resolver("FERRY_RESOLVER", ferryd.pipeBinding());
    third.emplace(std::vector<std::string>{"--publish", "inventory/main"});
  }
  BOOST_CHECK_EQUAL(third->published, "inventory/main");
  {
    auto mta = rt().joinMta();
    BOOST_CHECK_EQUAL(ferry::bind<Probe>(reference)->threadId(), static_cast<uint64_t>(third->pid()));
  }
  // A clean exit revokes the name.
  third->finish();
  third.reset();
  {
    auto mta = rt().joinMta();
    BOOST_CHECK(listNames("127.0.0.1:" + ferryd.tcp.endpoint).empty());
  }
  second->finish();
}

BOOST_AUTO_TEST_CASE(without_ferryd_a_process_answers_lookups_of_its_own_names) {
  std::optional<Peer> peer;
  {
    ScopedEnv resolver("FERRY_RESOLVER", "none");
    peer.emplace(std::vector<std::string>{"--publish", "calculator"});
  }
  BOOST_CHECK_EQUAL(peer->published, "calculator");
  std::optional<detail::StringBindingData> tcp;
  for (const auto& b : detail::decodeObjRef(peer->probe).bindings) {
    if (b.protseq == "tcp") tcp = b;
  }
  BOOST_REQUIRE(tcp);
  auto mta = rt().joinMta();
  BOOST_CHECK_EQUAL(ferry::bind<Probe>(nameReference(*tcp, "calculator"))->threadId(),
                    static_cast<uint64_t>(peer->pid()));
  peer->finish();
}

BOOST_AUTO_TEST_CASE(only_the_registering_process_may_replace_or_withdraw_its_registration) {
  // This process is the resolver here (as ferryd is: its pipe open to every user), so that its
  // refusal counter can be read.
  char path[] = "/tmp/ferry-resolver-test-XXXXXX";
  BOOST_REQUIRE(mkdtemp(path) != nullptr);
  const std::string directory = path;
  runtime.reset();
  RuntimeOptions options;
  options.pipeDirectory = directory;
  options.pipeEndpoint = "resolver";
  options.pipeForAllUsers = true;
  options.transports = {"pipe"};
  options.resolver = "";
  options.acceptRegistrations = true;
  runtime.emplace(options);
  std::optional<Peer> owner;
  {
    ScopedEnv resolver("FERRY_RESOLVER", "pipe:" + directory + "[resolver]");
    owner.emplace();
  }
  detail::ObjRefData data = detail::decodeObjRef(owner->probe);
  std::string ownerBindings;
  for (const auto& b : data.bindings) ownerBindings += " " + detail::bindingText(b);
  {
    RawConnection resolver({"pipe", directory, "resolver"});
    std::string registered;
    BOOST_REQUIRE(eventually([&] {
      registered = resolver.resolve(data.oxid.value);
      return registered.rfind("error", 0) != 0;
    }));
    BOOST_CHECK_MESSAGE(registered.find(ownerBindings) != std::string::npos, registered);

    // Another process (this one, on its own connection) registers the owner's OXID with its own
    // binding and RemUnknown IPID, then withdraws it.
    const int64_t refusedBefore = Runtime::stats().registrationsRefused;
    RawConnection hijacker({"pipe", directory, "resolver"});
    capnp::MallocMessageBuilder registration;
    auto resolution = registration.initRoot<wire::Registration>().initResolution();
    resolution.setOxid(data.oxid.value);
    resolution.initRemUnknown().setHi(1);
    resolution.getRemUnknown().setLo(2);
    resolution.setProcessId(data.processId);
    resolution.setHostId(kj::arrayPtr(data.hostId.data(), data.hostId.size()));
    auto binding = resolution.initBindings(1)[0];
    binding.setProtseq("tcp");
    binding.setAddress("127.0.0.1");
    binding.setEndpoint("9");
    hijacker.send(orpcFrame(5, 0, 0, 0, &registration));
    capnp::MallocMessageBuilder withdrawal;
    withdrawal.initRoot<wire::ResolveRequest>().setOxid(data.oxid.value);
    hijacker.send(orpcFrame(6, 0, 0, 0, &withdrawal));
    BOOST_CHECK(eventually([&] {
      return Runtime::stats().registrationsRefused == refusedBefore + 2;
    }));
    // Frames of one connection are handled in order: after this answer both were.
    BOOST_CHECK_EQUAL(hijacker.resolve(data.oxid.value), registered);
    BOOST_CHECK_EQUAL(resolver.resolve(data.oxid.value), registered);
  }
  owner->finish();
  owner.reset();
  runtime.reset();
  rmdir(directory.c_str());
}

BOOST_AUTO_TEST_CASE(processes_register_again_after_ferryd_restarts) {
  Ferryd ferryd;
  std::optional<Peer> peer;
  {
    ScopedEnv resolver("FERRY_RESOLVER", ferryd.pipeBinding());
    peer.emplace();
  }
  // The apartments of its STA (the Probe's) and of its MTA, and where they are served.
  const detail::ObjRefData sta = detail::decodeObjRef(peer->probe);
  const detail::ObjRefData mta = detail::decodeObjRef(peer->mtaProbe);
  BOOST_REQUIRE(sta.oxid != mta.oxid);
  const std::string pipe = "pipe:" + peer->pipePath().substr(0, peer->pipePath().rfind('/'));
  // Asked afresh over a new connection each time (nothing cached).
  auto resolvedThroughFerryd = [&](const detail::ObjRefData& apartment) {
    RawConnection connection({"pipe", ferryd.directory, "ferryd"});
    std::string answer = connection.resolve(apartment.oxid.value);
    BOOST_TEST_MESSAGE("ferryd answered " << answer);
    return answer.find(pipe) != std::string::npos;
  };
  BOOST_REQUIRE(eventually([&] { return resolvedThroughFerryd(sta) && resolvedThroughFerryd(mta); }));
  ferryd.restart();  // the new ferryd knows nothing
  // The peer notices the closed connection and registers again at its first retries (1 s,
  // then 2 s, ...).
  BOOST_CHECK(eventually([&] { return resolvedThroughFerryd(sta) && resolvedThroughFerryd(mta); },
                         std::chrono::seconds(20)));
  peer->finish();
}

BOOST_AUTO_TEST_CASE(a_process_warns_once_while_ferryd_is_down_and_says_when_it_is_back) {
  const std::string directory = Ferryd::makeDirectory();
  std::optional<Child> peer;
  {
    ScopedEnv resolver("FERRY_RESOLVER", "pipe:" + directory + "[ferryd]");
    ScopedEnv log("FERRY_LOG", "debug");
    peer.emplace(std::vector<std::string>{peerPath()}, /*withStderr=*/true);
  }
  int warnings = 0;
  int retries = 0;
  std::string line;
  auto count = [&] {
    if (line.find("ferry warn") != std::string::npos &&
        line.find("is not reachable") != std::string::npos) {
      ++warnings;
    }
    if (line.find("is still not reachable") != std::string::npos) ++retries;
  };
  // Its STA and MTA are announced; ferryd stays down through two retries (1 s, 2 s).
  while (retries < 2 && peer->readLine(line, std::chrono::seconds(20))) count();
  BOOST_REQUIRE_EQUAL(retries, 2);
  bool back = false;
  {
    Ferryd ferryd(directory);
    while (!back && peer->readLine(line, std::chrono::seconds(20))) {
      count();
      back = line.find("is back; registered 2 apartments") != std::string::npos;
    }
    BOOST_CHECK(back);
    peer->closeInput();
    while (peer->readLine(line, std::chrono::seconds(20))) count();
    BOOST_CHECK_EQUAL(peer->wait(std::chrono::seconds(20)), 0);
  }
  BOOST_CHECK_EQUAL(warnings, 1);
}

BOOST_AUTO_TEST_CASE(ferryd_tells_systemd_when_it_is_ready_and_when_it_stops) {
  // systemd's side of Type=notify: a datagram socket named by NOTIFY_SOCKET.
  const std::string directory = Ferryd::makeDirectory();
  const std::string path = directory + "/notify";
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  BOOST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  auto receive = [&] {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10'000) != 1) return std::string("nothing within 10 s");
    char buffer[256];
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string("recv failed");
  };
  {
    ScopedEnv notify("NOTIFY_SOCKET", path);
    std::optional<Ferryd> ferryd;
    ferryd.emplace();
    BOOST_CHECK_EQUAL(receive(), "READY=1");
    ferryd.reset();
    BOOST_CHECK_EQUAL(receive(), "STOPPING=1");
  }
  close(fd);
  unlink(path.c_str());
  rmdir(directory.c_str());
}

BOOST_AUTO_TEST_CASE(an_unprivileged_process_registers_with_a_root_ferryd) {
  if (geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: needs root to run the peer as uid 65534 (nobody)");
    return;
  }
  if (access("/usr/bin/setpriv", X_OK) != 0) {
    BOOST_TEST_MESSAGE("skipped: setpriv (util-linux) is not installed");
    return;
  }
  Ferryd ferryd;
  // The peer's own runtime directory, private to uid 65534 as ferry makes it.
  char path[] = "/tmp/ferry-nobody-XXXXXX";
  BOOST_REQUIRE(mkdtemp(path) != nullptr);
  const std::string home = path;
  BOOST_REQUIRE(chown(path, 65534, 65534) == 0);
  // The peer, copied where uid 65534 can read it (the build tree may be private to root).
  PortableCopy copy(peerPath());
  std::optional<Peer> peer;
  {
    ScopedEnv runtimeDir("XDG_RUNTIME_DIR", home);
    ScopedEnv resolver("FERRY_RESOLVER", ferryd.pipeBinding());
    std::vector<std::string> launcher{"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                      "--clear-groups"};
    for (const std::string& word : copy.command()) launcher.push_back(word);
    peer.emplace(std::vector<std::string>{}, launcher);
  }
  // Its registration arrived (its OBJREF names only ferryd's tcp endpoint), and the call reaches
  // it over its own private pipe.
  {
    auto mta = rt().joinMta();
    BOOST_CHECK(eventually([&] { return reachesPeer(ferryd.viaFerryd(peer->probe), peer->pid()); }));
  }
  peer->finish();
  peer.reset();
  rmdir((home + "/ferry/admin").c_str());  // where its admin object was published
  rmdir((home + "/ferry").c_str());
  BOOST_CHECK(rmdir(home.c_str()) == 0);
}

BOOST_AUTO_TEST_CASE(a_resolver_setting_that_ferryd_cannot_take_registrations_on_is_an_error) {
  runtime.reset();
  auto namesSetting = [](const char* setting) {
    return [setting](const Error& e) {
      BOOST_TEST_MESSAGE("caught: " << e.what());
      return e.code() == Errc::invalidArgument && std::string(e.what()).find(setting) != std::string::npos &&
             std::string(e.what()).find("pipe:/run/ferry[ferryd]") != std::string::npos;
    };
  };
  for (const char* bad : {"/run/ferry/ferryd", "tcp:127.0.0.1[7135]", "pipe:relative[ferryd]"}) {
    {
      ScopedEnv resolver("FERRY_RESOLVER", bad);
      BOOST_CHECK_EXCEPTION(Runtime{}, Error, namesSetting("FERRY_RESOLVER"));
    }
    ScopedEnv unset("FERRY_RESOLVER", std::nullopt);
    RuntimeOptions options;
    options.resolver = bad;
    BOOST_CHECK_EXCEPTION(Runtime{options}, Error, namesSetting("RuntimeOptions::resolver"));
  }
  {
    ScopedEnv resolver("FERRY_RESOLVER", "none");
    RuntimeOptions options;
    options.resolver = "tcp:127.0.0.1[7135]";  // overridden
    BOOST_CHECK_NO_THROW(Runtime{options});
  }
  runtime.emplace();
}

BOOST_AUTO_TEST_CASE(a_killed_process_socket_is_removed_when_the_next_process_starts) {
  std::optional<Peer> killed;
  killed.emplace();
  Peer alive;
  const std::string stale = killed->pipePath();
  killed->kill(/*leaveSocket=*/true);
  killed.reset();
  struct stat st {};
  BOOST_REQUIRE_MESSAGE(lstat(stale.c_str(), &st) == 0, "the killed peer left no socket file");
  Peer next;
  BOOST_CHECK_MESSAGE(lstat(stale.c_str(), &st) != 0 && errno == ENOENT,
                      stale << " is still there");
  BOOST_CHECK_MESSAGE(lstat(alive.pipePath().c_str(), &st) == 0, "a live peer's socket went");
  next.finish();
  alive.finish();
}

BOOST_AUTO_TEST_CASE(ferryd_takes_help_and_version_and_rejects_an_unknown_flag_with_a_usage_line) {
  auto run = [](std::vector<std::string> args, std::string& output) {
    args.insert(args.begin(), argument(2));
    return runTool(std::move(args), output);
  };
  std::string output;
  BOOST_CHECK_EQUAL(run({"--help"}, output), 0);
  BOOST_CHECK_MESSAGE(output.find("--pipe-directory") != std::string::npos &&
                          output.find("--config") != std::string::npos, output);
  BOOST_CHECK_EQUAL(run({"--version"}, output), 0);
  BOOST_CHECK_MESSAGE(output.rfind("ferryd " FERRY_VERSION, 0) == 0, output);
  BOOST_CHECK_EQUAL(run({"--no-such-flag"}, output), 2);
  BOOST_CHECK_MESSAGE(output.find("--no-such-flag") != std::string::npos &&
                          output.find("usage: ferryd") != std::string::npos, output);
  BOOST_CHECK_EQUAL(run({"--port"}, output), 2);
  BOOST_CHECK_MESSAGE(output.find("usage: ferryd") != std::string::npos, output);
}

// ---- the admin interface from the shell: ferry ls, ferry call, ferry ping ----

// Runs the ferry tool with `args`: its exit status, and its output in `output`.
int ferryTool(std::vector<std::string> args, std::string& output) {
  args.insert(args.begin(), argument(3));
  return runTool(std::move(args), output);
}

std::string lastLine(const std::string& output) {
  size_t end = output.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  size_t start = output.rfind('\n', end);
  start = start == std::string::npos ? 0 : start + 1;
  return output.substr(start, end + 1 - start);
}

BOOST_AUTO_TEST_CASE(ferry_ls_json_shows_the_objects_a_server_exports_who_holds_them_and_its_calls) {
  Peer peer;
  auto mta = rt().joinMta();
  ObjRefInfo info = decodeObjRef(peer.probe);
  {
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    probe->count();
    probe->count();
    std::string output;
    BOOST_REQUIRE_EQUAL(ferryTool({"ls", "--json", std::to_string(peer.pid())}, output), 0);
    capnp::JsonCodec codec;
    capnp::MallocMessageBuilder message;
    auto process = message.initRoot<wire::Process>();
    codec.decode(kj::ArrayPtr<const char>(output.data(), output.size()), process);
    BOOST_CHECK_EQUAL(process.getPid(), static_cast<uint32_t>(peer.pid()));
    BOOST_CHECK(process.getServing());
    bool found = false;
    for (auto apartment : process.getApartments()) {
      for (auto object : apartment.getObjects()) {
        if (object.getOid() != info.oid.value) continue;
        found = true;
        BOOST_CHECK_EQUAL(apartment.getOxid(), info.oxid.value);
        BOOST_CHECK_MESSAGE(std::string(object.getClassName().cStr()).find("PeerProbe") !=
                                std::string::npos, object.getClassName().cStr());
        // This process holds references on it, under its own process id.
        uint32_t ours = 0;
        for (auto client : object.getClients()) {
          if (client.getProcess() == detail::currentRuntime().processId) ours = client.getReferences();
        }
        BOOST_CHECK_GT(ours, 0u);
        BOOST_CHECK_GE(object.getStrongRefs(), ours);
      }
    }
    BOOST_CHECK_MESSAGE(found, "the Probe's OID is not in: " << output);
    uint64_t counted = 0;
    for (auto method : process.getMethods()) {
      if (method.getIface().getIid() == Probe::iid.value && method.getMethodName() == "count") {
        counted = method.getCalls();
      }
    }
    BOOST_CHECK_GE(counted, 2u);
    // This process's calls came over a pipe connection the peer accepted.
    bool connected = false;
    for (auto c : process.getConnections()) {
      if (c.getCallerProcess() == detail::currentRuntime().processId) {
        connected = true;
        BOOST_CHECK_EQUAL(std::string(c.getProtseq().cStr()), "pipe");
        BOOST_CHECK(!c.getOutbound());
        BOOST_CHECK_EQUAL(c.getPeerPid(), static_cast<int32_t>(getpid()));
      }
    }
    BOOST_CHECK_MESSAGE(connected, "no connection of this process in: " << output);

    // The readable tree names the same object.
    BOOST_REQUIRE_EQUAL(ferryTool({"ls", std::to_string(peer.pid())}, output), 0);
    BOOST_CHECK_MESSAGE(output.find("object " + toString(info.oid)) != std::string::npos, output);
    BOOST_CHECK_MESSAGE(output.find("interface testing.capnp:Probe") != std::string::npos, output);
    // ps lists the peer.
    BOOST_REQUIRE_EQUAL(ferryTool({"ps"}, output), 0);
    BOOST_CHECK_MESSAGE(output.find(std::to_string(peer.pid()) + " ") != std::string::npos, output);
  }
  peer.finish();
}

// What `ferry ls --json <pid>` printed, decoded.
class Described {
public:
  explicit Described(pid_t pid) {
    BOOST_REQUIRE_EQUAL(ferryTool({"ls", "--json", std::to_string(pid)}, text), 0);
    capnp::JsonCodec codec;
    codec.decode(kj::ArrayPtr<const char>(text.data(), text.size()),
                 _message.initRoot<wire::Process>());
  }

  wire::Process::Reader process() { return _message.getRoot<wire::Process>().asReader(); }

  // The connection over `protseq` that carries the requests of process `caller`, if any.
  std::optional<wire::Connection::Reader> carrying(const std::string& protseq, uint64_t caller) {
    for (auto c : process().getConnections()) {
      if (c.getProtseq() == protseq && c.getCallerProcess() == caller) return c;
    }
    return std::nullopt;
  }

  std::string text;

private:
  capnp::MallocMessageBuilder _message;
};

BOOST_AUTO_TEST_CASE(ferry_ls_counts_each_connections_messages_and_bytes_and_shows_its_round_trip_time) {
  Peer peer;
  auto mta = rt().joinMta();
  const uint64_t self = detail::currentRuntime().processId;
  Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
  constexpr uint64_t kCalls = 10;
  const std::vector<uint8_t> data(4096, 0x5a);
  for (const std::string& transport : crossProcessTransports()) {
    setTransport(probe.get(), transport);
    probe->nothing();  // the connection is open and has carried a request of this process
    Described before(peer.pid());
    auto was = before.carrying(transport, self);
    BOOST_REQUIRE_MESSAGE(was, transport << ": no connection of this process in " << before.text);
    for (uint64_t i = 0; i < kCalls; ++i) BOOST_REQUIRE(probe->echo(data) == data);
    Described after(peer.pid());
    auto now = after.carrying(transport, self);
    BOOST_REQUIRE_MESSAGE(now, transport << ": the connection went: " << after.text);
    // Each call is one request in and one response out, each with the 4096 bytes and a header
    // of less than 512 bytes; a ping of this process's DGC may have come along.
    uint64_t in = now->getMessagesReceived() - was->getMessagesReceived();
    uint64_t inBytes = now->getBytesReceived() - was->getBytesReceived();
    uint64_t out = now->getMessagesSent() - was->getMessagesSent();
    uint64_t outBytes = now->getBytesSent() - was->getBytesSent();
    BOOST_TEST_MESSAGE(transport << ": " << in << " in (" << inBytes << " bytes), " << out
                                 << " out (" << outBytes << " bytes)");
    BOOST_CHECK_MESSAGE(in >= kCalls && in <= kCalls + 1, transport << ": " << in << " in");
    BOOST_CHECK_MESSAGE(out >= kCalls && out <= kCalls + 1, transport << ": " << out << " out");
    BOOST_CHECK_GE(inBytes, kCalls * data.size());
    BOOST_CHECK_LE(inBytes, kCalls * (data.size() + 512) + 512);
    BOOST_CHECK_GE(outBytes, kCalls * data.size());
    BOOST_CHECK_LE(outBytes, kCalls * (data.size() + 512) + 512);
    BOOST_CHECK_EQUAL(now->getCallsInFlight(), 0u);  // the peer sent this process nothing
    // The network transports measure the path; the pipe has nothing to measure.
    if (transport == "pipe") {
      BOOST_CHECK_EQUAL(now->getRttMicros(), 0u);
    } else {
      BOOST_CHECK_MESSAGE(now->getRttMicros() > 0, transport << ": no RTT in " << after.text);
    }
  }
  // The readable tree says the same.
  std::string output;
  BOOST_REQUIRE_EQUAL(ferryTool({"ls", std::to_string(peer.pid())}, output), 0);
  BOOST_CHECK_MESSAGE(output.find("byte(s) sent again") != std::string::npos &&
                          output.find("call(s) in flight") != std::string::npos, output);
  probe = nullptr;
  peer.finish();
}

BOOST_AUTO_TEST_CASE(ferry_ls_shows_a_call_in_flight_on_the_connection_it_went_out_on) {
  Peer peer;
  auto mta = rt().joinMta();
  Ref<Probe> probe = unmarshalInterface<Probe>(peer.mtaProbe);
  setTransport(probe.get(), "tcp");
  probe->nothing();
  auto outboundTcp = [&](Described& d) -> std::optional<wire::Connection::Reader> {
    for (auto c : d.process().getConnections()) {
      if (c.getOutbound() && c.getProtseq() == "tcp") return c;
    }
    return std::nullopt;
  };
  {
    // The call waits in the peer until it is canceled.
    Future<bool> waiting = probe->waitForCancelAsync(20000);
    std::optional<Described> during;
    BOOST_CHECK(eventually([&] {
      during.emplace(getpid());
      auto c = outboundTcp(*during);
      return c && c->getCallsInFlight() == 1;
    }));
    BOOST_CHECK(during && during->process().getCallsInFlight() >= 1);
    waiting.cancel();
    BOOST_CHECK(waiting.get());
  }
  Described after(getpid());
  auto c = outboundTcp(after);
  BOOST_REQUIRE_MESSAGE(c, "no tcp connection to the peer in " << after.text);
  BOOST_CHECK_EQUAL(c->getCallsInFlight(), 0u);
  probe = nullptr;
  peer.finish();
}

// The line of `output` that begins with `pid` and a space; "" when none does.
std::string lineOf(const std::string& output, pid_t pid) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(std::to_string(pid) + " ", 0) == 0) return line;
  }
  return "";
}

BOOST_AUTO_TEST_CASE(ferry_ps_asks_ferryd_and_another_host_reaches_only_an_admin_object_served_to_the_network) {
  Ferryd ferryd;
  std::optional<Peer> network;
  std::optional<Peer> local;
  {
    ScopedEnv resolver("FERRY_RESOLVER", ferryd.pipeBinding());
    network.emplace(std::vector<std::string>{"--admin", "network", "--admin-minimum-level", "none"});
    local.emplace();
  }
  std::string output;
  {
    // This host's ferryd lists both, with the admin objects this user may call (registrations
    // arrive as the peers start).
    ScopedEnv resolver("FERRY_RESOLVER", ferryd.pipeBinding());
    BOOST_CHECK_MESSAGE(eventually([&] {
      return ferryTool({"ps"}, output) == 0 && !lineOf(output, network->pid()).empty() &&
             !lineOf(output, local->pid()).empty();
    }), output);
    BOOST_CHECK_MESSAGE(output.rfind("from ferryd at " + ferryd.pipeBinding() + ":", 0) == 0, output);
    BOOST_CHECK_MESSAGE(lineOf(output, local->pid()).find("pipe:") != std::string::npos, output);
    BOOST_CHECK_MESSAGE(lineOf(output, local->pid()).find("uid " + std::to_string(getuid())) !=
                            std::string::npos, output);
  }
  {
    // Without a ferryd the tool says it read the runtime directory.
    ScopedEnv resolver("FERRY_RESOLVER", "none");
    BOOST_REQUIRE_EQUAL(ferryTool({"ps"}, output), 0);
    BOOST_CHECK_MESSAGE(output.rfind("from the runtime directory ", 0) == 0, output);
    BOOST_CHECK_MESSAGE(!lineOf(output, local->pid()).empty(), output);
  }

  // From another host (ferryd's tcp port), as a tool there would: without the pipe (its plugin
  // is not on the tool's FERRY_PLUGIN_PATH). The admin object served to the network is given, the
  // other one is not.
  std::string networkOnly;
  {
    const char* path = std::getenv("FERRY_PLUGIN_PATH");
    std::istringstream dirs(path != nullptr ? path : "");
    for (std::string dir; std::getline(dirs, dir, ':');) {
      if (dir.find("/transports/pipe") != std::string::npos) continue;
      networkOnly += (networkOnly.empty() ? "" : ":") + dir;
    }
  }
  ScopedEnv plugins("FERRY_PLUGIN_PATH", networkOnly);
  const std::string host = "127.0.0.1:" + ferryd.tcp.endpoint;
  BOOST_REQUIRE_EQUAL(ferryTool({"ps", host}, output), 0);
  BOOST_CHECK_MESSAGE(output.rfind("from the ferryd of " + host + ":", 0) == 0, output);
  BOOST_CHECK_MESSAGE(lineOf(output, network->pid()).find("tcp:") != std::string::npos, output);
  BOOST_CHECK_MESSAGE(lineOf(output, local->pid()).find("(no admin object") != std::string::npos,
                      output);

  // ferry ls reaches it over the network, as a caller on another host would.
  BOOST_REQUIRE_EQUAL(ferryTool({"ls", "--json", host + "/" + std::to_string(network->pid())}, output), 0);
  {
    capnp::JsonCodec codec;
    capnp::MallocMessageBuilder message;
    auto process = message.initRoot<wire::Process>();
    codec.decode(kj::ArrayPtr<const char>(output.data(), output.size()), process);
    BOOST_CHECK_EQUAL(process.getPid(), static_cast<uint32_t>(network->pid()));
    // The describe call came in over a network transport, without the pipe's credentials.
    bool overNetwork = false;
    for (auto c : process.getConnections()) {
      if (!c.getOutbound() && c.getProtseq() != "pipe" && c.getCallerProcess() != 0 &&
          c.getPeerPid() == 0 && c.getMessagesReceived() > 0) {
        overNetwork = true;
      }
    }
    BOOST_CHECK_MESSAGE(overNetwork, output);
  }
  // The process that serves its own host only is refused, and the message names the setting.
  BOOST_CHECK_EQUAL(ferryTool({"ls", host + "/" + std::to_string(local->pid())}, output), 1);
  BOOST_CHECK_MESSAGE(output.find("accessDenied") != std::string::npos &&
                          output.find("RuntimeOptions::admin") != std::string::npos, output);
  // A pid no process registered.
  BOOST_CHECK_EQUAL(ferryTool({"ls", host + "/1"}, output), 1);
  BOOST_CHECK_MESSAGE(output.find("objectNotRegistered") != std::string::npos, output);

  network->finish();
  local->finish();
}

BOOST_AUTO_TEST_CASE(ferry_call_calls_a_method_by_reflection_and_prints_its_results_as_json) {
  Peer peer;
  auto mta = rt().joinMta();
  std::string probeTarget =
      std::to_string(peer.pid()) + "/" + toString(decodeObjRef(peer.probe).oid);
  {
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    uint64_t before = probe->peek();
    std::string output;
    BOOST_REQUIRE_EQUAL(ferryTool({"call", probeTarget, "Probe.count"}, output), 0);
    BOOST_CHECK_EQUAL(lastLine(output), "{\"total\":\"" + std::to_string(before + 1) + "\"}");
    BOOST_CHECK_EQUAL(probe->peek(), before + 1);
    BOOST_REQUIRE_EQUAL(ferryTool({"call", probeTarget, "Probe.echo", R"({"data": [1, 2, 255]})"},
                                  output), 0);
    BOOST_CHECK_EQUAL(lastLine(output), R"({"data":[1,2,255]})");

    // Mistakes are sentences, exit status 1.
    BOOST_CHECK_EQUAL(ferryTool({"call", probeTarget, "Probe.echo", "{nope"}, output), 1);
    BOOST_CHECK_MESSAGE(output.find("not valid JSON") != std::string::npos, output);
    BOOST_CHECK_EQUAL(ferryTool({"call", probeTarget, "Probe.nosuch"}, output), 1);
    BOOST_CHECK_MESSAGE(output.find("has no method 'nosuch'") != std::string::npos, output);
    BOOST_CHECK_EQUAL(ferryTool({"call", probeTarget, "Probe.echo", R"({"bogus": 1})"}, output), 1);
    BOOST_CHECK_MESSAGE(output.find("no parameter 'bogus'; its parameters: data") != std::string::npos,
                        output);
    BOOST_CHECK_EQUAL(ferryTool({"call", probeTarget, "Nothing.here"}, output), 1);
    BOOST_CHECK_MESSAGE(output.find("no interface 'Nothing'") != std::string::npos, output);
    BOOST_CHECK_EQUAL(ferryTool({"call", probeTarget, "Probe.fail", R"({"message": "remote"})"},
                                output), 1);
    BOOST_CHECK_MESSAGE(output.find("serverFault") != std::string::npos &&
                            output.find("remote") != std::string::npos, output);

    // An interface-typed result prints as an OBJREF's text, the target of the next call: here a
    // Callback of this process, held by the peer's Holder.
    Ref<Holder> holder = unmarshalInterface<Holder>(peer.holder);
    auto callback = make<CallbackImpl>();
    holder->set(callback);
    std::string holderTarget =
        std::to_string(peer.pid()) + "/" + toString(decodeObjRef(peer.holder).oid);
    BOOST_REQUIRE_EQUAL(ferryTool({"call", holderTarget, "Holder.get"}, output), 0);
    std::string result = lastLine(output);
    BOOST_REQUIRE_MESSAGE(result.rfind("{\"cb\":\"", 0) == 0, result);
    std::string objref = result.substr(7, result.size() - 9);
    BOOST_CHECK_EQUAL(ferryTool({"call", objref, "Callback.called", R"({"value": 5})"}, output), 0);
    {
      std::lock_guard lock(callback->mutex);
      BOOST_CHECK(callback->values == std::vector<int64_t>{5});
    }
    holder->set(nullptr);
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(ferry_ping_times_a_process_and_an_object) {
  Peer peer;
  std::string output;
  BOOST_REQUIRE_EQUAL(ferryTool({"ping", std::to_string(peer.pid())}, output), 0);
  BOOST_CHECK_MESSAGE(output.find("reply from pid " + std::to_string(peer.pid()) + ": serving") !=
                          std::string::npos, output);
  std::string target = std::to_string(peer.pid()) + "/" + toString(decodeObjRef(peer.probe).oid);
  BOOST_REQUIRE_EQUAL(ferryTool({"ping", "-c", "2", target}, output), 0);
  size_t replies = 0;
  for (size_t at = output.find("exported, time="); at != std::string::npos;
       at = output.find("exported, time=", at + 1)) {
    ++replies;
  }
  BOOST_CHECK_EQUAL(replies, 2u);
  // A process that publishes no admin object.
  BOOST_CHECK_EQUAL(ferryTool({"ping", "999999999"}, output), 1);
  BOOST_CHECK_MESSAGE(output.find("publishes no admin object") != std::string::npos, output);
  peer.finish();
}

BOOST_AUTO_TEST_SUITE_END()
