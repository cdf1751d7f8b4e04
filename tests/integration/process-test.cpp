// Calls between processes on this host: transport choice by distance (pipe), per-proxy override
// (tcp), callbacks both ways, resolution errors, a dying peer. The peer is ferry-test-peer.
//   process-test -- <path to ferry-test-peer>
#define BOOST_TEST_MODULE process
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include "objref.h"
#include "servants.h"

extern char** environ;

using namespace ferry;
using namespace ferry::test;
using testing::iface::Callback;
using testing::iface::Holder;
using testing::iface::Probe;

namespace {

std::string peerPath() {
  auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_REQUIRE_MESSAGE(suite.argc >= 2, "usage: process-test -- <ferry-test-peer>");
  return suite.argv[1];
}

ObjRefBytes fromHex(const std::string& hex) {
  ObjRefBytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// A ferry-test-peer child process. Every wait on it is bounded.
class Peer {
public:
  explicit Peer(std::vector<std::string> args = {}) {
    int in[2];
    int out[2];
    BOOST_REQUIRE(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    std::string path = peerPath();
    std::vector<char*> argv{path.data()};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&_pid, path.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    _stdin = in[1];
    _stdout = out[0];
    BOOST_REQUIRE_MESSAGE(rc == 0, "cannot start " << path);
    for (std::string line; readLine(line, std::chrono::seconds(20)) && line != "ready";) {
      std::istringstream words(line);
      std::string key, value;
      words >> key >> value;
      if (key == "holder") holder = fromHex(value);
      if (key == "probe") probe = fromHex(value);
    }
    BOOST_REQUIRE_MESSAGE(!holder.empty() && !probe.empty(), "the peer did not start");
  }

  ~Peer() {
    if (_pid > 0) {
      ::kill(_pid, SIGKILL);
      waitpid(_pid, nullptr, 0);
    }
    if (_stdin >= 0) close(_stdin);
    if (_stdout >= 0) close(_stdout);
  }

  pid_t pid() const { return _pid; }

  // Closes its input; it shuts down, reports what it had left, and exits.
  void finish() {
    close(_stdin);
    _stdin = -1;
    std::string line;
    while (readLine(line, std::chrono::seconds(20))) {
      if (line.rfind("stats ", 0) == 0) break;
    }
    BOOST_CHECK_MESSAGE(line == "stats 0 0 0", "the peer ended with: " << line);
    int status = 0;
    for (int i = 0; i < 2000 && waitpid(_pid, &status, WNOHANG) == 0; ++i) usleep(10000);
    BOOST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    _pid = -1;
  }

  void kill() {
    ::kill(_pid, SIGKILL);
    waitpid(_pid, nullptr, 0);
    _pid = -1;
  }

  ObjRefBytes holder;
  ObjRefBytes probe;

private:
  bool readLine(std::string& line, std::chrono::milliseconds limit) {
    line.clear();
    auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto newline = _buffer.find('\n');
      if (newline != std::string::npos) {
        line = _buffer.substr(0, newline);
        _buffer.erase(0, newline + 1);
        return true;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{_stdout, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char chunk[4096];
      ssize_t n = read(_stdout, chunk, sizeof chunk);
      if (n <= 0) return false;
      _buffer.append(chunk, static_cast<size_t>(n));
    }
  }

  pid_t _pid = -1;
  int _stdin = -1;
  int _stdout = -1;
  std::string _buffer;
};

bool startsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

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
    FERRY_CHECK_ERRC(setTransport(probe.get(), "udp"), Errc::unavailable);
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

BOOST_AUTO_TEST_SUITE_END()
