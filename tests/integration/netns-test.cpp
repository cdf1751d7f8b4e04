// Cross-host calls: two network namespaces joined by a veth pair (192.0.2.1 and 192.0.2.2/24), a
// server in one, a client in the other, references passed both ways.
//   netns-test -- <ferry-test-peer> <ferry-netns-client>
// It needs root to create namespaces: without it, it says so and exits 77 (meson: skipped). It
// removes every namespace and link it made, also when a check fails.
#define BOOST_TEST_MODULE netns
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

std::string arg(int index) {
  auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_REQUIRE_MESSAGE(suite.argc > index, "usage: netns-test -- <peer> <client>");
  return suite.argv[index];
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

// A child process with its stdin and stdout on pipes; killed if still running at destruction.
class Child {
public:
  explicit Child(std::vector<std::string> argv) {
    int in[2];
    int out[2];
    BOOST_REQUIRE(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    int rc = posix_spawnp(&_pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    _stdin = in[1];
    _stdout = out[0];
    BOOST_REQUIRE_MESSAGE(rc == 0, "cannot start " << argv[0]);
  }

  ~Child() {
    if (_stdin >= 0) close(_stdin);
    if (_pid > 0) {
      kill(_pid, SIGKILL);
      waitpid(_pid, nullptr, 0);
    }
    if (_stdout >= 0) close(_stdout);
  }

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

  void closeInput() {
    close(_stdin);
    _stdin = -1;
  }

  // The exit status, waiting at most `limit`; -1 if it did not exit.
  int wait(std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(_pid, &status, WNOHANG) == _pid) {
        _pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      usleep(10000);
    }
    return -1;
  }

private:
  pid_t _pid = -1;
  int _stdin = -1;
  int _stdout = -1;
  std::string _buffer;
};

}  // namespace

BOOST_AUTO_TEST_CASE(calls_cross_hosts_with_references_passed_both_ways) {
  if (geteuid() != 0) {
    std::printf("SKIP: creating network namespaces needs root (CI runs as root)\n");
    std::exit(77);
  }
  TwoHosts hosts;
  // The server host listens on its veth address only, over the network transports.
  Child server({"ip", "netns", "exec", hosts.a, arg(1), "--listen", "192.0.2.1", "--transports",
                "tcp,udp"});
  std::string holder;
  std::string line;
  while (server.readLine(line, std::chrono::seconds(20)) && line != "ready") {
    if (line.rfind("holder ", 0) == 0) holder = line.substr(7);
  }
  BOOST_REQUIRE_MESSAGE(!holder.empty(), "the server host did not start");

  Child client({"ip", "netns", "exec", hosts.b, arg(2), holder, "192.0.2.2"});
  int checks = 0;
  while (client.readLine(line, std::chrono::seconds(30))) {
    BOOST_TEST_MESSAGE("client: " << line);
    BOOST_CHECK_MESSAGE(line.rfind("ok ", 0) == 0, line);
    ++checks;
  }
  BOOST_CHECK_EQUAL(client.wait(std::chrono::seconds(30)), 0);
  BOOST_CHECK_EQUAL(checks, 5);

  server.closeInput();
  std::string stats;
  while (server.readLine(line, std::chrono::seconds(20))) {
    if (line.rfind("stats ", 0) == 0) stats = line;
  }
  BOOST_CHECK_EQUAL(stats, "stats 0 0 0");
  BOOST_CHECK_EQUAL(server.wait(std::chrono::seconds(20)), 0);
}
