// The udp plugin's tunables and its fault-injection settings, read from the environment when an
// instance is created:
//
//     FERRY_UDP_OPTIONS="idle_timeout_ms=2000,initial_rtt_ms=10,max_ack_delay_ms=5"
//     FERRY_UDP_FAULT="seed=7,dir=tx,drop=0.1,dup=0.5,reorder=0.25,delay_ms=5"
//
// Both are test and tuning hooks (PROTOCOL.md, "Tuning and test hooks"), not configuration a
// deployment is expected to touch. An unknown key or a malformed value is logged and ignored:
// a typo must not keep a process from starting, and must not go unnoticed either.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::transports::udp {

// Everything is in milliseconds or bytes; defaults follow PROTOCOL.md.
struct Options {
  uint64_t idleTimeoutMs = 30000;       // a session with nothing received for this long is dead
  uint64_t keepaliveMs = 0;             // 0: min(idle_timeout / 3, 15 s)
  uint64_t initialRttMs = 333;          // RFC 9002 kInitialRtt
  uint64_t maxAckDelayMs = 25;          // announced to the peer
  uint64_t handshakeTimeoutMs = 10000;  // a server's half-open session lives this long
  uint64_t maxMessageSize = 0;          // 0: the plugin's maximum (16 MiB + 64 KiB)
  uint64_t sessionWindow = 32ull << 20;        // bytes of undelivered messages per session
  uint64_t globalBudget = 256ull << 20;        // the same over all sessions of an instance
  uint64_t unscheduledBytes = 256ull << 10;    // bytes of a message sent before any CREDIT
  uint64_t messageWindow = 4ull << 20;         // CREDIT granted ahead of a message's prefix
  uint64_t maxOpenMessages = 1024;             // undelivered message ids a sender may use
  uint64_t halfOpenMax = 4096;          // server sessions between cookie and confirmation
  uint64_t cookieRate = 1000;           // COOKIEs per second per /24 (IPv4) or /56 (IPv6)
  uint64_t rejectRate = 100;            // REJECTs per second per /24 or /56
  uint64_t cookieLifetimeMs = 60000;
  uint64_t cookieRotateMs = 120000;
  uint64_t pmtu = 1;                    // 0: never probe above the base datagram size
  uint64_t pmtuRaiseMs = 600000;        // probe again this long after a failure or black hole
  uint64_t socketBuffer = 4ull << 20;   // SO_RCVBUF and SO_SNDBUF (the kernel may cap it)
};

// One direction's impairments. Probabilities are in [0, 1].
struct FaultDirection {
  double drop = 0;
  double dup = 0;         // send one extra copy
  double reorder = 0;     // hold the datagram back for a random delay up to reorder_ms
  double truncate = 0;    // cut at a random length
  double corrupt = 0;     // flip one random bit
  uint64_t delayMs = 0;   // added to every datagram
  uint64_t reorderMs = 10;
  uint64_t maxSize = 0;   // datagrams larger than this vanish (a PMTU black hole); 0: no limit

  bool active() const noexcept {
    return drop > 0 || dup > 0 || reorder > 0 || truncate > 0 || corrupt > 0 || delayMs > 0 ||
           maxSize > 0;
  }
};

struct FaultConfig {
  uint64_t seed = 1;
  FaultDirection tx;  // applied just before a datagram goes to the kernel
  FaultDirection rx;  // applied just after a datagram came from the kernel

  bool active() const noexcept { return tx.active() || rx.active(); }
};

// Parses "key=value,key=value" text into `options`; each problem is appended to `problems`.
void parseOptions(const char* text, Options& options, std::vector<std::string>& problems);

// Parses a fault spec: `seed`, `dir` (tx, rx or both; default both) saying where the keys without
// a prefix apply, the per-direction keys drop, dup, reorder, truncate, corrupt, delay_ms,
// reorder_ms, max_size with an optional `tx.` or `rx.` prefix, and `blackhole=1` (nothing in or
// out: tx.drop=1,rx.drop=1; `rx.drop=1` alone makes an instance deaf but not mute).
void parseFault(const char* text, FaultConfig& fault, std::vector<std::string>& problems);

}  // namespace ferry::transports::udp
