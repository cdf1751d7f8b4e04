// The udp plugin's counters: what an instance did, dropped and holds. The instance reports them
// through the transport table's `counters` function as (name, value) pairs named as the members
// here; tests (tests/udp) and the admin interface read them there. Each list below is the one
// place a counter is declared: the struct members and the reported names both come from it.
//
// Counters only grow, except the levels whose name begins with now_ (for checking that memory
// plateaus).
#pragma once

#include <cstdint>

// X(name) for every counter of the shipping plugin.
#define FERRY_UDP_COUNTERS(X)                                                                    \
  /* Datagrams through the socket. */                                                           \
  X(datagrams_received)                                                                          \
  X(bytes_received)                                                                              \
  X(datagrams_sent)                                                                              \
  X(bytes_sent)                                                                                  \
  X(send_errors)             /* sendmsg refused a datagram (besides EAGAIN) */                   \
  X(send_queue_drops)        /* EAGAIN with the fallback queue full */                           \
  /* Dropped on receipt, and why. Each datagram counts once. */                                  \
  X(dropped_malformed)       /* too short, not a ferry packet, or undecodable frames */          \
  X(dropped_crc)             /* CRC32C mismatch (truncated or corrupted) */                      \
  X(dropped_version)         /* a long header of another version */                             \
  X(dropped_unknown_session)                                                                     \
  X(dropped_wrong_address)   /* a session's packet from another address or socket */            \
  X(dropped_duplicate)       /* a packet number received before */                              \
  X(dropped_unexpected)      /* well-formed, but not allowed there (a HELLO on a client socket, \
                                a COOKIE for no handshake, a small HELLO...) */                  \
  X(dropped_over_budget)     /* DATA refused: the instance's memory budget is full */            \
  X(dropped_closing)         /* for a session already closed */                                  \
  X(protocol_violations)     /* packets of a session that broke the protocol */                 \
  /* Handshakes and stateless replies. */                                                        \
  X(hellos_received)                                                                             \
  X(cookies_sent)                                                                                \
  X(cookies_rate_limited)                                                                        \
  X(half_open_refused)       /* valid cookie, but the half-open pool was full */                 \
  X(half_open_evicted)       /* the oldest half-open of an address at half_open_per_address */   \
  X(sessions_refused_per_address) /* valid cookie, but its address had sessions_per_address */  \
  X(server_sessions_created)                                                                     \
  X(rejects_sent)                                                                                \
  X(rejects_rate_limited)                                                                        \
  X(rejects_received)        /* matched a session and closed it */                               \
  X(rejects_ignored)         /* named nothing we know, or failed the checks */                   \
  X(closes_ignored)          /* a CLOSE without the peer's close token: forged, dropped */       \
  /* Every datagram that did not belong to a validated session, and every byte answered to such \
     datagrams (COOKIE, REJECT): the second never exceeds the first (1x amplification). */      \
  X(unvalidated_bytes_received)                                                                  \
  X(unvalidated_bytes_sent)                                                                      \
  X(unvalidated_datagrams_received)                                                              \
  X(unvalidated_datagrams_sent)                                                                  \
  /* Recovery. */                                                                                \
  X(packets_sent)            /* ack-eliciting packets of sessions */                             \
  X(packets_lost)                                                                                \
  X(spurious_losses)         /* declared lost, then acknowledged (reordering) */                 \
  X(bytes_retransmitted)     /* DATA bytes sent again */                                         \
  X(pto_expirations)                                                                             \
  X(persistent_congestion)                                                                       \
  X(silent_peers)            /* PTOs unanswered in a row: flight set aside (PROTOCOL.md §8) */   \
  X(keepalives_sent)                                                                             \
  X(pmtu_probes_sent)                                                                            \
  X(pmtu_raised)                                                                                 \
  X(pmtu_black_holes)                                                                            \
  X(messages_delivered)                                                                          \
  X(messages_sent)                                                                               \
  /* send_any_thread, by what became of each message. */                                         \
  X(any_thread_flushed)      /* written by the calling thread itself */                          \
  X(any_thread_queued)       /* queued on its session by the calling thread, sent by the loop */ \
  X(any_thread_handed_off)   /* handed off without the instance lock (the loop was inside an    \
                                event, or the lock busy), queued by its next holder */           \
  X(any_thread_waits)        /* the hand-off full: the calling thread waited for the lock */     \
  /* Sessions. */                                                                                \
  X(sessions_established)    /* connected or accepted */                                         \
  X(sessions_closed_by_peer)                                                                     \
  X(sessions_idle_timeouts)                                                                      \
  X(sessions_rejected)       /* closed by a REJECT */                                            \
  /* Levels. */                                                                                  \
  X(now_sessions)            /* in any state, including closing and draining */                  \
  X(now_half_open)                                                                               \
  X(now_reassembly_bytes)    /* receive buffers held */                                          \
  X(now_send_queue_bytes)    /* messages queued or not yet acknowledged */                       \
  X(now_packets_outstanding)                                                                     \
  X(now_bytes_in_flight)     /* summed over congestion controllers */                            \
  X(now_controllers)                                                                             \
  X(now_kernel_queue_bytes)  /* waiting in uv_udp_send after EAGAIN */                           \
  X(now_handoff_bytes)       /* send_any_thread's messages handed off, not yet queued */         \
  X(now_max_datagram_size)   /* largest datagram size any open session uses */                   \
  X(now_smoothed_rtt_us)     /* of the open session with the highest one */

// X(name) for the counters of the fault layer, reported by the test-only build that has one
// (fault-layer.h): what it did to datagrams going out (tx) and coming in (rx).
#define FERRY_UDP_FAULT_COUNTERS(X)                                                              \
  X(fault_tx_dropped)                                                                            \
  X(fault_tx_duplicated)                                                                         \
  X(fault_tx_delayed)                                                                            \
  X(fault_tx_truncated)                                                                          \
  X(fault_tx_corrupted)                                                                          \
  X(fault_tx_oversized)                                                                          \
  X(fault_rx_dropped)                                                                            \
  X(fault_rx_duplicated)                                                                         \
  X(fault_rx_delayed)                                                                            \
  X(fault_rx_truncated)                                                                          \
  X(fault_rx_corrupted)                                                                          \
  X(fault_rx_oversized)                                                                          \
  X(now_fault_held)          /* datagrams held back */

namespace ferry::transports::udp {

struct Counters {
#define FERRY_UDP_COUNTER_MEMBER(name) uint64_t name = 0;
  FERRY_UDP_COUNTERS(FERRY_UDP_COUNTER_MEMBER)
#undef FERRY_UDP_COUNTER_MEMBER
};

struct FaultLayerCounters {
#define FERRY_UDP_COUNTER_MEMBER(name) uint64_t name = 0;
  FERRY_UDP_FAULT_COUNTERS(FERRY_UDP_COUNTER_MEMBER)
#undef FERRY_UDP_COUNTER_MEMBER
};

}  // namespace ferry::transports::udp
