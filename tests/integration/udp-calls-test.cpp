// Calls over udp between two processes, impaired by the udp plugin's fault layer: at-most-once,
// byte-identical results, long calls, a black-holed and a restarted server, 16 MiB under loss,
// and calls sent again after a lost session (answered from the exporter's reply cache).
//   udp-calls-test -- <ferry-test-peer> <directory of the udp plugin's test-only build>
// The peer loads the udp plugin's test-only build, with the fault layer (that directory first on
// its FERRY_PLUGIN_PATH), and runs with FERRY_UDP_FAULT (its datagrams in and out) and short
// timers (FERRY_UDP_OPTIONS, the settings' override for tests); this process takes the same short
// timers through RuntimeOptions::transportSettings, as an application would.
#define BOOST_TEST_MODULE udp_calls
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <random>
#include <sstream>

#include "child-process.h"
#include "objref.h"
#include "servants.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Probe;

namespace {

// Short timers: a dead session is noticed in 1.5 s instead of 30.
constexpr const char* kOptions = "initial_rtt_ms=20,max_ack_delay_ms=5,idle_timeout_ms=1500";

std::string argument(int index) {
  return testArgument(index,
                      "usage: udp-calls-test -- <ferry-test-peer> <udp fault-layer plugin dir>");
}

std::string peerPath() { return argument(1); }

// The peer's FERRY_PLUGIN_PATH: the udp plugin with the fault layer first, then this process's.
std::string peerPluginPath() {
  BOOST_REQUIRE_MESSAGE(access((argument(2) + "/ferry-transport-udp.so").c_str(), R_OK) == 0,
                        "no udp plugin with the fault layer in " << argument(2));
  const char* inherited = std::getenv("FERRY_PLUGIN_PATH");
  return argument(2) + (inherited != nullptr ? std::string(":") + inherited : std::string());
}

bool udpLoaded() {
  for (const auto& p : Runtime::plugins()) {
    if (p.name == "udp") return true;
  }
  return false;
}

// A peer serving over udp (and pipe, for an unimpaired look at its state).
class UdpPeer {
public:
  UdpPeer(const std::string& fault, const std::string& port = "0")
      : _child({"env", "FERRY_PLUGIN_PATH=" + peerPluginPath(), "FERRY_UDP_FAULT=" + fault,
                std::string("FERRY_UDP_OPTIONS=") + kOptions, peerPath(), "--transports", "udp,pipe", "--port", port}) {
    auto announced = readAnnouncements(_child);
    if (announced.count("probe") != 0) probe = objRefFromText(announced["probe"]);
    BOOST_REQUIRE_MESSAGE(!probe.empty(), "the peer did not start");
  }

  // Ends the peer; returns how many requests it saw again and did not run again.
  int64_t finish() {
    _child.closeInput();
    std::string line;
    int64_t duplicates = -1;
    int64_t entries = -1;
    while (_child.readLine(line, std::chrono::seconds(30))) {
      if (line.rfind("served ", 0) == 0) std::istringstream(line.substr(7)) >> duplicates >> entries;
      if (line.rfind("stats ", 0) == 0) break;
    }
    BOOST_CHECK_MESSAGE(line == "stats 0 0 0", "the peer ended with: " << line);
    BOOST_CHECK_EQUAL(_child.wait(std::chrono::seconds(30)), 0);
    cacheEntries = entries;
    return duplicates;
  }
  void signal(int sig) { _child.signal(sig); }
  bool waitStopped() { return _child.waitStopped(std::chrono::seconds(10)); }
  int wait() { return _child.wait(std::chrono::seconds(20)); }

  ObjRefBytes probe;
  int64_t cacheEntries = -1;  // the reply cache's entries when finish() ended the peer

private:
  Child _child;
};

struct UdpFixture : RuntimeFixture {
  UdpFixture() : RuntimeFixture(options()) {}
  static RuntimeOptions options() {
    RuntimeOptions o;
    o.transports = {"udp", "pipe"};
    o.transportSettings["udp"] = kOptions;
    return o;
  }
};

// Calls `count` (not idempotent) and `echo` through `probe` over udp; checks every success is
// byte-identical, and that the server ran `count` at least as often as the caller saw it succeed
// and at most that plus the calls whose outcome the caller could not know.
// `executedNow()` asks the server, over an unimpaired route, how often `count` ran.
void checkAtMostOnce(Ref<Probe>& probe, const std::function<uint64_t()>& executedNow, int calls) {
  std::mt19937 random(5);
  int succeeded = 0;
  int unknown = 0;
  uint64_t lastTotal = 0;
  for (int i = 0; i < calls; ++i) {
    try {
      uint64_t total = probe->count();
      // A second execution of one call would show as a jump by two.
      BOOST_CHECK_GT(total, lastTotal);
      lastTotal = total;
      ++succeeded;
    } catch (const Error& e) {
      BOOST_CHECK_MESSAGE(e.code() == Errc::outcomeUnknown || e.code() == Errc::unavailable,
                          "count failed with " << e.what());
      ++unknown;
    }
    if (i % 4 == 0) {
      std::vector<uint8_t> data(random() % (64 * 1024));
      for (auto& b : data) b = static_cast<uint8_t>(random());
      try {
        BOOST_CHECK(probe->echo(data) == data);
      } catch (const Error& e) {
        BOOST_CHECK(e.code() == Errc::outcomeUnknown || e.code() == Errc::unavailable);
      }
    }
  }
  uint64_t executed = executedNow();
  BOOST_TEST_MESSAGE(succeeded << " succeeded, " << unknown << " unknown, " << executed
                               << " executed");
  BOOST_CHECK_GE(executed, static_cast<uint64_t>(succeeded));
  BOOST_CHECK_LE(executed, static_cast<uint64_t>(succeeded + unknown));
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(udp_calls, UdpFixture)

BOOST_AUTO_TEST_CASE(calls_run_at_most_once_and_results_are_intact_under_impairment) {
  if (!udpLoaded()) {
    BOOST_TEST_MESSAGE("the udp plugin is not loaded; nothing to test");
    return;
  }
  const char* profiles[] = {
      "seed=1,dir=both,drop=0.1",
      "seed=2,dir=both,drop=0.3",
      "seed=3,dir=both,dup=0.5",
      "seed=4,dir=both,reorder=0.25,reorder_ms=10",
      "seed=5,dir=both,truncate=0.01,corrupt=0.01",
  };
  for (const char* fault : profiles) {
    BOOST_TEST_CONTEXT("fault " << fault) {
      UdpPeer peer(fault);
      {
        auto mta = rt().joinMta();
        Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
        setTransport(probe.get(), "udp");
        BOOST_CHECK(transportOf(probe.get()).rfind("udp:", 0) == 0);
        // The audit looks from another apartment, over the pipe the fault layer does not touch.
        Sta auditor = rt().newSta("audit");
        Ref<Probe> audit = auditor.invoke([&] {
          Ref<Probe> p = unmarshalInterface<Probe>(peer.probe);
          setTransport(p.get(), "pipe");
          return p;
        });
        checkAtMostOnce(probe, [&] { return auditor.invoke([&] { return audit->count() - 1; }); },
                        60);
        auditor.invoke([&] { audit.reset(); });
      }
      peer.finish();
      // The reply cache does not grow with the calls: each request acknowledges the responses
      // before it; left are the last call's of each connection (udp and the audit's pipe).
      BOOST_CHECK_LE(peer.cacheEntries, 2);
    }
  }
}

BOOST_AUTO_TEST_CASE(sixteen_mib_survive_five_percent_loss_byte_for_byte) {
  if (!udpLoaded()) return;
  UdpPeer peer("seed=9,dir=both,drop=0.05");
  {
    auto mta = rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    setTransport(probe.get(), "udp");
    std::vector<uint8_t> big(16 * 1024 * 1024 - 4096);
    std::mt19937 random(16);
    for (auto& b : big) b = static_cast<uint8_t>(random());
    CallTimeout timeout(std::chrono::seconds(120));
    BOOST_CHECK(probe->echo(big) == big);
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_call_running_for_many_idle_timeouts_completes) {
  if (!udpLoaded()) return;
  UdpPeer peer("seed=10,dir=both,drop=0.02");
  {
    auto mta = rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    setTransport(probe.get(), "udp");
    // Four idle timeouts of silence from the servant: keepalives hold the session open.
    BOOST_CHECK_NO_THROW(probe->sleepMillis(6000));
    BOOST_CHECK_NO_THROW(probe->nothing());
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_black_holed_server_fails_calls_clearly_at_the_idle_timeout) {
  if (!udpLoaded()) return;
  UdpPeer peer("seed=12");
  {
    auto mta = rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    setTransport(probe.get(), "udp");
    probe->nothing();
    peer.signal(SIGSTOP);  // nothing comes back any more: a black hole
    BOOST_REQUIRE(peer.waitStopped());
    auto start = std::chrono::steady_clock::now();
    BOOST_CHECK_EXCEPTION(probe->count(), Error, [](const Error& e) {
      BOOST_TEST_MESSAGE("black-holed: " << e.what());
      return e.code() == Errc::outcomeUnknown;
    });
    auto took = std::chrono::steady_clock::now() - start;
    BOOST_CHECK(took < std::chrono::seconds(10));
    peer.signal(SIGCONT);
    probe.reset();
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_call_in_flight_when_its_session_goes_silent_fails_outcome_unknown_and_runs_at_most_once) {
  if (!udpLoaded()) return;
  UdpPeer peer("seed=15");
  int64_t resentBefore = Runtime::stats().callsResent;
  {
    auto mta = rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    setTransport(probe.get(), "udp");
    BOOST_CHECK_EQUAL(probe->count(), 1u);
    // Calls reach the server again once a session to it opens (bounded).
    auto reachable = [&] {
      for (int i = 0; i < 400; ++i) {
        try {
          return probe->peek();
        } catch (const Error& e) {
          BOOST_TEST_MESSAGE("not yet: " << e.what());
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
      BOOST_FAIL("the server was not reachable again within 20 s");
      return uint64_t{0};
    };
    // The server stops answering for longer than the idle timeout while each call is in flight:
    // the session is declared dead (the peer went silent) and the call fails outcomeUnknown where
    // it is, never sent again on a new session. Idempotent or not, it ran at most once.
    uint64_t before = 1;
    for (bool idempotent : {true, false}) {
      BOOST_TEST_CONTEXT((idempotent ? "peek (idempotent)" : "count (not idempotent)")) {
        peer.signal(SIGSTOP);
        BOOST_REQUIRE(peer.waitStopped());
        std::optional<Errc> code;
        std::thread caller([&] {
          auto scope = rt().joinMta();
          try {
            idempotent ? probe->peek() : probe->count();
          } catch (const Error& e) {
            BOOST_TEST_MESSAGE("in flight: " << e.what());
            code = e.code();
          }
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
        peer.signal(SIGCONT);
        caller.join();
        // An idempotent call is tried again after outcomeUnknown, and that try fails at once.
        BOOST_CHECK(code == (idempotent ? Errc::unavailable : Errc::outcomeUnknown));
        uint64_t after = reachable();
        BOOST_CHECK(after == before || (!idempotent && after == before + 1));
        before = after;
      }
    }
    // The server runs the call, then goes silent before its response gets through: the call
    // fails outcomeUnknown, and it ran once.
    auto running = probe->countSlowlyAsync(1500);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    peer.signal(SIGSTOP);
    BOOST_REQUIRE(peer.waitStopped());
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // the client's session dies
    peer.signal(SIGCONT);
    BOOST_CHECK_EXCEPTION(running.get(), Error,
                          [](const Error& e) { return e.code() == Errc::outcomeUnknown; });
    BOOST_CHECK_EQUAL(reachable(), before + 1);
  }
  BOOST_CHECK_EQUAL(Runtime::stats().callsResent - resentBefore, 0);
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_server_restarted_mid_call_is_noticed_promptly) {
  if (!udpLoaded()) return;
  // A fixed port, so the restarted server answers where the old one was.
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  BOOST_REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  BOOST_REQUIRE(getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  std::string port = std::to_string(ntohs(addr.sin_port));
  close(s);

  std::optional<UdpPeer> peer;
  peer.emplace("seed=13", port);
  {
    auto mta = rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer->probe);
    setTransport(probe.get(), "udp");
    probe->nothing();
    auto running = probe->sleepMillisAsync(3000);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    peer->signal(SIGKILL);
    peer->wait();
    peer.reset();
    peer.emplace("seed=14", port);  // a new epoch on the same port
    auto start = std::chrono::steady_clock::now();
    BOOST_CHECK_EXCEPTION(running.get(), Error, [](const Error& e) {
      BOOST_TEST_MESSAGE("after the restart: " << e.what());
      return e.code() == Errc::outcomeUnknown;
    });
    BOOST_CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  }
  peer->finish();
}

BOOST_AUTO_TEST_SUITE_END()
