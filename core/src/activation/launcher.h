// ferryd's server processes: launches a class file's executable (directly, never through a
// shell; as the file's user), keeps the last lines of its standard error, reaps it, and stops the
// ones still running when ferryd stops. One thread (the network thread).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "class-file.h"

namespace ferry::detail::activation {

class Launcher {
public:
  Launcher() = default;
  Launcher(const Launcher&) = delete;
  Launcher& operator=(const Launcher&) = delete;
  // Stops every server still running: SIGTERM, then SIGKILL after 2 s.
  ~Launcher();

  // Starts `file`'s server with `environment` (KEY=VALUE; the class file's own entries are
  // added after, and win) and returns its pid. Its standard input is /dev/null, its standard
  // output ferryd's, its standard error a pipe this reads. Throws serverStartFailed when it
  // cannot be started (fork fails, the user cannot be switched to, the executable cannot be run),
  // saying why.
  pid_t launch(const ClassFile& file, const std::vector<std::string>& environment);

  // A server that exited, reaped.
  struct Exit {
    pid_t pid = 0;
    int status = 0;          // as waitpid gives it
    std::string description;  // "exited with status 3", "was killed by signal 9 (Killed)"
    std::string stderrTail;   // its last lines of standard error ("" when it wrote none)
  };
  // Reads what the servers wrote to standard error and reaps the ones that exited.
  std::vector<Exit> poll();
  void kill(pid_t pid) noexcept;
  size_t running() const noexcept { return _children.size(); }

private:
  struct Child {
    int stderrFd = -1;
    std::string tail;  // the last 4 KiB of standard error
  };
  static void drain(Child& child) noexcept;

  std::map<pid_t, Child> _children;
};

}  // namespace ferry::detail::activation
