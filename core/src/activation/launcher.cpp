#include "launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <ferry/error.h>

#include "../error-impl.h"
#include "../log.h"

namespace ferry::detail::activation {

namespace {

constexpr size_t kStderrTail = 4096;

// What the child reports through the exec pipe when it cannot exec: the step and its errno.
struct ChildFailure {
  int step = 0;  // 1 groups, 2 gid, 3 uid, 4 exec, 5 the standard streams
  int error = 0;
};

const char* stepName(int step) noexcept {
  switch (step) {
    case 1: return "set its supplementary groups";
    case 2: return "switch to the user's group";
    case 3: return "switch to the user";
    case 4: return "execute it";
    default: return "set up its standard streams";
  }
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "ended (wait status " + std::to_string(status) + ")";
}

}  // namespace

Launcher::~Launcher() {
  for (auto& [pid, child] : _children) ::kill(pid, SIGTERM);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!_children.empty() && std::chrono::steady_clock::now() < until) {
    poll();
    if (!_children.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& [pid, child] : _children) {
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    if (child.stderrFd >= 0) close(child.stderrFd);
  }
}

pid_t Launcher::launch(const ClassFile& file, const std::vector<std::string>& environment) {
  // Everything the child needs is made here: between fork and exec it only makes system calls.
  std::vector<std::string> env = environment;
  for (const std::string& entry : file.environment) {
    std::string key = entry.substr(0, entry.find('=') + 1);
    std::erase_if(env, [&](const std::string& e) { return e.compare(0, key.size(), key) == 0; });
    env.push_back(entry);
  }
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string executable = file.executable;
  std::vector<std::string> args{executable};
  args.insert(args.end(), file.arguments.begin(), file.arguments.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<gid_t> groups(64);
  int groupCount = 0;
  bool switchUser = file.user.has_value() && geteuid() == 0;
  if (switchUser) {
    int n = static_cast<int>(groups.size());
    if (getgrouplist(file.user->c_str(), file.gid, groups.data(), &n) < 0) {
      groups.resize(static_cast<size_t>(n));
      getgrouplist(file.user->c_str(), file.gid, groups.data(), &n);
    }
    groupCount = n;
  }

  int report[2];
  int errPipe[2];
  FERRY_REQUIRE(pipe2(report, O_CLOEXEC) == 0 && pipe2(errPipe, O_CLOEXEC) == 0,
                Errc::serverStartFailed, "cannot start the server of class '{}': pipe: {}",
                file.clsid, std::strerror(errno));
  int devNull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    ChildFailure failure;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    if (devNull < 0 || dup2(devNull, STDIN_FILENO) < 0 || dup2(errPipe[1], STDERR_FILENO) < 0 ||
        chdir("/") != 0) {
      failure = {5, errno};
    } else if (switchUser && setgroups(static_cast<size_t>(groupCount), groups.data()) != 0) {
      failure = {1, errno};
    } else if (switchUser && setgid(file.gid) != 0) {
      failure = {2, errno};
    } else if (switchUser && setuid(file.uid) != 0) {
      failure = {3, errno};
    } else {
      execve(executable.c_str(), argv.data(), envp.data());
      failure = {4, errno};
    }
    [[maybe_unused]] ssize_t n = write(report[1], &failure, sizeof failure);
    _exit(127);
  }
  int forkError = errno;
  close(report[1]);
  close(errPipe[1]);
  if (devNull >= 0) close(devNull);
  if (pid < 0) {
    close(report[0]);
    close(errPipe[0]);
    FERRY_FAIL(Errc::serverStartFailed, "cannot start the server of class '{}': fork: {}",
               file.clsid, std::strerror(forkError));
  }
  // Closed at exec (end of file), or the child's failure.
  ChildFailure failure;
  ssize_t got;
  do {
    got = read(report[0], &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  close(report[0]);
  if (got == static_cast<ssize_t>(sizeof failure)) {
    waitpid(pid, nullptr, 0);
    close(errPipe[0]);
    FERRY_FAIL(Errc::serverStartFailed,
               "ferryd cannot start the server of class '{}' ({}, from {}): it could not {}: {}",
               file.clsid, executable, file.path, stepName(failure.step),
               std::strerror(failure.error));
  }
  fcntl(errPipe[0], F_SETFL, fcntl(errPipe[0], F_GETFL) | O_NONBLOCK);
  _children[pid] = Child{errPipe[0], {}};
  return pid;
}

void Launcher::drain(Child& child) noexcept {
  if (child.stderrFd < 0) return;
  char buffer[4096];
  for (;;) {
    ssize_t n = read(child.stderrFd, buffer, sizeof buffer);
    if (n > 0) {
      child.tail.append(buffer, static_cast<size_t>(n));
      if (child.tail.size() > kStderrTail) child.tail.erase(0, child.tail.size() - kStderrTail);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {  // every writer closed it
      close(child.stderrFd);
      child.stderrFd = -1;
    }
    return;
  }
}

std::vector<Launcher::Exit> Launcher::poll() {
  std::vector<Exit> out;
  for (auto it = _children.begin(); it != _children.end();) {
    drain(it->second);
    int status = 0;
    pid_t done = waitpid(it->first, &status, WNOHANG);
    if (done != it->first) {
      ++it;
      continue;
    }
    drain(it->second);
    if (it->second.stderrFd >= 0) close(it->second.stderrFd);
    // The last 10 lines.
    std::string tail = it->second.tail;
    while (!tail.empty() && tail.back() == '\n') tail.pop_back();
    size_t from = tail.size();
    for (int lines = 0; lines < 10 && from != std::string::npos && from > 0; ++lines) {
      from = tail.rfind('\n', from - 1);
    }
    if (from != std::string::npos && from < tail.size() && tail[from] == '\n') ++from;
    if (from == std::string::npos) from = 0;
    out.push_back({it->first, status, describeStatus(status), tail.substr(from)});
    it = _children.erase(it);
  }
  return out;
}

void Launcher::kill(pid_t pid) noexcept {
  if (_children.count(pid) != 0) ::kill(pid, SIGKILL);
}

}  // namespace ferry::detail::activation
