// Security between two processes (issue 12): the bind exchange over the pipe with the local
// provider, what the servant sees of its caller, the access check and the least level, and the
// configurations the Runtime refuses.
// Also: the bytes on the wire between two processes at each level, and ferryd with and without
// providers.
// And the catalogue's forged and truncated frames under the udp fault layer.
//   security-test -- <ferry-security-peer> <ferryd> <udp fault-layer plugin dir>
#define BOOST_TEST_MODULE security
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include <openssl/rand.h>

#include "child-process.h"
#include "fixture.h"
#include "objref.h"
#include "orpc/bind.h"
#include "orpc/frame.h"
#include "runtime-impl.h"
#include "transport/hub.h"
#include "pki.h"
#include "testing.ferry.h"

namespace ferry {
// For Boost.Test's messages.
std::ostream& operator<<(std::ostream& out, Errc code) { return out << static_cast<int>(code); }
}  // namespace ferry

using namespace ferry;
using namespace ferry::test;
using testing::iface::Probe;
namespace orpc = ferry::detail::orpc;

namespace {

constexpr const char* kUsage =
    "usage: security-test -- <ferry-security-peer> <ferryd> <udp fault-layer plugin dir>";

std::string peerPath() { return testArgument(1, kUsage); }

std::string ourPrincipal() { return "uid:" + std::to_string(geteuid()); }

// A ferry-security-peer serving with `arguments` (and `environment`, NAME=VALUE entries); its
// Probe's OBJREF.
class Peer {
public:
  explicit Peer(std::vector<std::string> arguments, std::vector<std::string> environment = {})
      : _child(withProgram(std::move(arguments), std::move(environment))) {
    auto announced = readAnnouncements(_child);
    if (announced.count("probe") != 0) probe = objRefFromText(announced["probe"]);
    BOOST_REQUIRE_MESSAGE(!probe.empty(), "the peer did not start");
    bindings = announced["bindings"];
  }

  // The port of the peer's binding of `protseq` on 127.0.0.1 (0 when it has none).
  uint16_t port(const std::string& protseq) const {
    std::string prefix = protseq + ":127.0.0.1[";
    size_t at = bindings.find(prefix);
    if (at == std::string::npos) return 0;
    return static_cast<uint16_t>(std::stoul(bindings.substr(at + prefix.size())));
  }

  // Ends the peer; how many calls its servant ran and how many it refused accessDenied.
  std::pair<int, int> finish() {
    _child.closeInput();
    std::string line;
    int ran = -1, denied = -1;
    while (_child.readLine(line, std::chrono::seconds(20))) {
      if (std::sscanf(line.c_str(), "ran %d denied %d dropped %lld replays %lld closed %lld", &ran,
                      &denied, &dropped, &replays, &closed) >= 2) {
        break;
      }
    }
    BOOST_CHECK_EQUAL(_child.wait(std::chrono::seconds(20)), 0);
    return {ran, denied};
  }

  ObjRefBytes probe;
  std::string bindings;  // its string bindings, comma separated
  // Its counters when finish() ended it: sealed frames dropped, replays dropped, connections
  // closed for forgeries.
  long long dropped = -1, replays = -1, closed = -1;

private:
  static std::vector<std::string> withProgram(std::vector<std::string> arguments,
                                              std::vector<std::string> environment) {
    arguments.insert(arguments.begin(), peerPath());
    if (!environment.empty()) {
      environment.insert(environment.begin(), "env");
      arguments.insert(arguments.begin(), environment.begin(), environment.end());
    }
    return arguments;
  }

  Child _child;
};

// Options of a client over `transport` with the test-only testkey provider, asking for `least`.
RuntimeOptions withTestKey(const std::string& transport,
                           std::optional<SecurityLevel> least = std::nullopt) {
  RuntimeOptions options;
  options.transports = {transport};
  options.security = {{"testkey", ""}};
  options.minimumLevel = least;
  return options;
}

RuntimeOptions pipeOnly(bool local, const std::string& settings = "") {
  RuntimeOptions options;
  options.transports = {"pipe"};
  if (local) options.security = {{"local", settings}};
  return options;
}

std::string text(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

// Runs `call` and returns the code of the ferry::Error it threw (ok when none).
Errc codeOf(const std::function<void()>& call, std::string* message = nullptr) {
  try {
    call();
  } catch (const Error& e) {
    if (message != nullptr) *message = e.message();
    return e.code();
  }
  return Errc::ok;
}

// A call from a client with `options` to a peer started with `peerArguments` is answered
// accessDenied with a message holding `says`, and the peer's servant never ran.
void expectDenied(std::vector<std::string> peerArguments, const RuntimeOptions& options,
                  const std::string& says) {
  Peer peer(std::move(peerArguments));
  {
    RuntimeFixture fixture(options);
    auto mta = fixture.rt().joinMta();
    std::string message;
    Errc code = codeOf([&] { unmarshalInterface<Probe>(peer.probe)->count(); }, &message);
    BOOST_CHECK_EQUAL(code, Errc::accessDenied);
    BOOST_CHECK_MESSAGE(message.find(says) != std::string::npos, message);
  }
  auto [ran, denied] = peer.finish();
  BOOST_CHECK_EQUAL(ran, 0);
  BOOST_CHECK_GE(denied, 1);
}

// What the loopback interface carries, as a packet socket sees it (CAP_NET_RAW), from
// construction until stop(): every IPv4 packet, kept whole.
class LoopbackCapture {
public:
  // Whether this process may open a packet socket (why not, when it may not).
  static std::string whyNot() {
    int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
    if (fd < 0) return std::string("a packet socket needs CAP_NET_RAW: ") + std::strerror(errno);
    close(fd);
    return "";
  }

  LoopbackCapture() {
    _fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
    BOOST_REQUIRE_MESSAGE(_fd >= 0, "cannot open a packet socket: " << std::strerror(errno));
    // Room for bursts: the packet socket sees every process's loopback traffic (root may go past
    // net.core.rmem_max).
    int size = 256 << 20;
    if (setsockopt(_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
      setsockopt(_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    sockaddr_ll where{};
    where.sll_family = AF_PACKET;
    where.sll_protocol = htons(ETH_P_ALL);
    where.sll_ifindex = static_cast<int>(if_nametoindex("lo"));
    BOOST_REQUIRE(bind(_fd, reinterpret_cast<sockaddr*>(&where), sizeof where) == 0);
    _thread = std::thread([this] { run(); });
  }
  ~LoopbackCapture() {
    stop();
    close(_fd);
  }

  void stop() {
    _stopping = true;
    if (_thread.joinable()) _thread.join();
  }

  // The payloads of the packets of `protocol` (IPPROTO_TCP or IPPROTO_UDP) from or to `port`,
  // in the order captured.
  std::vector<std::vector<uint8_t>> payloads(uint8_t protocol, uint16_t port) {
    std::lock_guard lock(_mutex);
    std::vector<std::vector<uint8_t>> out;
    for (const auto& packet : _packets) {
      if (packet.size() < 20 || (packet[0] >> 4) != 4 || packet[9] != protocol) continue;
      size_t ip = (packet[0] & 0x0f) * 4u;
      if (packet.size() < ip + 8) continue;
      uint16_t source = static_cast<uint16_t>(packet[ip] << 8 | packet[ip + 1]);
      uint16_t destination = static_cast<uint16_t>(packet[ip + 2] << 8 | packet[ip + 3]);
      if (source != port && destination != port) continue;
      size_t header = protocol == IPPROTO_TCP ? (packet.size() >= ip + 13 ? (packet[ip + 12] >> 4) * 4u : 0)
                                               : 8u;
      if (header == 0 || packet.size() < ip + header) continue;
      out.emplace_back(packet.begin() + static_cast<long>(ip + header), packet.end());
    }
    return out;
  }

private:
  // Reads packets until stopped, then what the socket still holds.
  void run() {
    std::vector<uint8_t> buffer(1 << 17);
    for (bool draining = false;;) {
      if (!draining) {
        draining = _stopping;
        pollfd p{_fd, POLLIN, 0};
        if (!draining && poll(&p, 1, 50) <= 0) continue;
      }
      ssize_t n = recv(_fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n <= 0) {
        if (draining) return;
        continue;
      }
      std::lock_guard lock(_mutex);
      _packets.emplace_back(buffer.begin(), buffer.begin() + n);
    }
  }

  int _fd = -1;
  std::atomic<bool> _stopping{false};
  std::mutex _mutex;
  std::vector<std::vector<uint8_t>> _packets;
  std::thread _thread;
};

bool holds(const std::vector<uint8_t>& bytes, const std::string& text) {
  return std::search(bytes.begin(), bytes.end(), text.begin(), text.end()) != bytes.end();
}

// The capture runs where a packet socket may be opened; CI (root, FERRY_REQUIRE_ROOT_TESTS=1)
// runs it always, so that a missing capability fails there instead of skipping.
struct CanCapture {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    const char* required = std::getenv("FERRY_REQUIRE_ROOT_TESTS");
    if (required != nullptr && std::string(required) == "1") return true;
    boost::test_tools::assertion_result result(LoopbackCapture::whyNot().empty());
    result.message() << LoopbackCapture::whyNot();
    return result;
  }
};

// A ferryd over the pipe (in a temporary directory) and tcp (an ephemeral port) with
// `arguments` besides; stopped with SIGTERM at the end.
class Ferryd {
public:
  explicit Ferryd(const std::vector<std::string>& arguments) {
    char path[] = "/tmp/ferryd-security-XXXXXX";
    BOOST_REQUIRE(mkdtemp(path) != nullptr);
    directory = path;
    std::vector<std::string> command{testArgument(2, kUsage), "--pipe-directory", directory,
                                     "--pipe-name", "ferryd", "--port", "0", "--transports",
                                     "pipe,tcp"};
    command.insert(command.end(), arguments.begin(), arguments.end());
    _child.emplace(command);
    std::string line;
    const std::string prefix = "ferryd listening on tcp:127.0.0.1[";
    while (tcp.endpoint.empty() && _child->readLine(line, std::chrono::seconds(20))) {
      if (line.rfind(prefix, 0) == 0) {
        tcp = {"tcp", "127.0.0.1", line.substr(prefix.size(), line.size() - prefix.size() - 1)};
      }
    }
    BOOST_REQUIRE_MESSAGE(!tcp.endpoint.empty(), "ferryd did not start: " << line);
  }
  ~Ferryd() {
    _child->signal(SIGTERM);
    BOOST_CHECK_EQUAL(_child->wait(std::chrono::seconds(20)), 0);
    rmdir(directory.c_str());
  }

  std::string resolverSetting() const { return "FERRY_RESOLVER=pipe:" + directory + "[ferryd]"; }
  detail::StringBindingData pipe() const { return {"pipe", directory, "ferryd"}; }

  // `objref` naming only `binding`, so that unmarshaling it asks ferryd there for the OXID.
  static ObjRefBytes through(const ObjRefBytes& objref, const detail::StringBindingData& binding) {
    detail::ObjRefData data = detail::decodeObjRef(objref);
    data.bindings = {binding};
    return detail::encodeObjRef(data);
  }

  std::string directory;
  detail::StringBindingData tcp;

private:
  std::optional<Child> _child;
};

// Calls `count` on the probe `objref` names until it answers (the peer's registration with
// ferryd travels asynchronously) or fails otherwise than objectNotRegistered; the last code.
Errc callThroughFerryd(const ObjRefBytes& objref, std::string* message) {
  Errc code = Errc::ok;
  for (int attempt = 0; attempt < 100; ++attempt) {
    code = codeOf([&] { unmarshalInterface<Probe>(objref)->count(); }, message);
    if (code != Errc::objectNotRegistered) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return code;
}

}  // namespace

BOOST_AUTO_TEST_CASE(ferryd_with_a_provider_resolves_for_callers_at_its_level_and_local_ones_only) {
  Ferryd ferryd({"--security", "testkey"});
  // The peer registers over ferryd's pipe; it runs the provider too (its own minimum is
  // integrity), so that a caller with the provider reaches it.
  Peer peer({"--transport", "pipe,tcp", "--security", "testkey"}, {ferryd.resolverSetting()});
  {
    RuntimeFixture fixture(withTestKey("tcp"));
    auto mta = fixture.rt().joinMta();
    std::string message;
    BOOST_CHECK_EQUAL(callThroughFerryd(Ferryd::through(peer.probe, ferryd.tcp), &message),
                      Errc::ok);
  }
  {
    // Without a provider, over tcp: ferryd's answer is a refusal that names the settings.
    RuntimeOptions options;
    options.transports = {"tcp"};
    RuntimeFixture fixture(options);
    auto mta = fixture.rt().joinMta();
    std::string message;
    BOOST_CHECK_EQUAL(callThroughFerryd(Ferryd::through(peer.probe, ferryd.tcp), &message),
                      Errc::accessDenied);
    BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::security") != std::string::npos &&
                            message.find("minimum_level") != std::string::npos,
                        message);
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 1);
}

BOOST_AUTO_TEST_CASE(a_providerless_process_registers_and_resolves_with_a_ferryd_that_has_providers_over_the_pipe) {
  Ferryd ferryd({"--security", "testkey"});
  // Registration over the pipe at level none: the kernel identifies the process.
  Peer peer({"--transport", "pipe"}, {ferryd.resolverSetting()});
  {
    RuntimeFixture fixture(pipeOnly(false));
    auto mta = fixture.rt().joinMta();
    std::string message;
    BOOST_CHECK_MESSAGE(callThroughFerryd(Ferryd::through(peer.probe, ferryd.pipe()), &message) ==
                            Errc::ok,
                        message);
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 1);
}

BOOST_AUTO_TEST_CASE(a_process_with_a_provider_against_a_providerless_ferryd_fails_naming_the_settings) {
  Ferryd ferryd({});
  Peer peer({"--transport", "tcp", "--security", "testkey"});
  {
    RuntimeFixture fixture(withTestKey("tcp"));
    auto mta = fixture.rt().joinMta();
    int64_t refusedBefore = Runtime::stats().bindsRefused;
    std::string message;
    BOOST_CHECK_EQUAL(callThroughFerryd(Ferryd::through(peer.probe, ferryd.tcp), &message),
                      Errc::unavailable);
    BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::security") != std::string::npos &&
                            message.find("ferryd: its security and minimum_level") !=
                                std::string::npos,
                        message);
    BOOST_CHECK_GE(Runtime::stats().bindsRefused - refusedBefore, 1);
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 0);
}

BOOST_AUTO_TEST_CASE(under_udp_impairment_sealed_calls_run_once_and_forged_or_truncated_frames_never_run) {
  // The peer's datagrams in and out go through the udp plugin's fault layer; short timers notice
  // a dead session in 1.5 s.
  const std::string timers = "initial_rtt_ms=20,max_ack_delay_ms=5,idle_timeout_ms=1500";
  std::string faultDir = testArgument(3, kUsage);
  BOOST_REQUIRE_MESSAGE(access((faultDir + "/ferry-transport-udp.so").c_str(), R_OK) == 0,
                        "no udp plugin with the fault layer in " << faultDir);
  const char* inherited = std::getenv("FERRY_PLUGIN_PATH");
  std::string pluginPath = "FERRY_PLUGIN_PATH=" + faultDir +
                           (inherited != nullptr ? std::string(":") + inherited : std::string());
  const char* profiles[] = {
      // Bit flips and truncation (caught by the datagrams' CRC), with loss and reordering.
      "seed=21,dir=both,corrupt=0.05,truncate=0.05,drop=0.05,reorder=0.2,reorder_ms=5",
      // Duplicates (replayed datagrams), with loss and reordering.
      "seed=22,dir=both,dup=0.3,drop=0.05,reorder=0.3,reorder_ms=5",
  };
  for (const char* fault : profiles) {
    BOOST_TEST_CONTEXT("fault " << fault) {
      Peer peer({"--transport", "udp", "--security", "testkey"},
                {pluginPath, std::string("FERRY_UDP_FAULT=") + fault, "FERRY_UDP_OPTIONS=" + timers});
      uint16_t port = peer.port("udp");
      BOOST_REQUIRE(port != 0);
      int succeeded = 0, unknown = 0;
      uint64_t executed = 0;
      {
        RuntimeOptions options = withTestKey("udp", SecurityLevel::privacy);
        options.transportSettings["udp"] = timers;
        RuntimeFixture fixture(options);
        auto mta = fixture.rt().joinMta();
        RuntimeStats before = Runtime::stats();
        Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
        auto count = [&] {
          try {
            uint64_t total = probe->count();
            BOOST_CHECK_GT(total, executed);  // a call that ran twice would jump by two
            executed = total;
            ++succeeded;
          } catch (const Error& e) {
            BOOST_CHECK_MESSAGE(e.code() == Errc::outcomeUnknown || e.code() == Errc::unavailable,
                                e.what());
            ++unknown;
          }
        };
        for (int i = 0; i < 30; ++i) count();
        // The attacker on the path: sealed frames with a tag it made up, and sealed frames cut
        // short, each in a datagram of the live session with a valid CRC, so that they reach the
        // peer's record layer (the session delivers them through the loss). At the limit the peer
        // closes the session; what comes after goes nowhere.
        auto& hub = *fixture.rt().impl().hub();
        std::optional<orpc::LinkId> link =
            hub.openLink("udp:127.0.0.1[" + std::to_string(port) + "]");
        BOOST_REQUIRE(link.has_value());
        hub.post([&hub, link = *link] {
          for (int i = 0; i < 2 * orpc::BindLayer::kForgeryLimit; ++i) {
            std::vector<uint8_t> frame(i % 2 == 0 ? 24 + 64 + 16 : 24 + 8, 0);
            std::memcpy(frame.data(), "FRY1", 4);
            frame[4] = orpc::kSealedFrameKind;
            frame[8] = static_cast<uint8_t>(100 + i);  // a number ahead of the peer's window
            for (size_t b = 24; b < frame.size(); ++b) frame[b] = static_cast<uint8_t>(b * 7 + i);
            hub.send(link, std::move(frame));
          }
        });
        // Calls go on, over a new session once the peer closed the old one.
        for (int i = 0; i < 30; ++i) count();
        RuntimeStats after = Runtime::stats();
        // What the fault layer did was caught below the record layer (the CRC, the session's
        // duplicate detection): nothing reached this process's record layer damaged or twice.
        BOOST_CHECK_EQUAL(after.sealedFramesDropped - before.sealedFramesDropped, 0);
        BOOST_CHECK_EQUAL(after.replaysDropped - before.replaysDropped, 0);
        BOOST_CHECK_EQUAL(after.linksClosedForForgeries - before.linksClosedForForgeries, 0);
      }
      auto [ran, denied] = peer.finish();
      // The servant ran for the calls that succeeded and at most those whose outcome the caller
      // could not know; never for a forged or truncated frame.
      BOOST_CHECK_GE(succeeded, 50);
      BOOST_CHECK_GE(static_cast<uint64_t>(ran), executed);
      BOOST_CHECK_GE(ran, succeeded);
      BOOST_CHECK_LE(ran, succeeded + unknown);
      BOOST_CHECK_EQUAL(denied, 0);
      BOOST_CHECK_GE(peer.dropped, orpc::BindLayer::kForgeryLimit);
      BOOST_CHECK_EQUAL(peer.closed, 1);
      BOOST_CHECK_EQUAL(peer.replays, 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(on_the_wire_a_methods_argument_shows_at_none_and_integrity_and_never_at_privacy,
                     *boost::unit_test::precondition(CanCapture())) {
  // The argument: a marker repeated, so that whole copies fall inside one tcp segment or one
  // datagram wherever the transport cuts the message.
  const std::string marker = "ferry-argument-in-clear:";
  std::string argument;
  while (argument.size() < 8192) argument += marker;
  std::vector<uint8_t> data(argument.begin(), argument.end());
  for (std::string transport : {"tcp", "udp"}) {
    for (SecurityLevel level :
         {SecurityLevel::none, SecurityLevel::integrity, SecurityLevel::privacy}) {
      BOOST_TEST_CONTEXT(transport << " at " << toString(level)) {
        std::vector<std::string> arguments{"--transport", transport};
        if (level != SecurityLevel::none) arguments.insert(arguments.end(), {"--security", "testkey"});
        Peer peer(arguments);
        uint16_t port = peer.port(transport);
        BOOST_REQUIRE_MESSAGE(port != 0, "the peer has no " << transport << " binding: " << peer.bindings);
        LoopbackCapture capture;
        {
          RuntimeOptions options;
          options.transports = {transport};
          if (level != SecurityLevel::none) options = withTestKey(transport, level);
          RuntimeFixture fixture(options);
          auto mta = fixture.rt().joinMta();
          Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
          BOOST_CHECK(probe->echo(data) == data);
          std::string caller = text(probe->echo({}));
          BOOST_CHECK_MESSAGE(caller.ends_with("|" + std::string(toString(level))), caller);
        }
        capture.stop();
        auto payloads = capture.payloads(transport == "tcp" ? IPPROTO_TCP : IPPROTO_UDP, port);
        size_t captured = 0, clear = 0;
        for (const auto& payload : payloads) {
          captured += payload.size();
          if (holds(payload, marker)) ++clear;
        }
        // The capture saw the call's bytes both ways (request and response carry the argument).
        BOOST_CHECK_GE(captured, 2 * data.size());
        if (level == SecurityLevel::privacy) {
          BOOST_CHECK_EQUAL(clear, 0u);
        } else {
          BOOST_CHECK_GE(clear, 2u);
        }
        peer.finish();
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(over_the_pipe_with_the_local_provider_the_servant_sees_our_uid_at_privacy) {
  Peer peer({"--transport", "pipe", "--security", "local"});
  {
    RuntimeFixture fixture(pipeOnly(true));
    auto mta = fixture.rt().joinMta();
    int64_t refusedBefore = Runtime::stats().bindsRefused;
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "local|" + ourPrincipal() + "|privacy");
    BOOST_CHECK_EQUAL(Runtime::stats().bindsRefused - refusedBefore, 0);
  }
  auto [ran, denied] = peer.finish();
  BOOST_CHECK_EQUAL(ran, 1);
  BOOST_CHECK_EQUAL(denied, 0);
}

BOOST_AUTO_TEST_CASE(without_providers_the_servant_sees_an_anonymous_caller_at_none) {
  Peer peer({"--transport", "pipe"});
  {
    RuntimeFixture fixture(pipeOnly(false));
    auto mta = fixture.rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "||none");
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 1);
}

BOOST_AUTO_TEST_CASE(an_access_check_that_denies_the_caller_answers_access_denied_and_the_servant_never_runs) {
  expectDenied({"--transport", "pipe", "--security", "local", "--deny", ourPrincipal()},
               pipeOnly(true), "RuntimeOptions::accessCheck");
}

BOOST_AUTO_TEST_CASE(a_caller_below_the_servers_least_level_is_refused_and_the_servant_never_runs) {
  // The peer runs the local provider (least level: integrity); this process has none, so its
  // link stays at none.
  expectDenied({"--transport", "pipe", "--security", "local"}, pipeOnly(false), "level none");
}

BOOST_AUTO_TEST_CASE(a_client_refuses_a_server_of_another_uid_than_it_expects) {
  Peer peer({"--transport", "pipe", "--security", "local"});
  {
    RuntimeFixture fixture(
        pipeOnly(true, "server_uid=" + std::to_string(geteuid() == 0 ? 1 : geteuid() - 1)));
    auto mta = fixture.rt().joinMta();
    int64_t refusedBefore = Runtime::stats().bindsRefused;
    std::string message;
    Errc code = codeOf([&] { unmarshalInterface<Probe>(peer.probe)->count(); }, &message);
    BOOST_CHECK_EQUAL(code, Errc::unavailable);
    BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::security") != std::string::npos, message);
    BOOST_CHECK_GE(Runtime::stats().bindsRefused - refusedBefore, 1);
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 0);
}

BOOST_AUTO_TEST_CASE(over_tcp_and_udp_calls_run_sealed_at_the_level_the_client_asks_for) {
  // The test-only testkey provider (tests/plugins/testkey) on both sides.
  for (std::string transport : {"tcp", "udp"}) {
    for (SecurityLevel level : {SecurityLevel::integrity, SecurityLevel::privacy}) {
      BOOST_TEST_CONTEXT(transport << " at " << toString(level)) {
        Peer peer({"--transport", transport, "--security", "testkey"});
        {
          RuntimeFixture fixture(withTestKey(transport, level));
          auto mta = fixture.rt().joinMta();
          int64_t droppedBefore = Runtime::stats().sealedFramesDropped;
          Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
          BOOST_CHECK_EQUAL(text(probe->echo({})),
                            "testkey|test:fixed|" + std::string(toString(level)));
          std::vector<uint8_t> data(200 * 1024);
          for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31);
          BOOST_CHECK(probe->echo(data) == data);
          BOOST_CHECK_EQUAL(Runtime::stats().sealedFramesDropped - droppedBefore, 0);
        }
        BOOST_CHECK_EQUAL(peer.finish().first, 2);
      }
    }
  }
}

// The real providers end to end: what the servant sees is the principal the provider
// authenticated, at the level the record layer applied.
BOOST_AUTO_TEST_CASE(the_psk_and_tls_providers_authenticate_calls_between_processes_at_privacy) {
  TempDir dir;
  unsigned char secret[32];
  BOOST_REQUIRE_EQUAL(RAND_bytes(secret, sizeof secret), 1);
  std::string hex;
  for (unsigned char b : secret) hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
  std::string keys = dir.write("keys", "client-1 " + hex + "\n");

  TestCa ca("ferry test CA");
  Identity server = ca.issue({"server", "DNS:server.test"});
  Identity client = ca.issue({"client", "URI:spiffe://test/client"});
  std::string common = "ca=" + dir.write("ca.pem", ca.certPem()) + ",principals=" +
                       dir.write("principals", "dns:server.test server\nuri:spiffe://test/client client\n");
  std::string serverTls = common + ",cert=" + dir.write("server.pem", server.certPem) +
                          ",key=" + dir.write("server.key", server.keyPem);
  std::string clientTls = common + ",cert=" + dir.write("client.pem", client.certPem) +
                          ",key=" + dir.write("client.key", client.keyPem);

  struct Case {
    std::string provider, serverSettings, clientSettings, expected;
  };
  const Case cases[] = {
      {"psk", "keys=" + keys, "keys=" + keys, "psk|client-1|privacy"},
      {"tls", serverTls, clientTls, "tls|client|privacy"},
  };
  for (const Case& c : cases) {
    for (std::string transport : {"tcp", "udp"}) {
      BOOST_TEST_CONTEXT(c.provider << " over " << transport) {
        Peer peer({"--transport", transport, "--security", c.provider, "--settings",
                   c.serverSettings});
        {
          RuntimeOptions options;
          options.transports = {transport};
          options.security = {{c.provider, c.clientSettings}};
          options.minimumLevel = SecurityLevel::privacy;
          RuntimeFixture fixture(options);
          auto mta = fixture.rt().joinMta();
          RuntimeStats before = Runtime::stats();
          Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
          BOOST_CHECK_EQUAL(text(probe->echo({})), c.expected);
          std::vector<uint8_t> data(64 * 1024, 0x5a);
          BOOST_CHECK(probe->echo(data) == data);
          BOOST_CHECK_EQUAL(Runtime::stats().sealedFramesDropped - before.sealedFramesDropped, 0);
          BOOST_CHECK_EQUAL(Runtime::stats().bindsRefused - before.bindsRefused, 0);
        }
        BOOST_CHECK_EQUAL(peer.finish().first, 2);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_server_raises_the_level_to_its_own_minimum) {
  Peer peer({"--transport", "tcp", "--security", "testkey", "--minimum", "privacy"});
  {
    RuntimeFixture fixture(withTestKey("tcp"));
    auto mta = fixture.rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "testkey|test:fixed|privacy");
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_proxy_blanket_takes_its_calls_over_a_connection_of_the_level_it_asks_for) {
  Peer peer({"--transport", "tcp", "--security", "testkey"});
  {
    RuntimeFixture fixture(withTestKey("tcp"));
    auto mta = fixture.rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "testkey|test:fixed|integrity");
    BOOST_CHECK(queryProxyBlanket(probe.get()) == SecurityLevel::none);
    setProxyBlanket(probe.get(), SecurityLevel::privacy);
    BOOST_CHECK(queryProxyBlanket(probe.get()) == SecurityLevel::privacy);
    BOOST_CHECK_MESSAGE(transportOf(probe.get()).find("+privacy") != std::string::npos,
                        transportOf(probe.get()));
    BOOST_CHECK_EQUAL(text(probe->echo({})), "testkey|test:fixed|privacy");
    setProxyBlanket(probe.get(), SecurityLevel::none);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "testkey|test:fixed|integrity");
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 3);
}

BOOST_AUTO_TEST_CASE(a_proxy_blanket_above_none_without_a_provider_fails_unavailable) {
  Peer peer({"--transport", "pipe"});
  {
    RuntimeFixture fixture(pipeOnly(false));
    auto mta = fixture.rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    std::string message;
    Errc code = codeOf([&] {
      setProxyBlanket(probe.get(), SecurityLevel::integrity);
      probe->count();
    }, &message);
    BOOST_CHECK_EQUAL(code, Errc::unavailable);
    BOOST_CHECK_MESSAGE(message.find("integrity") != std::string::npos, message);
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 0);
}

BOOST_AUTO_TEST_CASE(a_client_that_asks_for_a_provider_the_server_lacks_gets_unavailable_naming_the_settings) {
  Peer peer({"--transport", "tcp"});
  {
    RuntimeFixture fixture(withTestKey("tcp"));
    auto mta = fixture.rt().joinMta();
    std::string message;
    Errc code = codeOf([&] { unmarshalInterface<Probe>(peer.probe)->count(); }, &message);
    BOOST_CHECK_EQUAL(code, Errc::unavailable);
    BOOST_CHECK_MESSAGE(message.find("refused") != std::string::npos &&
                            message.find("RuntimeOptions::security") != std::string::npos,
                        message);
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 0);
}

BOOST_AUTO_TEST_CASE(the_local_provider_is_refused_on_tcp_when_the_runtime_is_made) {
  RuntimeOptions options;
  options.transports = {"tcp"};
  options.security = {{"local", ""}};
  std::string message;
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::security") != std::string::npos &&
                          message.find("tcp") != std::string::npos,
                      message);
}

BOOST_AUTO_TEST_CASE(a_listener_on_a_non_loopback_address_without_provider_is_refused) {
  RuntimeOptions options;
  options.transports = {"tcp"};
  options.listenAddresses = {"192.0.2.1"};
  std::string message;
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::allowInsecureNetwork") != std::string::npos &&
                          message.find("192.0.2.1") != std::string::npos,
                      message);
  // Loopback and the pipe need no provider.
  options.listenAddresses = {"127.0.0.1", "::1"};
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }), Errc::ok);
}

BOOST_AUTO_TEST_CASE(an_unknown_provider_or_bad_settings_are_refused_naming_the_setting) {
  RuntimeOptions options = pipeOnly(false);
  options.security = {{"nosuchprovider", ""}};
  std::string message;
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("nosuchprovider") != std::string::npos, message);
  options.security = {{"local", "allow_uids=abc"}};
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("allow_uids") != std::string::npos, message);
  options.security = {};
  options.minimumLevel = SecurityLevel::integrity;
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::minimumLevel") != std::string::npos, message);
}
