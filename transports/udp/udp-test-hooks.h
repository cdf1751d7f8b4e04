/* Test-only entry points of the udp transport plugin, beside ferry_plugin_entry_v1.
 *
 * They are exported so that tests (tests/udp/) can look them up with dlsym on the module and
 * assert what the plugin did: datagrams dropped and why, bytes sent to addresses not yet
 * validated, memory held. Core never calls them. Like the table functions they must be called
 * on the instance's loop thread. Counters only grow, except the ones marked "now", which give
 * the current level (for checking that memory plateaus).
 *
 * This header compiles on its own, as C or C++. */
#ifndef FERRY_TRANSPORTS_UDP_TEST_HOOKS_H
#define FERRY_TRANSPORTS_UDP_TEST_HOOKS_H

#include <stdint.h>

#include <ferry/plugin/transport.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ferry_udp_counters_v1 {
  uint32_t struct_size;
  uint32_t reserved;

  /* Datagrams through the socket (after the fault layer on the way in, before it going out). */
  uint64_t datagrams_received;
  uint64_t bytes_received;
  uint64_t datagrams_sent;
  uint64_t bytes_sent;
  uint64_t send_errors;            /* sendmsg refused a datagram (besides EAGAIN) */
  uint64_t send_queue_drops;       /* EAGAIN with the fallback queue full */

  /* Dropped on receipt, and why. Each datagram counts once. */
  uint64_t dropped_malformed;      /* too short, not a ferry packet, or undecodable frames */
  uint64_t dropped_crc;            /* CRC32C mismatch (truncated or corrupted) */
  uint64_t dropped_version;        /* a long header of another version */
  uint64_t dropped_unknown_session;
  uint64_t dropped_wrong_address;  /* a session's packet from another address or socket */
  uint64_t dropped_duplicate;      /* a packet number received before */
  uint64_t dropped_unexpected;     /* well-formed, but not allowed there (a HELLO on a client
                                      socket, a COOKIE for no handshake, a small HELLO...) */
  uint64_t dropped_over_budget;    /* DATA refused because the instance's memory budget is full */
  uint64_t dropped_closing;        /* for a session already closed (answered with CLOSE or not) */
  uint64_t protocol_violations;    /* packets of a session that broke the protocol */

  /* Handshakes and stateless replies. */
  uint64_t hellos_received;
  uint64_t cookies_sent;
  uint64_t cookies_rate_limited;
  uint64_t half_open_refused;      /* valid cookie, but the half-open pool was full */
  uint64_t server_sessions_created;
  uint64_t rejects_sent;
  uint64_t rejects_rate_limited;
  uint64_t rejects_received;       /* matched a session and closed it */
  uint64_t rejects_ignored;        /* named nothing we know, or failed the checks */
  /* Every datagram that did not belong to a validated session, and every byte answered to
   * such datagrams (COOKIE, REJECT): the second never exceeds the first (1x amplification). */
  uint64_t unvalidated_bytes_received;
  uint64_t unvalidated_bytes_sent;
  uint64_t unvalidated_datagrams_received;
  uint64_t unvalidated_datagrams_sent;

  /* Recovery. */
  uint64_t packets_sent;           /* ack-eliciting packets of sessions */
  uint64_t packets_lost;
  uint64_t spurious_losses;        /* declared lost, then acknowledged (reordering) */
  uint64_t bytes_retransmitted;    /* DATA bytes sent again */
  uint64_t pto_expirations;
  uint64_t persistent_congestion;
  uint64_t keepalives_sent;
  uint64_t pmtu_probes_sent;
  uint64_t pmtu_raised;
  uint64_t pmtu_black_holes;
  uint64_t messages_delivered;
  uint64_t messages_sent;

  /* Sessions. */
  uint64_t sessions_established;   /* connected or accepted */
  uint64_t sessions_closed_by_peer;
  uint64_t sessions_idle_timeouts;
  uint64_t sessions_rejected;      /* closed by a REJECT */

  /* Now: levels, for plateau checks. */
  uint64_t now_sessions;           /* in any state, including closing and draining */
  uint64_t now_half_open;
  uint64_t now_reassembly_bytes;   /* receive buffers held */
  uint64_t now_send_queue_bytes;   /* messages queued or not yet acknowledged */
  uint64_t now_packets_outstanding;
  uint64_t now_bytes_in_flight;    /* summed over congestion controllers */
  uint64_t now_controllers;
  uint64_t now_kernel_queue_bytes; /* waiting in uv_udp_send after EAGAIN */
  uint64_t now_fault_held;         /* datagrams held back by the fault layer */
  uint64_t now_max_datagram_size;  /* largest datagram size any open session uses */
  uint64_t now_smoothed_rtt_us;    /* of the open session with the highest one */

  /* The fault layer (FERRY_UDP_FAULT), outgoing then incoming. */
  uint64_t fault_tx_dropped;
  uint64_t fault_tx_duplicated;
  uint64_t fault_tx_delayed;
  uint64_t fault_tx_truncated;
  uint64_t fault_tx_corrupted;
  uint64_t fault_tx_oversized;
  uint64_t fault_rx_dropped;
  uint64_t fault_rx_duplicated;
  uint64_t fault_rx_delayed;
  uint64_t fault_rx_truncated;
  uint64_t fault_rx_corrupted;
  uint64_t fault_rx_oversized;
} ferry_udp_counters_v1;

/* Fills *out (out->struct_size must be set to the caller's size); 0 or UV_EINVAL. */
typedef int (*ferry_udp_test_counters_v1_fn)(ferry_transport* transport,
                                            ferry_udp_counters_v1* out);
#define FERRY_UDP_TEST_COUNTERS_V1_SYMBOL "ferry_udp_test_counters_v1"

/* Replaces the instance's fault settings with `spec` (FERRY_UDP_FAULT syntax; "" for none),
 * e.g. to black-hole a server after its sessions are up. 0, or UV_EINVAL for a malformed spec. */
typedef int (*ferry_udp_test_set_fault_v1_fn)(ferry_transport* transport, const char* spec);
#define FERRY_UDP_TEST_SET_FAULT_V1_SYMBOL "ferry_udp_test_set_fault_v1"

#ifdef __cplusplus
}
#endif

#endif /* FERRY_TRANSPORTS_UDP_TEST_HOOKS_H */
