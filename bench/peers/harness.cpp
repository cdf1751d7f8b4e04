#include "harness.h"

#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace peers {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: %s transports\n"
    "       %s serve --transport T [--cpu LIST] [--socket-dir DIR]\n"
    "       %s client --transport T --address A [--server-pid PID] [--cpu LIST]\n"
    "              [--calls N] [--warmup N] [--tests ping,echo1k,echo64k,inflight32]\n"
    "Transports: tcp, unix, udp, inproc. bench/peers/README.md describes the matrix.\n";

struct Args {
  std::string command;
  std::string transport;
  std::string address;
  std::string cpus;
  std::string socketDir = "/tmp";
  std::string tests = "ping,echo1k,echo64k,inflight32";
  long serverPid = 0;
  int calls = 20000;
  int warmup = 2000;
};

[[noreturn]] void usageError(const char* program, const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", program, why.c_str());
  std::fprintf(stderr, kUsage, program, program, program);
  std::exit(2);
}

long parseNumber(const char* program, const std::string& option, const std::string& text) {
  long value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < 0) {
    usageError(program, option + " takes a whole number, such as 100; it was given '" + text + "'");
  }
  return value;
}

Args parseArgs(int argc, char** argv) {
  const char* program = argv[0];
  if (argc < 2) usageError(program, "no command given");
  Args args;
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string option = argv[i];
    if (i + 1 >= argc) usageError(program, "the option " + option + " needs a value");
    std::string value = argv[++i];
    if (option == "--transport") args.transport = value;
    else if (option == "--address") args.address = value;
    else if (option == "--cpu") args.cpus = value;
    else if (option == "--socket-dir") args.socketDir = value;
    else if (option == "--tests") args.tests = value;
    else if (option == "--server-pid") args.serverPid = parseNumber(program, option, value);
    else if (option == "--calls") args.calls = static_cast<int>(std::max(10L, parseNumber(program, option, value)));
    else if (option == "--warmup") args.warmup = static_cast<int>(parseNumber(program, option, value));
    else usageError(program, "unknown option " + option);
  }
  return args;
}

// Pins every thread of this process (and so every thread it starts later) to the CPUs of `list`
// ("2" or "0,1").
void pinTo(const char* program, const std::string& list) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    CPU_SET(static_cast<int>(parseNumber(program, "--cpu", item)), &set);
  }
  DIR* tasks = opendir("/proc/self/task");
  if (tasks == nullptr) throw Failure("cannot list /proc/self/task to pin this process's threads");
  bool ok = true;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    ok = ok && sched_setaffinity(std::atoi(entry->d_name), sizeof set, &set) == 0;
  }
  closedir(tasks);
  if (!ok) {
    throw Failure("cannot pin this process to CPUs " + list +
                  " (sched_setaffinity failed: are they online and allowed? see `nproc`)");
  }
}

// Nanoseconds that all live threads of process `pid` have run (user and system time).
uint64_t cpuNs(long pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) throw Failure("cannot read " + dir + ": has the server process ended?");
  uint64_t total = 0;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream stat(dir + "/" + entry->d_name + "/schedstat");
    uint64_t ns = 0;
    if (stat >> ns) total += ns;
  }
  closedir(tasks);
  return total;
}

// A request payload: a fixed pattern whose first 8 bytes carry the call's number, so that a
// reply to another call (or a stale one) differs.
class Payload {
public:
  explicit Payload(size_t size) : _bytes(size) {
    for (size_t i = 0; i < size; ++i) _bytes[i] = static_cast<uint8_t>(i * 131 + 7);
  }
  std::span<const uint8_t> stamp(uint64_t call) {
    std::memcpy(_bytes.data(), &call, std::min(sizeof call, _bytes.size()));
    return _bytes;
  }

private:
  std::vector<uint8_t> _bytes;
};

struct Row {
  int calls = 0;
  double medianUs = 0;
  double p99Us = 0;
  double callsPerSecond = 0;
  double clientCpuUsPer10k = 0;
  double serverCpuUsPer10k = -1;  // negative: not measured
};

// Checks every reply against its request, counts them, and stops the program at the first
// difference.
class Checker {
public:
  Checker(std::string system, std::string transport, std::string test)
      : _context(std::move(system) + " " + std::move(transport) + " " + std::move(test)) {}

  void expect(std::span<const std::span<const uint8_t>> requests) {
    _requests.assign(requests.begin(), requests.end());
    _seen.assign(requests.size(), false);
    _checked = 0;
  }

  void check(size_t index, std::span<const uint8_t> reply) {
    if (index >= _requests.size() || _seen[index]) {
      fail("a reply came for call index " + std::to_string(index) +
           ", which was not asked for or was answered already");
    }
    _seen[index] = true;
    ++_checked;
    std::span<const uint8_t> request = _requests[index];
    if (reply.size() != request.size()) {
      fail("a reply has " + std::to_string(reply.size()) + " bytes where its request had " +
           std::to_string(request.size()));
    }
    if (std::memcmp(reply.data(), request.data(), reply.size()) != 0) {
      size_t at = 0;
      while (reply[at] == request[at]) ++at;
      char detail[160];
      std::snprintf(detail, sizeof detail,
                    "a reply differs from its request at byte %zu of %zu (0x%02x, expected 0x%02x)",
                    at, reply.size(), reply[at], request[at]);
      fail(detail);
    }
  }

  // After a call: every request was answered.
  void requireAllChecked() {
    if (_checked != _requests.size()) {
      fail(std::to_string(_requests.size() - _checked) + " of " +
           std::to_string(_requests.size()) + " calls returned without a reply to check");
    }
  }

  ReplyCheck callback() {
    return [this](size_t index, std::span<const uint8_t> reply) { check(index, reply); };
  }

private:
  [[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "WRONG REPLY (%s): %s; the run is void\n", _context.c_str(), what.c_str());
    std::fflush(stderr);
    std::_Exit(3);
  }

  std::string _context;
  std::vector<std::span<const uint8_t>> _requests;
  std::vector<bool> _seen;
  size_t _checked = 0;
};

// Times `iterations` calls of `iteration` (each `callsPerIteration` calls) after `warmup`
// untimed ones; CPU of this process and of `serverPid` (when given) over the timed ones.
template <typename Fn>
Row measure(int warmup, int iterations, int callsPerIteration, long serverPid, Fn&& iteration) {
  for (int i = 0; i < warmup; ++i) iteration();
  std::vector<double> samples(static_cast<size_t>(iterations));
  uint64_t client0 = cpuNs(getpid());
  uint64_t server0 = serverPid > 0 ? cpuNs(serverPid) : 0;
  auto start = Clock::now();
  for (auto& sample : samples) {
    auto t0 = Clock::now();
    iteration();
    sample = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  uint64_t client1 = cpuNs(getpid());
  uint64_t server1 = serverPid > 0 ? cpuNs(serverPid) : 0;
  std::sort(samples.begin(), samples.end());
  Row row;
  row.calls = iterations * callsPerIteration;
  row.medianUs = samples[samples.size() / 2];
  row.p99Us = samples[std::min(samples.size() - 1, samples.size() * 99 / 100)];
  row.callsPerSecond = row.calls / seconds;
  double per10k = 10000.0 / row.calls / 1000.0;  // ns per call set -> us per 10,000 calls
  row.clientCpuUsPer10k = static_cast<double>(client1 - client0) * per10k;
  if (serverPid > 0) row.serverCpuUsPer10k = static_cast<double>(server1 - server0) * per10k;
  return row;
}

Row runTest(const System& system, const Args& args, Connection& connection,
            const std::string& test) {
  Checker checker(system.name, args.transport, test);
  uint64_t callNumber = 0;
  if (test == "ping") {
    return measure(args.warmup, args.calls, 1, args.serverPid, [&] { connection.ping(); });
  }
  if (test == "echo1k" || test == "echo64k") {
    bool big = test == "echo64k";
    Payload payload(big ? 64 * 1024 : 1024);
    ReplyCheck check = checker.callback();
    int calls = big ? std::max(10, args.calls / 10) : args.calls;
    int warmup = big ? args.warmup / 10 : args.warmup;
    return measure(warmup, calls, 1, args.serverPid, [&] {
      std::span<const uint8_t> request = payload.stamp(++callNumber);
      checker.expect(std::span(&request, 1));
      connection.echo(request, check);
      checker.requireAllChecked();
    });
  }
  if (test == "inflight32") {
    constexpr size_t kInFlight = 32;
    Payload pattern(1024);
    std::vector<std::vector<uint8_t>> requests(kInFlight);
    std::vector<std::span<const uint8_t>> views(kInFlight);
    ReplyCheck check = checker.callback();
    return measure(std::max(1, args.warmup / 10), std::max(10, args.calls / 10),
                   static_cast<int>(kInFlight), args.serverPid, [&] {
                     for (size_t i = 0; i < kInFlight; ++i) {
                       std::span<const uint8_t> bytes = pattern.stamp(++callNumber);
                       requests[i].assign(bytes.begin(), bytes.end());
                       views[i] = requests[i];
                     }
                     checker.expect(views);
                     connection.echoInFlight(requests, check);
                     checker.requireAllChecked();
                   });
  }
  throw Failure("unknown test '" + test + "': the tests are ping, echo1k, echo64k, inflight32");
}

void printRow(const System& system, const Args& args, const std::string& test, const Row& row) {
  std::printf("result,%s,%s,%s,%d,%.3f,%.3f,%.0f,%.0f,", system.name.c_str(),
              args.transport.c_str(), test.c_str(), row.calls, row.medianUs, row.p99Us,
              row.callsPerSecond, row.clientCpuUsPer10k);
  if (row.serverCpuUsPer10k >= 0) std::printf("%.0f", row.serverCpuUsPer10k);
  std::printf("\n");
  std::fflush(stdout);
}

void requireTransport(const System& system, const char* program, const std::string& transport) {
  auto it = system.transports.find(transport);
  if (it == system.transports.end()) {
    usageError(program, "--transport takes tcp, unix, udp or inproc; it was given '" + transport + "'");
  }
  if (!it->second.empty()) {
    std::fprintf(stderr, "%s: %s has no %s transport: %s\n", program, system.name.c_str(),
                 transport.c_str(), it->second.c_str());
    std::exit(2);
  }
}

int serve(const System& system, const Args& args, const char* program) {
  requireTransport(system, program, args.transport);
  if (args.transport == "inproc") usageError(program, "inproc has no server process");
  std::unique_ptr<Server> server = system.serve(ServeArgs{args.transport, args.socketDir});
  std::printf("ready %ld %s\n", static_cast<long>(getpid()), server->address().c_str());
  std::fflush(stdout);
  // The server ends when its standard input closes (the matrix closes it, or it dies).
  std::thread watcher([&server] {
    char buffer[256];
    while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
    }
    server->stop();
  });
  try {
    server->run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: the server stopped: %s\n", program, e.what());
    std::fflush(stderr);
    std::_Exit(1);
  } catch (...) {
    std::fprintf(stderr, "%s: the server stopped on an exception of %s's own kind\n", program,
                 system.name.c_str());
    std::fflush(stderr);
    std::_Exit(1);
  }
  watcher.join();
  server.reset();
  return 0;
}

int client(const System& system, const Args& args, const char* program) {
  requireTransport(system, program, args.transport);
  if (args.transport != "inproc" && args.address.empty()) usageError(program, "client needs --address");
  std::unique_ptr<Connection> connection = system.connect(args.transport, args.address);
  std::stringstream tests(args.tests);
  for (std::string test; std::getline(tests, test, ',');) {
    printRow(system, args, test, runTest(system, args, *connection, test));
  }
  connection.reset();
  return 0;
}

}  // namespace

int main(int argc, char** argv, const System& system) {
  const char* program = argv[0];
  try {
    Args args = parseArgs(argc, argv);
    if (!args.cpus.empty()) pinTo(program, args.cpus);
    if (args.command == "transports") {
      for (const auto& [name, lacking] : system.transports) {
        std::printf("%s %s%s\n", name.c_str(), lacking.empty() ? "yes" : "no ", lacking.c_str());
      }
      return 0;
    }
    if (args.command == "serve") return serve(system, args, program);
    if (args.command == "client") return client(system, args, program);
    usageError(program, "unknown command '" + args.command + "'");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace peers
