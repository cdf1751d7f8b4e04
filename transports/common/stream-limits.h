// What a stream transport (tcp, pipe) lets its peers hold, and what it counts.
//
// Settings: "key=value,key=value" text from RuntimeOptions::transportSettings ("tcp" or "pipe")
// through create_with_settings; README.md's transport settings table lists the keys. An unknown
// key or a malformed value refuses the settings, naming the key: the instance is not created.
//
// Counters: reported through the table's `counters` (Runtime::transportCounters), named as the
// X-macro entries below; those beginning with now_ are current levels, the others only grow.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace ferry::transports {

struct StreamLimits {
  // The largest message a peer may announce; a larger length prefix closes its connection. Also
  // the most bytes of one message buffered for one connection. At most the plugin's maximum.
  uint64_t maxMessageSize = 0;  // 0: the plugin's maximum (16 MiB + 64 KiB)
  // Bytes of partly received messages buffered over all connections of an instance. A
  // connection whose next bytes would pass it is closed (UV_ENOBUFS). Buffers grow as bytes
  // arrive, never as a length prefix declares.
  uint64_t receiveBudget = 256ull << 20;
  // Bytes queued for one connection and not yet taken by the kernel. send() is refused with
  // UV_ENOBUFS while the queue holds this much; reading from an accepted peer stops once it holds
  // half of it (the peer is not reading its responses) and goes on once it is down to a quarter.
  uint64_t sendQueueLimit = 64ull << 20;
  // The same over all connections of an instance.
  uint64_t sendBudget = 1ull << 30;
  // An accepted connection with nothing received or written for this long is closed. 0: never.
  uint64_t idleTimeoutMs = 300000;
  // A message whose first byte came this long ago and that is still not whole closes its
  // connection. 0: never.
  uint64_t frameTimeoutMs = 60000;
  // Accepted connections at once, in all and from one peer (tcp: one IP address; pipe: one
  // user). Of max_connections, connection_reserve are kept for peers that have none yet: once
  // only the reserve is left, a peer that already has a connection is refused another.
  uint64_t maxConnections = 4096;
  uint64_t maxConnectionsPerPeer = 256;
  uint64_t connectionReserve = 64;
};

// Parses settings text into `limits`; each problem, a phrase that names the key, is appended to
// `problems`. Null text is none.
void parseStreamLimits(const char* text, StreamLimits& limits, std::vector<std::string>& problems);

// X(name) for every counter of a stream transport instance.
#define FERRY_STREAM_COUNTERS(X)                                                                 \
  X(connections_accepted)                                                                        \
  X(connections_refused_limit)     /* max_connections (less the reserve) reached */              \
  X(connections_refused_per_peer)  /* max_connections_per_peer reached */                        \
  X(accept_errors)                 /* the kernel refused an accept (e.g. the descriptor limit) */ \
  X(messages_received)                                                                           \
  X(messages_read_by_caller)       /* of those, read by a waiting thread (receive_any_thread) */ \
  X(closed_oversized)              /* a length prefix above max_message_size */                  \
  X(closed_over_budget)            /* receive_budget full */                                     \
  X(closed_truncated)              /* the stream ended inside a message */                       \
  X(closed_idle)                   /* idle_timeout_ms */                                         \
  X(closed_stalled_frame)          /* frame_timeout_ms */                                        \
  X(sends_refused_queue_full)      /* send_queue_limit or send_budget */                         \
  X(reads_paused)                  /* an accepted peer left half the send queue unread */        \
  X(now_connections)               /* accepted and connected, open */                            \
  X(now_receive_buffer_bytes)                                                                    \
  X(now_send_queue_bytes)

// Updated from any thread (relaxed: each is a tally, read for reports).
struct StreamCounters {
#define FERRY_STREAM_COUNTER_MEMBER(name) std::atomic<uint64_t> name{0};
  FERRY_STREAM_COUNTERS(FERRY_STREAM_COUNTER_MEMBER)
#undef FERRY_STREAM_COUNTER_MEMBER
};

}  // namespace ferry::transports
