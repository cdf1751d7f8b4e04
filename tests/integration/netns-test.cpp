// Cross-host calls: two network namespaces joined by a veth pair (192.0.2.1 and 192.0.2.2/24), a
// server in one, a client in the other, references passed both ways.
//   netns-test -- <ferry-test-peer> <ferry-netns-client> <ferryd> <ferry-test-class-server>
//                 <ferry-activation-client> [<ferry-test-dgc-client>]
// The server host runs ferryd on its well-known port and the peer registers with it; the client
// host runs the client twice: once resolving at the exporter's own bindings, once through the
// server host's ferryd. Then activation: the client host activates a class whose server the
// server host's ferryd launches from its class directory.
// The cases labelled dgc (meson's netns-dgc, given ferry-test-dgc-client as a sixth argument)
// take the client's host off the network by setting its veth end down: the server host collects
// its objects, and its calls fail at once; or the link returns before collection and nothing is
// lost.
// It needs root in an environment that can make network namespaces (not a chroot or an
// unprivileged container): without, it says why and exits 77 (meson: skipped). It removes every
// namespace and link it made, also when a check fails.
#define BOOST_TEST_MODULE netns
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>

#include "child-process.h"

using ferry::test::capture;
using ferry::test::Child;

namespace {

std::string arg(int index) {
  return ferry::test::testArgument(
      index, "usage: netns-test -- <peer> <client> <ferryd> <class-server> <activation-client> "
             "[<dgc-client>]");
}

// Whether this environment can make network namespaces (a chroot or an unprivileged container
// cannot: `ip netns add` fails there), and if not, why.
std::string whyNoNetworkNamespaces() {
  if (geteuid() != 0) return "creating network namespaces needs root";
  // Adding one is not enough: entering it (ip -n, ip netns exec) also remounts / as a slave,
  // which a chroot refuses.
  std::string name = "ferry-probe-" + std::to_string(getpid());
  auto [status, output] = capture("ip netns add " + name);
  if (status != 0) return "this environment cannot make network namespaces (ip netns add: " + output + ")";
  std::tie(status, output) = capture("ip -n " + name + " link set lo up");
  capture("ip netns del " + name);
  if (status != 0) return "this environment cannot enter network namespaces (ip -n: " + output + ")";
  return "";
}

int run(const std::string& command) {
  BOOST_TEST_MESSAGE("$ " << command);
  return std::system(command.c_str());
}

// Two namespaces and a veth pair between them; removed on destruction.
class TwoHosts {
public:
  TwoHosts()
      : a("ferry-a-" + std::to_string(getpid())),
        b("ferry-b-" + std::to_string(getpid())),
        vethA("fva" + std::to_string(getpid() % 100000)),
        vethB("fvb" + std::to_string(getpid() % 100000)) {
    _created = true;
    const std::vector<std::string> setup = {
        "ip netns add " + a,
        "ip netns add " + b,
        "ip link add " + vethA + " type veth peer name " + vethB,
        "ip link set " + vethA + " netns " + a,
        "ip link set " + vethB + " netns " + b,
        "ip -n " + a + " addr add 192.0.2.1/24 dev " + vethA,
        "ip -n " + b + " addr add 192.0.2.2/24 dev " + vethB,
        "ip -n " + a + " link set " + vethA + " up",
        "ip -n " + b + " link set " + vethB + " up",
        "ip -n " + a + " link set lo up",
        "ip -n " + b + " link set lo up",
    };
    for (const auto& command : setup) BOOST_REQUIRE_EQUAL(run(command), 0);
  }

  ~TwoHosts() {
    if (!_created) return;
    // Deleting a namespace deletes the veth end inside it, and with it the pair.
    run("ip netns del " + a + " 2>/dev/null");
    run("ip netns del " + b + " 2>/dev/null");
    run("ip link del " + vethA + " 2>/dev/null");
  }

  const std::string a, b, vethA, vethB;

private:
  bool _created = false;
};

// One line to a ferry-test-dgc-client and its answer.
std::string ask(Child& child, const std::string& command) {
  BOOST_REQUIRE(child.writeLine(command));
  std::string line;
  BOOST_REQUIRE_MESSAGE(child.readLine(line, std::chrono::seconds(60)),
                        "no answer to " << command);
  return line;
}

// The server host exports a Factory (ferry-test-dgc-client --serve); the client host holds five
// of its tokens over udp. Both ping every `period`; the client's udp sessions die after
// `idleTimeout` of silence.
struct HeldAcrossHosts {
  HeldAcrossHosts(const TwoHosts& hosts, std::chrono::milliseconds period,
                  std::chrono::milliseconds idleTimeout)
      : server({"ip", "netns", "exec", hosts.a, arg(6), "--serve", "--listen", "192.0.2.1",
                "--ping-period", std::to_string(period.count())}) {
    std::string line;
    BOOST_REQUIRE(server.readLine(line, std::chrono::seconds(20)));
    BOOST_REQUIRE_EQUAL(line.rfind("factory ", 0), 0u);
    std::string factory = line.substr(8);
    BOOST_REQUIRE(server.readLine(line, std::chrono::seconds(20)));
    BOOST_REQUIRE_EQUAL(line, "ready");
    client.emplace(std::vector<std::string>{
        "ip", "netns", "exec", hosts.b, arg(6), "--factory", factory, "--transport", "udp",
        "--apartment", "mta", "--listen", "192.0.2.2", "--ping-period",
        std::to_string(period.count()), "--udp-settings",
        "idle_timeout_ms=" + std::to_string(idleTimeout.count())});
    BOOST_REQUIRE(client->readLine(line, std::chrono::seconds(20)));
    BOOST_REQUIRE_EQUAL(line, "ready");
    BOOST_REQUIRE_EQUAL(ask(*client, "make 5"), "held 5");
    BOOST_REQUIRE_EQUAL(ask(server, "alive"), "alive 5");
    // Its pings flow.
    std::this_thread::sleep_for(2 * period);
    BOOST_REQUIRE_EQUAL(ask(*client, "call"), "ok");
  }

  ~HeldAcrossHosts() {
    client->closeInput();
    BOOST_CHECK_EQUAL(client->wait(std::chrono::seconds(30)), 0);
    server.closeInput();
    BOOST_CHECK_EQUAL(server.wait(std::chrono::seconds(30)), 0);
  }

  // Polls the server's count of live tokens until it is `expected` or `limit` passed.
  bool aliveBecomes(int expected, std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    std::string want = "alive " + std::to_string(expected);
    while (ask(server, "alive") != want) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  Child server;
  std::optional<Child> client;
};

// The client host's veth end goes "down" (the host leaves the network) or "up" again.
void setClientLink(const TwoHosts& hosts, const std::string& state) {
  BOOST_REQUIRE_EQUAL(run("ip -n " + hosts.b + " link set " + hosts.vethB + " " + state), 0);
}

// Without network namespaces: says why and exits 77 (meson: skipped).
void skipWithoutNamespaces() {
  if (std::string why = whyNoNetworkNamespaces(); !why.empty()) {
    std::printf("SKIP: %s\n", why.c_str());
    std::exit(77);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_client_host_that_drops_off_is_collected_and_its_calls_fail_at_once,
                     *boost::unit_test::label("dgc")) {
  skipWithoutNamespaces();
  TwoHosts hosts;
  constexpr std::chrono::milliseconds kPeriod{200};
  HeldAcrossHosts held(hosts, kPeriod, std::chrono::milliseconds(1500));
  setClientLink(hosts, "down");
  auto cut = std::chrono::steady_clock::now();
  // Three periods and one of slack, plus room for a loaded machine: the wait is bounded and its
  // length reported, not asserted.
  BOOST_CHECK(held.aliveBecomes(0, 4 * kPeriod + std::chrono::seconds(10)));
  BOOST_TEST_MESSAGE("the server collected the client's 5 tokens "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - cut).count()
                     << " ms after the link went down (bound: " << (4 * kPeriod).count() << " ms)");
  // On the client: the call in flight when its session went silent fails outcomeUnknown (or, if
  // the session died before it was sent, unavailable); the next fails at once, naming the binding.
  std::string first = ask(*held.client, "call");
  BOOST_TEST_MESSAGE("client, first call: " << first);
  BOOST_CHECK(first.rfind("error outcomeUnknown ", 0) == 0 ||
              first.rfind("error unavailable ", 0) == 0);
  BOOST_CHECK(first.find("192.0.2.1") != std::string::npos);
  std::string next = ask(*held.client, "call");
  BOOST_TEST_MESSAGE("client, next call: " << next);
  BOOST_CHECK_EQUAL(next.rfind("error unavailable ", 0), 0u);
  BOOST_CHECK(next.find("192.0.2.1") != std::string::npos);
  BOOST_CHECK(next.find("went silent") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_client_host_whose_link_returns_before_collection_loses_nothing,
                     *boost::unit_test::label("dgc")) {
  skipWithoutNamespaces();
  TwoHosts hosts;
  // Collection after 3 s of silence, a dead session after 4 s; the link is down for 1 s.
  constexpr std::chrono::milliseconds kPeriod{1000};
  HeldAcrossHosts held(hosts, kPeriod, std::chrono::milliseconds(4000));
  setClientLink(hosts, "down");
  std::this_thread::sleep_for(kPeriod);
  setClientLink(hosts, "up");
  BOOST_CHECK_EQUAL(ask(*held.client, "call"), "ok");
  BOOST_CHECK_EQUAL(ask(held.server, "alive"), "alive 5");
  // Pings resumed: past three more periods the server still has every token.
  std::this_thread::sleep_for(4 * kPeriod);
  BOOST_CHECK_EQUAL(ask(held.server, "alive"), "alive 5");
  BOOST_CHECK_EQUAL(ask(*held.client, "call"), "ok");
}

BOOST_AUTO_TEST_CASE(calls_cross_hosts_with_references_passed_both_ways) {
  if (std::string why = whyNoNetworkNamespaces(); !why.empty()) {
    // CI, as root on a full machine, counts a skip as a failure (FERRY_REQUIRE_ROOT_TESTS).
    std::printf("SKIP: %s\n", why.c_str());
    std::exit(77);
  }
  TwoHosts hosts;
  char pipeDir[] = "/tmp/ferry-netns-XXXXXX";
  BOOST_REQUIRE(mkdtemp(pipeDir) != nullptr);
  struct RemoveDir {
    const char* path;
    ~RemoveDir() { rmdir(path); }
  } removeDir{pipeDir};
  // ferryd on the server host's well-known port. The test's hosts talk in the clear (no security
  // provider), which a listener beyond loopback must ask for.
  Child ferryd({"ip", "netns", "exec", hosts.a, arg(3), "--pipe-directory", pipeDir, "--listen",
                "192.0.2.1", "--transports", "pipe,tcp,udp", "--insecure-network"});
  std::string line;
  BOOST_REQUIRE(ferryd.readLine(line, std::chrono::seconds(20)));
  BOOST_TEST_MESSAGE("ferryd: " << line);
  // The server host listens on its veth address only, over the network transports, and registers
  // with ferryd.
  std::string resolver = std::string("FERRY_RESOLVER=pipe:") + pipeDir + "[ferryd]";
  Child server({"ip", "netns", "exec", hosts.a, "env", resolver, arg(1), "--listen", "192.0.2.1",
                "--transports", "tcp,udp,pipe", "--insecure-network", "yes"});
  std::string holder;
  while (server.readLine(line, std::chrono::seconds(20)) && line != "ready") {
    if (line.rfind("holder ", 0) == 0) holder = line.substr(7);
  }
  BOOST_REQUIRE_MESSAGE(!holder.empty(), "the server host did not start");

  for (std::string via : {"", "tcp:192.0.2.1[7135]"}) {
    BOOST_TEST_CONTEXT("resolving " << (via.empty() ? "at the exporter" : "through ferryd")) {
      std::vector<std::string> argv{"ip", "netns", "exec", hosts.b, arg(2), holder, "192.0.2.2"};
      if (!via.empty()) argv.push_back(via);
      Child client(argv);
      int checks = 0;
      while (client.readLine(line, std::chrono::seconds(30))) {
        BOOST_TEST_MESSAGE("client: " << line);
        BOOST_CHECK_MESSAGE(line.rfind("ok ", 0) == 0, line);
        ++checks;
      }
      BOOST_CHECK_EQUAL(client.wait(std::chrono::seconds(30)), 0);
      BOOST_CHECK_EQUAL(checks, 5);
    }
  }

  ferry::test::finishPeer(server);
  ferryd.signal(SIGTERM);
  BOOST_CHECK_EQUAL(ferryd.wait(std::chrono::seconds(20)), 0);
}

BOOST_AUTO_TEST_CASE(a_client_host_activates_a_class_on_the_server_host_and_a_killed_server_is_relaunched) {
  if (std::string why = whyNoNetworkNamespaces(); !why.empty()) {
    std::printf("SKIP: %s\n", why.c_str());
    std::exit(77);
  }
  TwoHosts hosts;
  char scratch[] = "/tmp/ferry-netns-activation-XXXXXX";
  BOOST_REQUIRE(mkdtemp(scratch) != nullptr);
  struct RemoveAll {
    std::string path;
    ~RemoveAll() { std::filesystem::remove_all(path); }
  } removeAll{scratch};
  std::string root = scratch;
  std::filesystem::create_directory(root + "/run");
  std::filesystem::create_directory(root + "/classes");
  std::ofstream(root + "/classes/test.Remote.class")
      << "executable = " << arg(4) << "\nargument = --class\nargument = test.Remote\n"
      << "argument = --listen\nargument = 192.0.2.1\nargument = --pids\nargument = " << root
      << "/pids\n";
  auto startFerryd = [&](bool insecureActivation) {
    std::vector<std::string> argv{"ip", "netns", "exec", hosts.a, arg(3), "--pipe-directory",
                                  root + "/run", "--listen", "192.0.2.1", "--transports",
                                  "pipe,tcp,udp", "--insecure-network", "--class-directory",
                                  root + "/classes"};
    if (insecureActivation) argv.push_back("--insecure-activation");
    auto ferryd = std::make_unique<Child>(argv);
    std::string line;
    BOOST_REQUIRE(ferryd->readLine(line, std::chrono::seconds(20)));
    return ferryd;
  };
  auto stopFerryd = [](std::unique_ptr<Child>& ferryd) {
    ferryd->signal(SIGTERM);
    BOOST_CHECK_EQUAL(ferryd->wait(std::chrono::seconds(20)), 0);
  };
  // The client host's output: "pid N" and "ok", or "error CODE: message".
  auto activate = [&] {
    Child client({"ip", "netns", "exec", hosts.b, arg(5), "192.0.2.1", "test.Remote", "192.0.2.2"});
    std::vector<std::string> lines;
    std::string line;
    while (client.readLine(line, std::chrono::seconds(60))) {
      BOOST_TEST_MESSAGE("client: " << line);
      lines.push_back(line);
    }
    BOOST_CHECK_EQUAL(client.wait(std::chrono::seconds(30)), 0);
    return lines;
  };
  auto pidOf = [](const std::vector<std::string>& lines) {
    BOOST_REQUIRE_EQUAL(lines.size(), 2u);
    BOOST_REQUIRE_EQUAL(lines[0].rfind("pid ", 0), 0u);
    BOOST_CHECK_EQUAL(lines[1], "ok");
    return static_cast<pid_t>(std::stoi(lines[0].substr(4)));
  };

  // The hosts talk without a security provider: ferryd refuses activation from the network
  // below integrity unless told otherwise.
  {
    auto ferryd = startFerryd(false);
    std::vector<std::string> lines = activate();
    BOOST_REQUIRE_EQUAL(lines.size(), 1u);
    BOOST_CHECK_EQUAL(lines[0].rfind("error accessDenied: ", 0), 0u);
    BOOST_CHECK(lines[0].find("insecure_activation") != std::string::npos);
    stopFerryd(ferryd);
  }
  auto ferryd = startFerryd(true);
  pid_t first = pidOf(activate());
  // A pid ferryd started, as its server reported it: killed, the next activation relaunches.
  BOOST_REQUIRE(::kill(first, SIGKILL) == 0);
  for (int i = 0; i < 2000 && ::kill(first, 0) == 0; ++i) usleep(10000);
  pid_t second = pidOf(activate());
  BOOST_CHECK_NE(second, first);
  std::ifstream pids(root + "/pids");
  std::vector<pid_t> launched;
  for (pid_t pid; pids >> pid;) launched.push_back(pid);
  BOOST_CHECK((launched == std::vector<pid_t>{first, second}));
  stopFerryd(ferryd);
}
