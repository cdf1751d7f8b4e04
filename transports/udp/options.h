// The udp plugin's settings: "key=value,key=value" text, from RuntimeOptions::transportSettings
// ("udp") through create_with_settings, with FERRY_UDP_OPTIONS as an override for tests (its keys
// win over the same keys of the settings):
//
//     idle_timeout_ms=2000,initial_rtt_ms=10,max_ack_delay_ms=5
//
// PROTOCOL.md ("Settings, counters and test hooks") lists the keys. An unknown key or a malformed value refuses the
// settings, naming the key: the instance is not created, and a Runtime given them does not start.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "settings.h"

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
  uint64_t halfOpenPerAddress = 32;     // of them from one IP address (its oldest goes first)
  uint64_t sessionsPerAddress = 256;    // server sessions in any state from one IP address
  uint64_t cookieRate = 100000;         // COOKIEs per second, to every sender together
  uint64_t rejectRate = 100;            // REJECTs per second per /24 or /56
  uint64_t cookieLifetimeMs = 60000;
  uint64_t cookieRotateMs = 120000;
  uint64_t pmtu = 1;                    // 0: never probe above the base datagram size
  uint64_t pmtuRaiseMs = 600000;        // probe again this long after a failure or black hole
  uint64_t socketBuffer = 4ull << 20;   // SO_RCVBUF and SO_SNDBUF (the kernel may cap it)
};

// Parses "key=value,key=value" text into `options`; each problem, a phrase that names the key,
// is appended to `problems`. Null text is none.
void parseOptions(const char* text, Options& options, std::vector<std::string>& problems);

}  // namespace ferry::transports::udp
