// handoff-floor: what the hand-off between a transport's I/O thread and the thread that waits for
// a message costs a tcp ping, measured with no ferry code at all. A 16-byte request and reply on
// loopback, with each side either reading its own socket ("direct", as omniORB's client and its
// thread-per-connection server do) or leaving the socket to an I/O thread that epoll-waits on
// it, reads the message and hands it over through an eventfd ("io"), as ferry's transport loop
// does. In "io-spin" the waiting thread also polls the I/O thread's epoll descriptor and yields
// until the message arrives, as RuntimeOptions::loopSpin does. Every pairing runs in one process
// pair, alternating, so the rows compare.
//   handoff-floor serve CPU PORT               (PORT: direct server; PORT+1: io-spin server)
//   handoff-floor client CPU PORT CALLS ROUNDS
// Loopback only (127.0.0.1). Prints one line per pairing and round: median and p90 in µs.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMessage = 16;

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

bool readAll(int fd, char* bytes, size_t size) {
  while (size > 0) {
    ssize_t n = read(fd, bytes, size);
    if (n <= 0) return false;
    bytes += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void writeAll(int fd, const char* bytes, size_t size) {
  if (write(fd, bytes, size) != static_cast<ssize_t>(size)) die("write");
}

void noDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

int listenOn(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address = loopback(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) die("bind");
  if (listen(fd, 8) != 0) die("listen");
  return fd;
}

int connectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) die("connect");
  noDelay(fd);
  return fd;
}

// One socket read by an I/O thread: it epoll-waits, reads a message and hands it to the thread
// in wait() through an eventfd, which it skips while that thread spins. Lives until the process
// exits (its I/O thread blocks in epoll_wait).
class IoHandoff {
public:
  explicit IoHandoff(int socket) : _socket(socket) {
    _epoll = epoll_create1(EPOLL_CLOEXEC);
    _event = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (_epoll < 0 || _event < 0) die("epoll/eventfd");
    epoll_event watch{};
    watch.events = EPOLLIN;
    if (epoll_ctl(_epoll, EPOLL_CTL_ADD, socket, &watch) != 0) die("epoll_ctl");
    std::thread([this] { ioLoop(); }).detach();
  }

  // Waits for the next message and copies it to `out`. `spin`: also poll the epoll descriptor
  // and, when it wakes, yield until the message is there (for at most 50 µs).
  void wait(bool spin, char* out) {
    for (;;) {
      if (_ready.exchange(false)) {
        std::memcpy(out, _message, kMessage);
        return;
      }
      pollfd fds[2] = {{_event, POLLIN, 0}, {_epoll, POLLIN, 0}};
      int n = poll(fds, spin ? 2 : 1, 1000);
      if (n <= 0) continue;
      if ((fds[0].revents & POLLIN) != 0) {
        drain();
        continue;
      }
      _spinning.store(true);
      auto until = Clock::now() + std::chrono::microseconds(50);
      while (!_ready.load() && Clock::now() < until) sched_yield();
      _spinning.store(false);
      drain();
    }
  }

private:
  void ioLoop() {
    for (;;) {
      epoll_event event;
      if (epoll_wait(_epoll, &event, 1, -1) <= 0) continue;
      if (!readAll(_socket, _message, kMessage)) return;
      _ready.store(true);
      if (!_spinning.load()) {
        uint64_t one = 1;
        (void)!write(_event, &one, sizeof one);
      }
    }
  }

  void drain() {
    uint64_t count;
    (void)!read(_event, &count, sizeof count);
  }

  int _socket;
  int _epoll = -1;
  int _event = -1;
  std::atomic<bool> _ready{false};
  std::atomic<bool> _spinning{false};
  char _message[kMessage] = {};
};

void serve(int port) {
  int direct = listenOn(port);
  int handedOff = listenOn(port + 1);
  std::thread([direct] {
    for (;;) {
      int fd = accept4(direct, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      noDelay(fd);
      std::thread([fd] {
        char bytes[kMessage];
        while (readAll(fd, bytes, kMessage)) writeAll(fd, bytes, kMessage);
        close(fd);
      }).detach();
    }
  }).detach();
  for (;;) {
    int fd = accept4(handedOff, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    noDelay(fd);
    std::thread([fd] {
      auto* io = new IoHandoff(fd);
      char bytes[kMessage];
      for (;;) {
        io->wait(true, bytes);
        writeAll(fd, bytes, kMessage);
      }
    }).detach();
  }
}

void client(int port, int calls, int rounds) {
  const char* clientModes[] = {"direct", "io", "io-spin"};
  for (int server = 0; server < 2; ++server) {
    int direct = connectTo(port + server);
    int ioSocket = connectTo(port + server);
    int ioSpinSocket = connectTo(port + server);
    auto* io = new IoHandoff(ioSocket);
    auto* ioSpin = new IoHandoff(ioSpinSocket);
    for (int round = 0; round < rounds; ++round) {
      for (int mode = 0; mode < 3; ++mode) {
        std::vector<double> times;
        times.reserve(static_cast<size_t>(calls));
        char bytes[kMessage] = "ping";
        for (int i = 0; i < calls; ++i) {
          auto start = Clock::now();
          if (mode == 0) {
            writeAll(direct, bytes, kMessage);
            if (!readAll(direct, bytes, kMessage)) die("read");
          } else if (mode == 1) {
            writeAll(ioSocket, bytes, kMessage);
            io->wait(false, bytes);
          } else {
            writeAll(ioSpinSocket, bytes, kMessage);
            ioSpin->wait(true, bytes);
          }
          times.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        }
        std::sort(times.begin(), times.end());
        std::printf("server %-7s client %-7s median %6.1f us  p90 %6.1f us\n",
                    server == 0 ? "direct" : "io-spin", clientModes[mode],
                    times[times.size() / 2], times[times.size() * 9 / 10]);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if ((mode != "serve" || argc != 4) && (mode != "client" || argc != 6)) {
    std::fprintf(stderr,
                 "usage: handoff-floor serve CPU PORT | handoff-floor client CPU PORT CALLS ROUNDS\n");
    return 2;
  }
  pin(std::atoi(argv[2]));
  setvbuf(stdout, nullptr, _IOLBF, 0);
  int port = std::atoi(argv[3]);
  if (mode == "serve") serve(port);
  int calls = std::max(100, std::atoi(argv[4]));
  client(port, calls, std::max(1, std::atoi(argv[5])));
  return 0;
}
