// ferry-bench: call latency and throughput across apartments, against a floor measured in the
// same run.
//
//   ferry-bench [--calls N] [--warmup N] [--rows pattern]
//
// Rows (in-process, issue "foundation"):
//   floor/futex         a bare cross-thread hand-off round trip (two futex words), measured
//                       again before each row,
//                       the cost any thread-hopping call must pay at least;
//   STA->STA, STA->MTA, MTA->STA: a null call and a 1 KiB echo through a proxy;
//   MTA->MTA            in one process both sides are the same apartment, so COM's rule gives
//                       the caller the object itself: this row is a direct virtual call.
// Each row prints median and p99 latency, calls/s, and the ratio of its median to the floor's.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

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

int main(int argc, char** argv) {
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

  ferry::Runtime runtime;
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
  return 0;
}
