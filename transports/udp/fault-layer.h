/* What the test-only build of the udp plugin (transports/udp/fault-layer/, installed nowhere)
 * exports beside ferry_plugin_entry_v1. The shipping plugin exports its entry only.
 *
 * That build has a fault layer (fault.h) between the instance and its sockets: datagrams going
 * out or coming in are dropped, duplicated, held back, cut short or corrupted, from a seeded
 * PRNG, as FERRY_UDP_FAULT says when an instance is created, or as tests set later through the
 * function below. Its counters (fault_tx_*, fault_rx_*, now_fault_held) are reported after the
 * others through the table's `counters`.
 *
 * This header compiles on its own, as C or C++. */
#ifndef FERRY_TRANSPORTS_UDP_FAULT_LAYER_H
#define FERRY_TRANSPORTS_UDP_FAULT_LAYER_H

#include <ferry/plugin/transport.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Replaces the instance's fault settings with `spec` (FERRY_UDP_FAULT syntax; "" for none),
 * e.g. to black-hole a server after its sessions are up. 0, or UV_EINVAL for a malformed spec.
 * On the instance's loop thread. */
typedef int (*ferry_udp_test_set_fault_v1_fn)(ferry_transport* transport, const char* spec);
#define FERRY_UDP_TEST_SET_FAULT_V1_SYMBOL "ferry_udp_test_set_fault_v1"

#ifdef __cplusplus
}
#endif

#endif /* FERRY_TRANSPORTS_UDP_FAULT_LAYER_H */
