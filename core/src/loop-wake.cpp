#include "loop-wake.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace ferry::detail {

int threadEventFd() noexcept {
  struct Owned {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ~Owned() {
      if (fd >= 0) close(fd);
    }
  };
  thread_local Owned owned;
  return owned.fd;
}

void wakeEventFd(int fd) noexcept {
  uint64_t one = 1;
  (void)!write(fd, &one, sizeof one);
}

void drainEventFd(int fd) noexcept {
  uint64_t count;
  (void)!read(fd, &count, sizeof count);
}

int pollTwo(int own, int loopFd, std::chrono::milliseconds timeout) noexcept {
  pollfd fds[2] = {{own, POLLIN, 0}, {loopFd, POLLIN, 0}};
  int n = poll(fds, 2, static_cast<int>(std::clamp<int64_t>(timeout.count(), 0, 60'000)));
  if (n <= 0) return n < 0 && errno == EINTR ? 0 : n;
  if ((fds[0].revents & POLLIN) != 0) return 1;
  return (fds[1].revents & POLLIN) != 0 ? 2 : -1;
}

}  // namespace ferry::detail
