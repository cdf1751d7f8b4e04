// ferry-bench: call latency and throughput across apartments, against a floor measured in the
// same run.
//
//   ferry-bench [--calls N] [--warmup N] [--rows pattern] [--loop-spin MICROSECONDS]
//   ferry-bench --help | --version
// --loop-spin sets RuntimeOptions::loopSpin in both processes (0: threads do not wake with the
// transport loop; README, "Waking with the transport loop").
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
// Rows (between processes): a server process (ferry-bench --serve) exports a Bench object from
// its MTA; for each transport (pipe, tcp, and udp when its plugin is loaded):
//   floor/<transport>   a raw socket ping-pong (1-byte messages) over the same kind of socket;
//   null, echo 1KiB, echo 64KiB: one call at a time;
//   32 in flight        batches of 32 asynchronous null calls: calls/s, and the batch latency;
//   16 MiB request      tcp and udp: the best of five, and udp's throughput as a share of tcp's;
//   udp 16 MiB, 5% loss a second server whose udp fault layer drops 5% of datagrams both ways.
//   dgc                 distributed GC: a holder process (ferry-bench --hold) keeps 10,000 objects
//                       of this one over the pipe with a 500 ms ping period: its ping traffic
//                       (bytes/s, once the set is acknowledged), and the time from its kill -9
//                       to the release of every object here (the bound: three periods, and one).
//   ferry-bench --hold  reads the Pile's OBJREF text from FERRY_BENCH_PILE.
// Rows (security, issue 12; `--rows security`): a server process with the psk provider at least
// level none; for each transport, the null call and the 1 KiB echo at none, then through a proxy
// blanket (ferry::setProxyBlanket) at integrity and at privacy, each with its ratio to none's
// median (target: 1 KiB at most 10% slower); 16 MiB requests at none and at privacy over tcp and
// udp (the best of five; target: privacy at least 80% of none's throughput); and handshakes per
// second of each provider (psk, tls: a client and a server context in this thread through the
// plugin's C ABI, from the first token to both ends' exported secrets, without a transport).
// Each row prints median and p99 latency, calls/s, and the ratio of its median to the floor's.
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
#include <charconv>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ferry/ferry.h>

#include <dlfcn.h>

#include <openssl/rand.h>

#include <ferry/plugin/plugin.h>
#include <ferry/plugin/security.h>

#include "bench-servant.h"
#include "bench.ferry.h"
#include "futex.h"
#include "pki.h"
#include "provider-harness.h"
#include "tool.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int calls = 20000;
  int warmup = 2000;
  std::string rows;  // substring filter on row names; empty = all
  // RuntimeOptions::loopSpin of both processes (negative: the default).
  int loopSpinUs = -1;
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
// kernel until the other wakes it (futex.h).
using bench::futexWait;
using bench::futexWake;

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

using bench::BenchImpl;

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

// The floor of the udp transport: a thread echoes 1-byte datagrams on a connected pair of UDP
// sockets over loopback, blocking calls.
Summary measureUdpFloor(const Options& options) {
  int a = socket(AF_INET, SOCK_DGRAM, 0);
  int b = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sockaddr_in aAddr = addr;
  sockaddr_in bAddr = addr;
  socklen_t len = sizeof addr;
  if (bind(a, reinterpret_cast<sockaddr*>(&aAddr), sizeof aAddr) != 0 ||
      bind(b, reinterpret_cast<sockaddr*>(&bAddr), sizeof bAddr) != 0 ||
      getsockname(a, reinterpret_cast<sockaddr*>(&aAddr), &len) != 0 ||
      getsockname(b, reinterpret_cast<sockaddr*>(&bAddr), &len) != 0 ||
      connect(a, reinterpret_cast<sockaddr*>(&bAddr), sizeof bAddr) != 0 ||
      connect(b, reinterpret_cast<sockaddr*>(&aAddr), sizeof aAddr) != 0) {
    throw std::runtime_error("udp floor: cannot set up loopback sockets");
  }
  std::thread echo([b] {
    char byte;
    while (recv(b, &byte, 1, 0) == 1 && byte != 'q') {
      if (send(b, &byte, 1, 0) != 1) break;
    }
  });
  Summary s = measure(options, [a] {
    char byte = 'x';
    if (send(a, &byte, 1, 0) != 1 || recv(a, &byte, 1, 0) != 1) {
      throw std::runtime_error("udp floor: I/O failed");
    }
  });
  char quit = 'q';
  send(a, &quit, 1, 0);
  echo.join();
  close(a);
  close(b);
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

// Starts `self --serve` with `extraEnv` added to its environment; returns its pid, the pipe to its
// input (close it to stop the server) and the OBJREF it printed.
struct Server {
  pid_t pid = -1;
  int input = -1;
  ferry::ObjRefBytes objref;  // --serve: what it printed
  std::string line;           // the first line it printed
};

// Starts this program as `role` (--serve: the server, whose first line is its OBJREF; --hold: the
// holder of the dgc row).
Server startServer(const char* self, const std::vector<std::string>& extraEnv,
                   const char* role = "--serve");
void stopServer(Server& server);

// `--serve`: the server process of the cross-process rows. Exports a Bench object from its MTA,
// prints its OBJREF, runs until its standard input closes.
// The server process's options: --loop-spin reaches it through its environment.
// FERRY_BENCH_PSK (the security rows): the psk provider with these settings, at least level none.
ferry::RuntimeOptions serverOptions() {
  ferry::RuntimeOptions options;
  if (const char* spin = std::getenv("FERRY_BENCH_LOOP_SPIN")) {
    options.loopSpin = std::chrono::microseconds(std::atoi(spin));
  }
  if (const char* psk = std::getenv("FERRY_BENCH_PSK")) {
    options.security = {{"psk", psk}};
    options.minimumLevel = ferry::SecurityLevel::none;
  }
  return options;
}

int serve() {
  ferry::Runtime runtime(serverOptions());
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

constexpr std::chrono::milliseconds kBenchPingPeriod{500};
constexpr uint32_t kHeldObjects = 10000;

// The holder of the dgc row: takes 10,000 objects from the Pile, lets its ping set settle, prints
// "<pings> <bytes> <seconds>" of its steady ping traffic, and holds them until killed (or its
// input closes).
int hold() {
  const char* pile = std::getenv("FERRY_BENCH_PILE");
  if (pile == nullptr) {
    std::fprintf(stderr, "ferry-bench --hold: FERRY_BENCH_PILE names no Pile OBJREF\n");
    return 2;
  }
  ferry::RuntimeOptions options = serverOptions();
  options.pingPeriod = kBenchPingPeriod;
  ferry::Runtime runtime(options);
  auto mta = runtime.joinMta();
  auto items = ferry::unmarshalInterface<bench::iface::Pile>(ferry::objRefFromText(pile))
                   ->make(kHeldObjects);
  std::this_thread::sleep_for(3 * kBenchPingPeriod);
  ferry::RuntimeStats before = ferry::Runtime::stats();
  auto start = Clock::now();
  std::this_thread::sleep_for(10 * kBenchPingPeriod);
  ferry::RuntimeStats after = ferry::Runtime::stats();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%lld %lld %.3f\n", static_cast<long long>(after.pingsSent - before.pingsSent),
              static_cast<long long>(after.pingBytesSent - before.pingBytesSent), seconds);
  std::fflush(stdout);
  char buffer[64];
  while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
  }
  return 0;
}

class PileImpl final : public ferry::Implements<bench::iface::Pile> {
public:
  std::vector<ferry::Ref<bench::iface::Bench>> make(uint32_t count) override {
    std::vector<ferry::Ref<bench::iface::Bench>> out;
    for (uint32_t i = 0; i < count; ++i) out.emplace_back(ferry::make<BenchImpl>());
    return out;
  }
};

// The dgc row: a holder process's ping traffic for 10,000 objects, and their collection after
// its kill.
void collectionRow(const char* self) {
  ferry::RuntimeOptions options = serverOptions();
  options.pingPeriod = kBenchPingPeriod;
  ferry::Runtime runtime(options);
  ferry::ObjRefBytes packet = runtime.mta().invoke([] {
    return ferry::marshalInterface(ferry::Ref<bench::iface::Pile>(ferry::make<PileImpl>()),
                                   ferry::MarshalContext::local, ferry::MarshalFlags::tableStrong);
  });
  Server holder =
      startServer(self, {"FERRY_BENCH_PILE=" + ferry::objRefToText(packet)}, "--hold");
  long long pings = 0;
  long long bytes = 0;
  double seconds = 0;
  if (std::sscanf(holder.line.c_str(), "%lld %lld %lf", &pings, &bytes, &seconds) != 3 ||
      seconds <= 0) {
    stopServer(holder);
    throw std::runtime_error("the dgc holder printed '" + holder.line + "', not its ping counts");
  }
  std::printf("%-28s %9.0f B/s  %.1f pings/s of %lld bytes (period %lld ms)\n",
              "dgc 10k objects, pings", static_cast<double>(bytes) / seconds,
              static_cast<double>(pings) / seconds, pings > 0 ? bytes / pings : 0LL,
              static_cast<long long>(kBenchPingPeriod.count()));
  // What lives once the holder is gone: this process's servants less the ones it holds (the Pile,
  // and the MTA's RemUnknown made for the holder's first request, stay).
  int64_t servantsLeft = ferry::Runtime::stats().servants - kHeldObjects;
  kill(holder.pid, SIGKILL);
  waitpid(holder.pid, nullptr, 0);
  close(holder.input);
  auto killed = Clock::now();
  auto bound = 4 * kBenchPingPeriod;
  while (ferry::Runtime::stats().servants > servantsLeft && Clock::now() - killed < 20 * bound) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  double collectedMs = std::chrono::duration<double, std::milli>(Clock::now() - killed).count();
  bool all = ferry::Runtime::stats().servants <= servantsLeft;
  std::printf("%-28s %9.1f ms  %s (bound: %lld ms)\n", "dgc 10k objects, kill->freed",
              collectedMs, all ? "all released" : "NOT all released",
              static_cast<long long>(bound.count()));
  std::fflush(stdout);
  runtime.mta().invoke([&] { ferry::releaseMarshalData(packet); });
}

extern "C" char** environ;

Server startServer(const char* self, const std::vector<std::string>& extraEnv, const char* role) {
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
  std::string roleFlag = role;
  char* argv[] = {path.data(), roleFlag.data(), nullptr};
  std::vector<std::string> envStrings;
  // `extraEnv` ("NAME=value") replaces what this process has of the same names.
  auto named = [&](const std::string& inherited) {
    for (const auto& e : extraEnv) {
      if (inherited.compare(0, e.find('=') + 1, e, 0, e.find('=') + 1) == 0) return true;
    }
    return false;
  };
  for (char** e = environ; *e != nullptr; ++e) {
    if (!named(*e)) envStrings.emplace_back(*e);
  }
  for (const auto& e : extraEnv) envStrings.push_back(e);
  std::vector<char*> env;
  for (auto& e : envStrings) env.push_back(e.data());
  env.push_back(nullptr);
  Server server;
  int rc = posix_spawn(&server.pid, path.c_str(), &actions, nullptr, argv, env.data());
  posix_spawn_file_actions_destroy(&actions);
  close(toChild[0]);
  close(fromChild[1]);
  if (rc != 0) throw std::runtime_error("cannot start the server process");
  server.input = toChild[1];
  std::string line;
  pollfd p{fromChild[0], POLLIN, 0};
  for (char c; poll(&p, 1, 20000) > 0 && read(fromChild[0], &c, 1) == 1 && c != '\n';) line += c;
  close(fromChild[0]);
  if (line.empty()) {
    kill(server.pid, SIGKILL);
    waitpid(server.pid, nullptr, 0);
    throw std::runtime_error(
        "the server process printed no OBJREF within 20 s (its stderr says why); it needs the "
        "transport plugins: run ferry-bench through `meson devenv -C build`, or set "
        "FERRY_PLUGIN_PATH");
  }
  server.line = line;
  if (roleFlag == "--serve") server.objref = ferry::objRefFromText(line);
  return server;
}

void stopServer(Server& server) {
  close(server.input);
  int status = 0;
  for (int i = 0; i < 1000 && waitpid(server.pid, &status, WNOHANG) == 0; ++i) usleep(10000);
  if (!WIFEXITED(status)) {
    kill(server.pid, SIGKILL);
    waitpid(server.pid, nullptr, 0);
  }
}

// Seconds to send `data` once through `proxy` (the server answers with its size).
double timeSink(const ferry::Ref<bench::iface::Bench>& proxy, const std::vector<uint8_t>& data) {
  auto start = Clock::now();
  uint64_t got = proxy->sink(data);
  if (got != data.size()) throw std::runtime_error("sink answered the wrong size");
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The cross-process rows: a server process; pipe, tcp and (when loaded) udp against their floors;
// 16 MiB request throughput; and 16 MiB through a lossy udp (a second server with the fault layer).
void crossProcess(const Options& options, const char* self) {
  std::vector<std::string> serverEnv;
  if (options.loopSpinUs >= 0) serverEnv.push_back("FERRY_BENCH_LOOP_SPIN=" + std::to_string(options.loopSpinUs));
  Server server = startServer(self, serverEnv);
  {
    ferry::RuntimeOptions runtimeOptions;
    if (options.loopSpinUs >= 0) runtimeOptions.loopSpin = std::chrono::microseconds(options.loopSpinUs);
    ferry::Runtime runtime(runtimeOptions);
    auto mta = runtime.joinMta();
    auto proxy = ferry::unmarshalInterface<bench::iface::Bench>(server.objref);
    std::vector<uint8_t> kib(1024, 0x5a);
    std::vector<uint8_t> kib64(64 * 1024, 0xa5);
    std::vector<uint8_t> mib16(16 * 1024 * 1024 - 4096, 0x3c);
    std::vector<std::string> transports{"pipe", "tcp"};
    bool haveUdp = false;
    for (const auto& p : ferry::Runtime::plugins()) haveUdp = haveUdp || p.name == "udp";
    if (haveUdp) transports.push_back("udp");
    std::map<std::string, double> sinkSeconds;
    for (const std::string& name : transports) {
      if (!selected(options, name)) continue;
      ferry::setTransport(proxy.get(), name);
      Summary floor = name == "udp" ? measureUdpFloor(options) : measureSocketFloor(options, name == "tcp");
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
      if (name != "pipe") {
        timeSink(proxy, mib16);  // warm-up: windows open, buffers sized
        double best = 1e9;
        for (int i = 0; i < 5; ++i) best = std::min(best, timeSink(proxy, mib16));
        sinkSeconds[name] = best;
        std::printf("%-28s %9.1f ms  %8.1f MiB/s\n", (name + " 16 MiB request").c_str(), best * 1e3,
                    16.0 / best);
        std::fflush(stdout);
      }
    }
    if (sinkSeconds.count("udp") && sinkSeconds.count("tcp")) {
      std::printf("udp 16 MiB throughput is %.0f%% of tcp's (target: at least 70%%)\n",
                  100.0 * sinkSeconds["tcp"] / sinkSeconds["udp"]);
    }
    // The udp plugin's test-only build, with the fault layer, in the build tree.
    const std::string faultPlugin = FERRY_UDP_FAULT_PLUGIN_DIR "/ferry-transport-udp.so";
    if (haveUdp && selected(options, "udp") && access(faultPlugin.c_str(), R_OK) != 0) {
      std::printf("%-28s skipped: the udp plugin's test-only build (with the fault layer) is not "
                  "at %s\n",
                  "udp 16 MiB, 5% loss", faultPlugin.c_str());
    } else if (haveUdp && selected(options, "udp")) {
      // 16 MiB through 5% loss both ways (the server's fault layer drops its datagrams in and out).
      std::vector<std::string> lossyEnv = serverEnv;
      const char* pluginPath = std::getenv("FERRY_PLUGIN_PATH");
      lossyEnv.push_back("FERRY_PLUGIN_PATH=" FERRY_UDP_FAULT_PLUGIN_DIR +
                         (pluginPath != nullptr ? std::string(":") + pluginPath : std::string()));
      lossyEnv.push_back("FERRY_UDP_FAULT=seed=11,dir=both,drop=0.05");
      Server lossy = startServer(self, lossyEnv);
      auto lossyProxy = ferry::unmarshalInterface<bench::iface::Bench>(lossy.objref);
      ferry::setTransport(lossyProxy.get(), "udp");
      double seconds = timeSink(lossyProxy, mib16);
      std::printf("%-28s %9.1f ms  (%.1fx the loss-free time)\n", "udp 16 MiB, 5% loss",
                  seconds * 1e3, sinkSeconds.count("udp") ? seconds / sinkSeconds["udp"] : 0.0);
      lossyProxy.reset();
      stopServer(lossy);
    }
  }
  stopServer(server);
}

// The table of the security provider `name` as the plugin loader found it (Runtime::plugins()).
const ferry_security_v1& securityProvider(const std::string& name) {
  for (const ferry::PluginInfo& plugin : ferry::Runtime::plugins()) {
    if (plugin.kind != "security" || plugin.name != name) continue;
    void* module = dlopen(plugin.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    auto entry = module == nullptr ? nullptr
                                   : reinterpret_cast<ferry_plugin_entry_v1_fn>(
                                         dlsym(module, FERRY_PLUGIN_ENTRY_V1_SYMBOL));
    if (entry != nullptr) return *static_cast<const ferry_security_v1*>(entry(nullptr)->table);
  }
  throw std::runtime_error("the " + name + " security provider is not installed");
}

// Handshakes per second of `provider` with these settings at each end: fresh contexts, the whole
// exchange, and the secret exported at both ends, as a link's bind exchange does.
void handshakeRow(const std::string& name, const std::string& clientSettings,
                  const std::string& serverSettings) {
  const ferry_security_v1& provider = securityProvider(name);
  ferry::test::Acquired client = ferry::test::acquire(provider, clientSettings, FERRY_SECURITY_ROLE_CLIENT);
  ferry::test::Acquired server = ferry::test::acquire(provider, serverSettings, FERRY_SECURITY_ROLE_SERVER);
  if (client.status != 0 || server.status != 0) {
    throw std::runtime_error(name + " credentials refused: " + client.why + server.why);
  }
  auto once = [&] {
    std::string why;
    auto c = client.credentials->client("", why);
    auto s = server.credentials->server(why);
    if (!c || !s) throw std::runtime_error(name + ": no context: " + why);
    ferry::test::Exchange x = ferry::test::runExchange(*c, *s);
    ferry::test::Bytes a, b;
    if (!x.established() || c->exportSecret("ferry/1 record", {1}, a) != 0 ||
        s->exportSecret("ferry/1 record", {1}, b) != 0 || a != b) {
      throw std::runtime_error(name + " handshake failed: " + x.clientWhy + x.serverWhy);
    }
  };
  for (int i = 0; i < 20; ++i) once();
  constexpr int kHandshakes = 300;
  auto start = Clock::now();
  for (int i = 0; i < kHandshakes; ++i) once();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%-28s %9.0f handshakes/s  (%.0f us each)\n", ("handshake " + name).c_str(),
              kHandshakes / seconds, seconds / kHandshakes * 1e6);
  std::fflush(stdout);
}

// The security rows (see the top of this file).
void securityRows(const Options& options, const char* self) {
  ferry::test::TempDir dir;
  unsigned char key[32];
  if (RAND_bytes(key, sizeof key) != 1) throw std::runtime_error("no random bytes for the psk key");
  std::string hex;
  for (unsigned char b : key) hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
  std::string psk = "keys=" + dir.write("keys", "bench " + hex + "\n");

  std::vector<std::string> serverEnv{"FERRY_BENCH_PSK=" + psk};
  if (options.loopSpinUs >= 0) serverEnv.push_back("FERRY_BENCH_LOOP_SPIN=" + std::to_string(options.loopSpinUs));
  Server server = startServer(self, serverEnv);
  {
    ferry::RuntimeOptions runtimeOptions;
    if (options.loopSpinUs >= 0) runtimeOptions.loopSpin = std::chrono::microseconds(options.loopSpinUs);
    runtimeOptions.security = {{"psk", psk}};
    runtimeOptions.minimumLevel = ferry::SecurityLevel::none;
    ferry::Runtime runtime(runtimeOptions);
    auto mta = runtime.joinMta();
    auto proxy = ferry::unmarshalInterface<bench::iface::Bench>(server.objref);
    std::vector<uint8_t> kib(1024, 0x5a);
    std::vector<uint8_t> mib16(16 * 1024 * 1024 - 4096, 0x3c);
    std::vector<std::string> transports{"pipe", "tcp"};
    for (const auto& p : ferry::Runtime::plugins()) {
      if (p.name == "udp") transports.push_back("udp");
    }
    const ferry::SecurityLevel levels[] = {ferry::SecurityLevel::none,
                                           ferry::SecurityLevel::integrity,
                                           ferry::SecurityLevel::privacy};
    for (const std::string& transport : transports) {
      ferry::setTransport(proxy.get(), transport);
      Summary none[2];
      for (ferry::SecurityLevel level : levels) {
        ferry::setProxyBlanket(proxy.get(), level);
        std::string suffix = " " + std::string(ferry::toString(level));
        Summary null = measure(options, [&] { proxy->null(); });
        Summary echo = measure(options, [&] { proxy->echo(kib); });
        if (level == ferry::SecurityLevel::none) none[0] = null, none[1] = echo;
        printRow(transport + " null" + suffix, null, none[0].medianUs);
        printRow(transport + " echo 1KiB" + suffix, echo, none[1].medianUs);
      }
      if (transport == "pipe") continue;
      double seconds[2] = {1e9, 1e9};
      for (int i = 0; i < 2; ++i) {
        ferry::setProxyBlanket(proxy.get(), i == 0 ? ferry::SecurityLevel::none : ferry::SecurityLevel::privacy);
        timeSink(proxy, mib16);
        for (int run = 0; run < 5; ++run) seconds[i] = std::min(seconds[i], timeSink(proxy, mib16));
      }
      std::printf("%-28s %9.1f MiB/s none, %.1f MiB/s privacy: %.0f%% (target: at least 80%%)\n",
                  (transport + " 16 MiB request").c_str(), 16.0 / seconds[0], 16.0 / seconds[1],
                  100.0 * seconds[0] / seconds[1]);
      std::fflush(stdout);
    }
    ferry::setProxyBlanket(proxy.get(), ferry::SecurityLevel::none);
  }
  stopServer(server);

  handshakeRow("psk", psk, psk);
  ferry::test::TestCa ca("ferry-bench CA");
  ferry::test::Identity serverId = ca.issue({"bench server", "DNS:server.bench"});
  ferry::test::Identity clientId = ca.issue({"bench client", "DNS:client.bench"});
  std::string common = "ca=" + dir.write("ca.pem", ca.certPem()) + ",principals=" +
                       dir.write("principals", "dns:server.bench server\ndns:client.bench client\n");
  handshakeRow("tls",
               common + ",cert=" + dir.write("client.pem", clientId.certPem) + ",key=" +
                   dir.write("client.key", clientId.keyPem),
               common + ",cert=" + dir.write("server.pem", serverId.certPem) + ",key=" +
                   dir.write("server.key", serverId.keyPem));
}

// All rows, as Options select them. Returns the exit status.
int runBench(const Options& options) {
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
    // The binary's own path (readlink, not "/proc/self/exe" itself, so that the server process
    // is this program also under valgrind --tool=callgrind, which counts instructions per call).
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
    self[n] = 0;
    crossProcess(options, self);
    if (selected(options, "dgc")) collectionRow(self);
    if (selected(options, "security")) securityRows(options, self);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferry-bench: the cross-process rows failed: %s\n", e.what());
    return 1;
  }
  return 0;
}

namespace {

constexpr char kUsage[] =
    "usage: ferry-bench [--calls N] [--warmup N] [--rows PATTERN] [--loop-spin MICROSECONDS]\n"
    "       ferry-bench --help | --version\n";

// A whole number in [0, INT_MAX] from an option's value, or why not (kj::MainBuilder puts the
// option and its value before the reason).
kj::MainBuilder::Validity parseCount(kj::StringPtr text, const char* what, int& out) {
  int value = 0;
  auto [end, error] = std::from_chars(text.begin(), text.end(), value);
  if (text.size() == 0 || error != std::errc() || end != text.end() || value < 0) {
    return kj::str("not a whole number; give ", what, ", such as 100");
  }
  out = value;
  return true;
}

// The command line, parsed by kj::MainBuilder.
class BenchMain {
public:
  explicit BenchMain(ferry::tools::ToolContext& context) : _context(context) {}

  kj::MainFunc getMain() {
    return kj::MainBuilder(
               _context, ferry::tools::kVersion,
               "Measures call latency and throughput across apartments and processes, against a "
               "floor measured in the same run.",
               "The cross-process rows need the transport plugins: run it through `meson devenv "
               "-C build`, with FERRY_PLUGIN_PATH set, or installed.")
        .addOptionWithArg({"calls"}, KJ_BIND_METHOD(*this, setCalls), "<N>",
                          "Measure <N> calls per row (at least 100; default 20000).")
        .addOptionWithArg({"warmup"}, KJ_BIND_METHOD(*this, setWarmup), "<N>",
                          "Make <N> warm-up calls before each row (default 2000).")
        .addOptionWithArg({"rows"}, KJ_BIND_METHOD(*this, setRows), "<PATTERN>",
                          "Run only the rows whose name contains <PATTERN> (e.g. STA, p, udp).")
        .addOptionWithArg({"loop-spin"}, KJ_BIND_METHOD(*this, setLoopSpin), "<MICROSECONDS>",
                          "Set RuntimeOptions::loopSpin in both processes; 0: threads do not "
                          "wake with the transport loop (README, \"Waking with the transport "
                          "loop\").")
        .addOption({"serve"}, KJ_BIND_METHOD(*this, setServe),
                   "Run as the server process of the cross-process rows (ferry-bench starts "
                   "it itself).")
        .addOption({"hold"}, KJ_BIND_METHOD(*this, setHold),
                   "Run as the holder process of the dgc row (ferry-bench starts it itself).")
        .callAfterParsing(KJ_BIND_METHOD(*this, run))
        .build();
  }

private:
  kj::MainBuilder::Validity setCalls(kj::StringPtr text) {
    kj::MainBuilder::Validity valid = parseCount(text, "the calls per row", _options.calls);
    _options.calls = std::max(100, _options.calls);
    return valid;
  }
  kj::MainBuilder::Validity setWarmup(kj::StringPtr text) {
    return parseCount(text, "the warm-up calls per row", _options.warmup);
  }
  kj::MainBuilder::Validity setRows(kj::StringPtr text) {
    _options.rows = std::string(text.cStr(), text.size());
    return true;
  }
  kj::MainBuilder::Validity setLoopSpin(kj::StringPtr text) {
    return parseCount(text, "the spin in microseconds", _options.loopSpinUs);
  }
  bool setServe() {
    _serve = true;
    return true;
  }
  bool setHold() {
    _hold = true;
    return true;
  }
  kj::MainBuilder::Validity run() {
    _context.exitWith(_serve ? serve() : _hold ? hold() : runBench(_options));
  }

  ferry::tools::ToolContext& _context;
  Options _options;
  bool _serve = false;
  bool _hold = false;
};

}  // namespace

int main(int argc, char** argv) {
  ferry::tools::ToolContext context("ferry-bench", kUsage);
  BenchMain bench(context);
  return ferry::tools::runTool(context, bench.getMain(), argc, argv);
}
