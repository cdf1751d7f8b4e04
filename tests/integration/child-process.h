// A child process for the integration tests: stdin and stdout on pipes, every wait bounded,
// killed if still running when the object goes.
#pragma once

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace ferry::test {

class Child {
public:
  // `withStderr`: its standard error goes to the same pipe as its standard output.
  explicit Child(std::vector<std::string> argv, bool withStderr = false) {
    int in[2];
    int out[2];
    BOOST_REQUIRE(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    if (withStderr) posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
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
      ::kill(_pid, SIGKILL);
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

  pid_t pid() const { return _pid; }

  // Writes `line` and a newline to its standard input; false if it no longer reads it.
  bool writeLine(const std::string& line) {
    std::string out = line + "\n";
    return _stdin >= 0 && ::write(_stdin, out.data(), out.size()) == static_cast<ssize_t>(out.size());
  }

  // Sends a signal (the child keeps running until it reacts).
  void signal(int sig) {
    if (_pid > 0) ::kill(_pid, sig);
  }

  // After signal(SIGSTOP): waits until the kernel has stopped it (signals are asynchronous).
  bool waitStopped(std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(_pid, &status, WNOHANG | WUNTRACED) == _pid && WIFSTOPPED(status)) return true;
      usleep(1000);
    }
    return false;
  }

  void closeInput() {
    if (_stdin >= 0) close(_stdin);
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

// The test program's argument `index` after `--` (the paths meson passes); `usage` says what they
// are when one is missing.
inline std::string testArgument(int index, const char* usage) {
  auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_REQUIRE_MESSAGE(suite.argc > index, usage);
  return suite.argv[index];
}

// What a starting ferry-test-peer announces before its "ready" line: one "key value" line each
// (for example "probe" and an OBJREF's text), by key. Empty when it never got ready.
inline std::map<std::string, std::string> readAnnouncements(Child& peer) {
  std::map<std::string, std::string> out;
  std::string line;
  while (peer.readLine(line, std::chrono::seconds(20)) && line != "ready") {
    std::istringstream words(line);
    std::string key, value;
    words >> key >> value;
    out[key] = value;
  }
  return out;
}

// Ends a ferry-test-peer: closes its input, and checks that it shut down with nothing left
// ("stats 0 0 0") and exited 0.
inline void finishPeer(Child& peer) {
  peer.closeInput();
  std::string line;
  std::string stats;
  while (peer.readLine(line, std::chrono::seconds(20))) {
    if (line.rfind("stats ", 0) == 0) stats = line;
  }
  BOOST_CHECK_EQUAL(stats, "stats 0 0 0");
  BOOST_CHECK_EQUAL(peer.wait(std::chrono::seconds(20)), 0);
}

// Runs a shell command, returning its exit status and what it printed (stdout and stderr).
inline std::pair<int, std::string> capture(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A copy of `program`, the libraries it loads from outside the system directories, and the
// plugins on FERRY_PLUGIN_PATH, in a scratch directory every user can read: a program run as
// another user (uid 65534) may not reach the build tree (a checkout under /root). Removed on
// destruction. Run the copy with libraryPath as LD_LIBRARY_PATH and pluginPath as
// FERRY_PLUGIN_PATH.
class PortableCopy {
public:
  explicit PortableCopy(const std::string& original) {
    namespace fs = std::filesystem;
    char dir[] = "/tmp/ferry-portable-XXXXXX";
    BOOST_REQUIRE(mkdtemp(dir) != nullptr);
    root = dir;
    chmod(root.c_str(), 0755);
    for (const char* sub : {"bin", "lib", "plugins"}) fs::create_directory(root / sub);
    program = (root / "bin" / fs::path(original).filename()).string();
    fs::copy_file(original, program);
    libraryPath = (root / "lib").string();
    pluginPath = (root / "plugins").string();
    auto [status, libraries] = capture("ldd " + original);
    BOOST_REQUIRE_EQUAL(status, 0);
    std::istringstream lines(libraries);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string soname, arrow, path;
      words >> soname >> arrow >> path;
      if (arrow != "=>" || path.rfind("/lib", 0) == 0 || path.rfind("/usr/", 0) == 0) continue;
      fs::copy_file(path, root / "lib" / soname);
    }
    const char* plugins = std::getenv("FERRY_PLUGIN_PATH");
    BOOST_REQUIRE_MESSAGE(plugins != nullptr, "FERRY_PLUGIN_PATH names the build's plugins");
    std::istringstream dirs(plugins);
    for (std::string d; std::getline(dirs, d, ':');) {
      for (const auto& entry : fs::directory_iterator(d)) {
        if (entry.path().extension() == ".so") {
          fs::copy_file(entry.path(), root / "plugins" / entry.path().filename(),
                        fs::copy_options::overwrite_existing);
        }
      }
    }
  }
  PortableCopy(const PortableCopy&) = delete;
  ~PortableCopy() {
    std::error_code ignored;
    std::filesystem::remove_all(root, ignored);
  }

  // `env` arguments that run the copy: env LD_LIBRARY_PATH=… FERRY_PLUGIN_PATH=… <program>.
  std::vector<std::string> command() const {
    return {"env", "LD_LIBRARY_PATH=" + libraryPath, "FERRY_PLUGIN_PATH=" + pluginPath, program};
  }

  std::filesystem::path root;
  std::string program;
  std::string libraryPath;
  std::string pluginPath;
};

}  // namespace ferry::test
