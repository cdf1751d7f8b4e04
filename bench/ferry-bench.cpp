// ferry-bench: call latency and throughput across apartments, against a floor measured in the
// same run.
//
//   ferry-bench [--calls N] [--warmup N] [--rows pattern]
// The cross-process rows need the transport plugins: run it through `meson devenv -C build`, or
// with FERRY_PLUGIN_PATH set, or installed.
//
// Rows (in-process, issue "foundation"):
//   floor/futex         a bare cross-thread hand-off round trip (two futex words), measured
//                       again before each row,
//                       the cost any thread-hopping call must pay at least;
//   STA->STA, STA->MTA, MTA->STA: a null call and a 1 KiB echo through a proxy;
//   MTA->MTA            in one process both sides are the same apartment, so COM's rule gives
//                       the caller the object itself: this row is a direct virtual call.
// Rows (between processes, issue "out of process"): a server process (ferry-bench --serve)
// exports a Bench object from its MTA; for each transport (pipe, tcp):
//   floor/<transport>   a raw socket ping-pong (1-byte messages) over the same kind of socket;
//   null, echo 1KiB, echo 64KiB: one call at a time;
//   32 in flight        batches of 32 asynchronous null calls: calls/s, and the batch latency.
// Each row prints median and p99 latency, calls/s, and the ratio of its median to the floor's.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ferry/ferry.h>

#include "bench.ferry.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int calls = 20000;
  int warmup = 2000;
  std::string rows;  // substring filter on row names; empty = all
};

struct Summary {
  double medianUs = 0;
  double p99Us = 0;
  double callsPerSecond = 0;
};

Summary measure(const Options& options, const std::function<void()>& call) {
  for (int i = 0; i < options.warmup; ++i) call();
  std::vector<double> samples(static_cast<size_t>(options.calls));
  auto start = Clock::now();
  for (auto& sample : samples) {
    auto t0 = Clock::now();
    call();
    sample = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }
  double total = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(samples.begin(), samples.end());
  Summary s;
  s.medianUs = samples[samples.size() / 2];
  s.p99Us = samples[std::min(samples.size() - 1, samples.size() * 99 / 100)];
  s.callsPerSecond = static_cast<double>(options.calls) / total;
  return s;
}

// The floor: a round trip to another thread through two futex words, each side sleeping in the
// kernel until the other wakes it (raw FUTEX_WAIT/FUTEX_WAKE: no user-space spinning, which would
// make the floor a measure of two busy cores instead of a hand-off).
void futexWait(std::atomic<uint32_t>& word, uint32_t seen) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, nullptr,
          nullptr, 0);
}

void futexWake(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr,
          0);
}

Summary measureFloor(const Options& options) {
  std::atomic<uint32_t> request{0};
  std::atomic<uint32_t> reply{0};
  constexpr uint32_t kStop = UINT32_MAX;
  std::thread server([&] {
    uint32_t served = 0;
    for (;;) {
      uint32_t next = request.load(std::memory_order_acquire);
      if (next == served) {
        futexWait(request, served);
        continue;
      }
      if (next == kStop) return;
      served = next;
      reply.store(served, std::memory_order_release);
      futexWake(reply);
    }
  });
  uint32_t sent = 0;
  Summary s = measure(options, [&] {
    uint32_t mine = ++sent;
    request.store(mine, std::memory_order_release);
    futexWake(request);
    for (uint32_t seen = reply.load(std::memory_order_acquire); seen != mine;
         seen = reply.load(std::memory_order_acquire)) {
      futexWait(reply, seen);
    }
  });
  request.store(kStop, std::memory_order_release);
  futexWake(request);
  server.join();
  return s;
}

class BenchImpl final : public ferry::Implements<bench::iface::Bench> {
public:
  void null() override {}
  std::vector<uint8_t> echo(std::span<const uint8_t> data) override {
    return std::vector<uint8_t>(data.begin(), data.end());
  }
};

// The floor of a socket transport: a thread echoes 1-byte messages on a connected socket pair of
// that kind (Unix stream, or TCP over loopback with TCP_NODELAY), blocking reads and writes.
Summary measureSocketFloor(const Options& options, bool tcp) {
  int client = -1;
  int server = -1;
  if (tcp) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listener, 1) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("tcp floor: cannot listen on loopback");
    }
    client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("tcp floor: cannot connect");
    }
    server = accept(listener, nullptr, nullptr);
    close(listener);
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  } else {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) throw std::runtime_error("socketpair failed");
    client = pair[0];
    server = pair[1];
  }
  std::thread echo([server] {
    char byte;
    while (read(server, &byte, 1) == 1) {
      if (write(server, &byte, 1) != 1) break;
    }
  });
  Summary s = measure(options, [client] {
    char byte = 'x';
    if (write(client, &byte, 1) != 1 || read(client, &byte, 1) != 1) {
      throw std::runtime_error("socket floor: I/O failed");
    }
  });
  shutdown(client, SHUT_RDWR);
  close(client);
  echo.join();
  close(server);
  return s;
}

void printHeader() {
  std::printf("%-28s %12s %12s %14s %10s\n", "row", "median(us)", "p99(us)", "calls/s",
              "x floor");
}

void printRow(const std::string& name, const Summary& s, double floorMedian) {
  std::printf("%-28s %12.2f %12.2f %14.0f %10.2f\n", name.c_str(), s.medianUs, s.p99Us,
              s.callsPerSecond, s.medianUs / floorMedian);
  std::fflush(stdout);
}

bool selected(const Options& options, const std::string& row) {
  return options.rows.empty() || row.find(options.rows) != std::string::npos;
}

}  // namespace

// `--serve`: the server process of the cross-process rows. Exports a Bench object from its MTA,
// prints its OBJREF, runs until its standard input closes.
int serve() {
  ferry::Runtime runtime;
  ferry::ObjRefBytes packet = runtime.mta().invoke([] {
    return ferry::marshalInterface(ferry::Ref<bench::iface::Bench>(ferry::make<BenchImpl>()),
                                   ferry::MarshalContext::local, ferry::MarshalFlags::tableStrong);
  });
  std::printf("%s\n", ferry::objRefToText(packet).c_str());
  std::fflush(stdout);
  char buffer[64];
  while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
  }
  return 0;
}

extern "C" char** environ;

// The cross-process rows: starts `self --serve`, measures pipe and tcp against their floors.
void crossProcess(const Options& options, const char* self) {
  int toChild[2];
  int fromChild[2];
  if (pipe(toChild) != 0 || pipe(fromChild) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, toChild[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fromChild[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, toChild[1]);
  posix_spawn_file_actions_addclose(&actions, fromChild[0]);
  std::string path = self;
  char serveFlag[] = "--serve";
  char* argv[] = {path.data(), serveFlag, nullptr};
  pid_t child = 0;
  int rc = posix_spawn(&child, path.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(toChild[0]);
  close(fromChild[1]);
  if (rc != 0) throw std::runtime_error("cannot start the server process");
  std::string line;
  pollfd p{fromChild[0], POLLIN, 0};
  for (char c; poll(&p, 1, 20000) > 0 && read(fromChild[0], &c, 1) == 1 && c != '\n';) line += c;
  close(fromChild[0]);

  {
    ferry::Runtime runtime;
    auto mta = runtime.joinMta();
    auto proxy = ferry::unmarshalInterface<bench::iface::Bench>(ferry::objRefFromText(line));
    std::vector<uint8_t> kib(1024, 0x5a);
    std::vector<uint8_t> kib64(64 * 1024, 0xa5);
    for (const char* transport : {"pipe", "tcp"}) {
      std::string name = transport;
      if (!selected(options, name)) continue;
      ferry::setTransport(proxy.get(), transport);
      Summary floor = measureSocketFloor(options, name == "tcp");
      printRow("floor/" + name + " raw socket", floor, floor.medianUs);
      printRow(name + " null", measure(options, [&] { proxy->null(); }), floor.medianUs);
      printRow(name + " echo 1KiB", measure(options, [&] { proxy->echo(kib); }), floor.medianUs);
      Options fewer = options;
      fewer.calls = std::max(200, options.calls / 10);
      fewer.warmup = std::max(20, options.warmup / 10);
      printRow(name + " echo 64KiB", measure(fewer, [&] { proxy->echo(kib64); }), floor.medianUs);
      // 32 in flight: the batch's latency; calls/s counts calls, not batches.
      Summary batch = measure(fewer, [&] {
        std::vector<ferry::Future<void>> inFlight;
        inFlight.reserve(32);
        for (int i = 0; i < 32; ++i) inFlight.push_back(proxy->nullAsync());
        for (auto& f : inFlight) f.get();
      });
      batch.callsPerSecond *= 32;
      printRow(name + " 32 in flight (batch)", batch, floor.medianUs);
    }
  }
  close(toChild[1]);
  int status = 0;
  for (int i = 0; i < 1000 && waitpid(child, &status, WNOHANG) == 0; ++i) usleep(10000);
  if (!WIFEXITED(status)) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
  }
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--serve") return serve();
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--calls") {
      options.calls = std::max(100, std::stoi(next()));
    } else if (arg == "--warmup") {
      options.warmup = std::max(0, std::stoi(next()));
    } else if (arg == "--rows") {
      options.rows = next();
    } else {
      std::fprintf(stderr, "usage: ferry-bench [--calls N] [--warmup N] [--rows pattern]\n");
      return 2;
    }
  }

  std::printf("ferry-bench: %d calls per row after %d warm-up calls\n", options.calls,
              options.warmup);
  printHeader();
  Summary floor = measureFloor(options);
  printRow("floor/futex round trip", floor, floor.medianUs);
  std::printf("(each row's ratio is to the floor measured right before it)\n");

  {
  // In-process rows: only the in-process channel is in play.
  ferry::RuntimeOptions inprocOnly;
  inprocOnly.outOfProcess = false;
  ferry::Runtime runtime(inprocOnly);
  ferry::Sta serverSta = runtime.newSta("bench-server");
  ferry::Sta clientSta = runtime.newSta("bench-client");
  std::vector<uint8_t> kib(1024, 0x5a);

  // The object under test lives in `server`; `client` runs the measuring loop.
  auto run = [&](const std::string& name, const ferry::Apartment& server,
                 const ferry::Apartment& client) {
    if (!selected(options, name)) return;
    ferry::ObjRefBytes packet = server.invoke([] {
      return ferry::marshalInterface(ferry::Ref<bench::iface::Bench>(ferry::make<BenchImpl>()));
    });
    // The floor again right before the row, so a change in the machine's load between rows
    // does not skew the ratio.
    Summary rowFloor = measureFloor(options);
    printRow("  floor before " + name, rowFloor, rowFloor.medianUs);
    client.invoke([&] {
      auto proxy = ferry::unmarshalInterface<bench::iface::Bench>(packet);
      printRow(name + " null", measure(options, [&] { proxy->null(); }), rowFloor.medianUs);
      printRow(name + " echo 1KiB", measure(options, [&] { proxy->echo(kib); }), rowFloor.medianUs);
    });
  };
  run("STA->STA", serverSta, clientSta);
  run("STA->MTA", runtime.mta(), clientSta);
  run("MTA->STA", serverSta, runtime.mta());
  run("MTA->MTA (direct)", runtime.mta(), runtime.mta());
  }

  try {
    crossProcess(options, "/proc/self/exe");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cross-process rows failed: %s\n", e.what());
    return 1;
  }
  return 0;
}
