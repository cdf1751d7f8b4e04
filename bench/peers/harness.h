// The harness every peer program of the comparison matrix shares: one client and one server
// logic, the same four tests, the same content checks and the same CPU accounting for every
// system, so that a row differs between systems only in the system under test.
//
// A peer program (peer-raw, peer-ferry, peer-capnp, peer-ice, peer-omniorb, peer-grpc) defines a
// `System` and calls `peers::main`. Its command line:
//   peer-X transports                       one line per transport: `TRANSPORT yes` or
//                                           `TRANSPORT no REASON` (what the system lacks)
//   peer-X serve --transport T [--cpu LIST] [--socket-dir DIR]
//        prints `ready PID ADDRESS` once it accepts calls, serves until its standard input
//        closes, then stops and exits 0
//   peer-X client --transport T --address A [--server-pid PID] [--cpu LIST]
//        [--calls N] [--warmup N] [--tests ping,echo1k,echo64k,inflight32]
//        runs the tests on one connection and prints one CSV line per test:
//        result,SYSTEM,TRANSPORT,TEST,CALLS,MEDIAN_US,P99_US,CALLS_PER_S,CLIENT_CPU_US_PER_10K,
//        SERVER_CPU_US_PER_10K  (the server's column is empty without --server-pid)
// The transport `inproc` (where a system has it) runs both sides in the client's process: no
// server process, and the client's CPU is both sides'.
//
// The tests: ping (a call without arguments or result); echo1k and echo64k (a call whose result
// is its 1 KiB or 64 KiB argument); inflight32 (32 echo calls of 1 KiB issued at once on the one
// connection, then their 32 replies: calls/s counts calls, the latency is the batch's). Every
// request carries its own call number, and every reply is compared with its request in full: a
// reply that differs by one byte ends the program with status 3 and a message on stderr.
//
// CPU: user+system time of every thread of a process (the sum of /proc/PID/task/*/schedstat),
// read right before and right after the measured calls, per 10,000 calls.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace peers {

// Receives one reply: checks it against its request (the harness's check; a system calls it
// once per reply with the bytes the reply carries, before it releases them).
using ReplyCheck = std::function<void(size_t index, std::span<const uint8_t> reply)>;

// The client's side of one connection to the server. Calls are made from the thread that
// created it, one at a time.
class Connection {
public:
  virtual ~Connection() = default;
  // A call with neither arguments nor result.
  virtual void ping() = 0;
  // One echo call; calls check(0, reply) with the result.
  virtual void echo(std::span<const uint8_t> request, const ReplyCheck& check) = 0;
  // requests.size() echo calls in flight at once on this connection; calls check(i, reply) for
  // the result of requests[i] (in any order, each once) before it returns.
  virtual void echoInFlight(const std::vector<std::vector<uint8_t>>& requests,
                            const ReplyCheck& check) = 0;
};

// A server that accepts calls. run() serves on the calling thread (the main thread) until
// stop(), which another thread calls once, makes it return.
class Server {
public:
  virtual ~Server() = default;
  // What the client's --address takes to reach this server.
  virtual std::string address() const = 0;
  virtual void run() = 0;
  virtual void stop() = 0;
};

struct ServeArgs {
  std::string transport;
  // A directory for Unix-domain sockets (the matrix makes one and removes it afterwards).
  std::string socketDir;
};

struct System {
  std::string name;
  // Every transport of the matrix (tcp, unix, udp, inproc) with an empty string where the system
  // has it, or the reason it has not.
  std::map<std::string, std::string> transports;
  std::function<std::unique_ptr<Server>(const ServeArgs&)> serve;
  std::function<std::unique_ptr<Connection>(const std::string& transport,
                                            const std::string& address)>
      connect;
};

// Runs the program's command line (the header's comment) for `system`; the exit status.
int main(int argc, char** argv, const System& system);

// The message of a run that must stop: thrown by systems for a failed call; main prints it and
// exits with status 1.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace peers
