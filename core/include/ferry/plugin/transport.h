/* Transport plugins, ABI version 1.
 *
 * A transport moves whole messages between two processes over connections: it frames them, keeps
 * them in order, and reports connections coming and going. Everything above (calls, routing,
 * security) is ferry core's.
 *
 * Threading: an instance lives on one libuv loop, the host's I/O loop. The host calls every
 * function in the table on that loop's thread, and the plugin invokes every event callback on
 * that thread too, never from inside a table function (events are reported from the loop: a
 * connect that fails at once still reports `connected` with an error on a later iteration).
 *
 * Connection ids are chosen by the plugin, never 0, never reused within an instance.
 *
 * Errors are negative numbers, libuv's error codes where one fits (UV_EINVAL for a malformed
 * binding, UV_EMSGSIZE for an oversized message, UV_ENOTCONN for an unknown or closed
 * connection, UV_ETIMEDOUT for a connect timeout, UV_ENOBUFS for a send over the connection's
 * queue limit); the table's `strerror` names them. Table
 * functions return 0 on success; when listen() or connect() returns an error, no event follows
 * for it. No function blocks, but receive_any_thread, which waits for bytes as long as its
 * caller asks. */
#ifndef FERRY_PLUGIN_TRANSPORT_H
#define FERRY_PLUGIN_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ferry_transport ferry_transport; /* an instance, opaque to the host */
typedef uint64_t ferry_conn_id;

/* Who is at the other end of a connection. Strings valid during the callback only. */
typedef struct ferry_peer_info_v1 {
  uint32_t struct_size;
  const char* address;     /* printable, e.g. "127.0.0.1:40312", "[::1]:5000", "pipe:/path" */
  int has_credentials;     /* 1 when uid/gid/pid below are the kernel's (pipe: SO_PEERCRED) */
  uint32_t uid;
  uint32_t gid;
  int32_t pid;
} ferry_peer_info_v1;

/* Callbacks the host registers with an instance. */
typedef struct ferry_transport_events_v1 {
  uint32_t struct_size;
  void* context;
  /* A listener accepted a connection. */
  void (*accepted)(void* context, ferry_conn_id conn, const ferry_peer_info_v1* peer);
  /* A connect() finished: status 0, or an error (peer is NULL then). On error `closed` does not
   * follow: the connection never existed. */
  void (*connected)(void* context, ferry_conn_id conn, int status, const ferry_peer_info_v1* peer);
  /* One whole message arrived; `data` is valid during the call only. */
  void (*received)(void* context, ferry_conn_id conn, const uint8_t* data, size_t size);
  /* An established connection is gone: the peer closed it (status 0), an error (status < 0,
   * e.g. a malformed frame), or the host closed it. No event follows for it. UV_ETIMEDOUT says
   * the peer went silent: nothing came from it within the transport's timeout (udp: its idle
   * timeout, three keepalive periods; a stream: a message left incomplete, or an accepted
   * connection idle), and the host takes the peer for unreachable, not merely disconnected. */
  void (*closed)(void* context, ferry_conn_id conn, int status);
} ferry_transport_events_v1;

/* What a transport knows of one connection's path (ferry_transport_v1.connection_info). The
 * host sets struct_size and zeroes the rest; the plugin writes the fields struct_size covers.
 * 0 in a field: unknown, or not measured by this transport. */
typedef struct ferry_connection_info_v1 {
  uint32_t struct_size;
  uint32_t reserved;
  uint64_t rtt_us;             /* smoothed round-trip time */
  uint64_t rtt_var_us;         /* its mean deviation */
  uint64_t packets_lost;       /* udp: packets declared lost; tcp: segments retransmitted */
  uint64_t bytes_retransmitted; /* udp: message bytes sent again */
} ferry_connection_info_v1;

/* One counter of an instance (ferry_transport_v1.counters). */
typedef struct ferry_counter_v1 {
  const char* name;
  uint64_t value;
} ferry_counter_v1;

typedef struct ferry_transport_v1 {
  uint32_t struct_size;
  uint32_t abi_version;

  /* The largest message send() accepts and received() delivers, in bytes. */
  size_t max_message_size;

  /* Creates an instance on `loop`. `events` is copied. */
  int (*create)(const ferry_host_v1* host, uv_loop_t* loop, const ferry_transport_events_v1* events,
                ferry_transport** out);

  /* Closes every listener and connection (without further events) and frees the instance once
   * its handles are closed; then `done(arg)` runs on the loop. The loop must keep running until
   * then. */
  void (*destroy)(ferry_transport* transport, void (*done)(void* arg), void* arg);

  /* Starts listening. `address`: tcp: a numeric IPv4/IPv6 address; pipe: "" (the host's runtime
   * directory) or a directory. `endpoint`: tcp: a port ("" or "0" picks one); pipe: a socket file
   * name ("" picks a unique one). The endpoint actually bound is written to endpoint_out
   * (NUL-terminated). May be called several times for several listeners. */
  int (*listen)(ferry_transport* transport, const char* address, const char* endpoint,
                char* endpoint_out, size_t endpoint_cap);

  /* Starts connecting; `connected` reports the outcome, at the latest `timeout_ms` later
   * (0: at once, i.e. a connect that cannot complete immediately times out). */
  int (*connect)(ferry_transport* transport, const char* address, const char* endpoint,
                 uint32_t timeout_ms, ferry_conn_id* conn_out);

  /* Queues one message on an established connection; the data is copied. Messages arrive whole
   * and in the order sent. Error for an unknown or closed connection, or an oversized message.
   * Bounded: UV_ENOBUFS when the connection already holds as much unsent as the transport allows
   * (a peer that does not read), the message is not queued then, and the connection stays open;
   * the host fails what the message was for. */
  int (*send)(ferry_transport* transport, ferry_conn_id conn, const uint8_t* data, size_t size);

  /* Closes a connection; `closed` follows (status 0), or, for a connection still connecting,
   * `connected` with UV_ECANCELED. Messages queued in this process and not yet handed to the
   * kernel are dropped. Unknown ids are ignored. */
  void (*close)(ferry_transport* transport, ferry_conn_id conn);

  /* Validates an (address, endpoint) pair as connect() would take it, without side effects. */
  int (*check_binding)(const char* address, const char* endpoint);

  /* A static, human-readable text for an error this plugin returned. */
  const char* (*strerror)(int error);

  /* ---- Appended; present when struct_size covers them. ---- */

  /* Optional (NULL when not offered): send() callable from ANY thread, for latency — the calling
   * thread writes the message itself when nothing is queued ahead of it on the connection, and
   * hands the rest to the loop otherwise. Messages keep the order of the calls that queued them,
   * whichever thread made them. Never blocks. Errors as send(); UV_ENOTCONN also once the
   * connection started closing. Must not be called once destroy() was called. */
  int (*send_any_thread)(ferry_transport* transport, ferry_conn_id conn, const uint8_t* data,
                         size_t size);

  /* Optional (NULL when not offered): listen() with FERRY_LISTEN_* flags. UV_ENOTSUP for a flag
   * this transport does not offer (then nothing listens). */
  int (*listen_with_flags)(ferry_transport* transport, const char* address, const char* endpoint,
                           uint32_t flags, char* endpoint_out, size_t endpoint_cap);

  /* What the transport is. Core decides from these, never from a transport's name, so that a
   * new transport needs no change in core. A table too short for them describes a network
   * stream transport without credentials, with an undeclared cost rank. */

  /* FERRY_TRANSPORT_* bits (below). */
  uint32_t capabilities;
  /* The relative cost of a connection and its messages: of the transports that can reach a
   * peer, core tries the lowest rank first. ferry's own: pipe 100, udp 200, tcp 300. 0: not
   * declared, tried after every transport that declares a rank. */
  uint32_t cost_rank;

  /* Optional (NULL when the transport takes no settings): create() with settings, the text the
   * host holds for this transport ("key=value,key=value"; "" for none: the defaults). A plugin
   * may document an environment variable that overrides them for tests; it logs when it does.
   * UV_EINVAL, after logging which setting is wrong and why, when the settings (or the override)
   * are malformed or unknown: no instance is created then. */
  int (*create_with_settings)(const ferry_host_v1* host, uv_loop_t* loop,
                              const ferry_transport_events_v1* events, const char* settings,
                              ferry_transport** out);

  /* Optional (NULL when the transport takes no settings): checks settings text as
   * create_with_settings takes it, without side effects, from any thread. 0, or UV_EINVAL with
   * one sentence that names the setting at fault written to why_out (NUL-terminated, cut at
   * why_cap). */
  int (*check_settings)(const char* settings, char* why_out, size_t why_cap);

  /* Optional (NULL when not offered): the instance's counters, for diagnostics and the admin
   * interface. Writes up to `cap` of them to `out` and returns how many the instance has (call
   * again with more room when that is larger), or a negative error. The order and the names are
   * the same on every call for an instance; names are static, [a-z0-9_]+. Counters whose name
   * begins with "now_" are current levels; the others only grow. On the loop's thread. */
  int (*counters)(ferry_transport* transport, ferry_counter_v1* out, size_t cap);

  /* Optional (NULL when not offered): what the transport measures of connection `conn`'s path
   * (round-trip time, loss), written to `out` (see ferry_connection_info_v1). 0, or UV_ENOTCONN
   * for an unknown or closed connection, UV_EINVAL for a null `out` or a struct_size too small
   * for its first field. On the loop's thread. */
  int (*connection_info)(ferry_transport* transport, ferry_conn_id conn,
                         ferry_connection_info_v1* out);

  /* Optional (NULL when not offered): lets the calling thread, ANY thread, make a round trip on
   * connection `conn` itself, for latency: a thread that sends a request and waits for its reply
   * takes the reply off the socket, instead of being woken by the loop's thread after it read it.
   *
   * The thread takes the connection's reads from the loop (the loop reads nothing of it meanwhile
   * and is not woken by its bytes). Then, when `data` is not NULL, it sends that message as
   * send_any_thread would (after the reads are taken, so the reply cannot reach the loop first).
   * Then it waits at most `timeout_ms` for bytes, and offers the whole messages it reads to
   * `take`, in order, on the calling thread. `take` returns nonzero when it took the message
   * (`data` is valid during the call only), 0 when it did not. The reads go back to the loop at the
   * first message refused, or once the messages read whole are all taken: the refused message
   * and whatever was read past the last one taken are received() by the loop, before anything
   * it reads later, so every message arrives once and in order either way. The wait also ends
   * when `wake_fd` (an eventfd or a pipe of the caller's, which it does not read; -1: none)
   * becomes readable, at the timeout, and when the loop closes the connection (then UV_ENOTCONN,
   * soon). The host must not call destroy() while a thread is inside this function: it wakes
   * such threads through their `wake_fd` first and waits for them to return.
   *
   * Returns how many messages `take` took (0 or more). UV_EBUSY when the loop or another thread
   * holds the connection's reads now (the loop is in the middle of a message, or delivering), and
   * the caller sends and waits as usual; UV_ENOTCONN for an unknown or closed connection;
   * UV_ENOTSUP for a connection this transport does not lend (ferry's stream plugins: those
   * accepted by a listener); the errors of send_any_thread for `data`. With any error, nothing
   * was sent: once `data` is sent the result is what was taken, even when the connection closes
   * during the wait (the loop reports that as usual). Never called once destroy() was called. */
  int (*receive_any_thread)(ferry_transport* transport, ferry_conn_id conn, const uint8_t* data,
                            size_t size, int wake_fd, uint32_t timeout_ms,
                            int (*take)(void* context, const uint8_t* data, size_t size),
                            void* context);
} ferry_transport_v1;

/* capabilities: the transport reaches processes of this host only (pipe); without it, other
 * hosts too. Core never picks it for a peer on another machine, and takes a peer that connected
 * over it to be on this host. */
#define FERRY_TRANSPORT_LOCAL_ONLY 0x1u
/* capabilities: the transport runs over datagrams and makes its messages reliable itself (udp);
 * without it, over a stream socket. */
#define FERRY_TRANSPORT_DATAGRAM 0x2u
/* capabilities: a listener learns each peer's uid, gid and pid from the kernel
 * (ferry_peer_info_v1.has_credentials), so a server may decide by who connected. */
#define FERRY_TRANSPORT_KERNEL_CREDENTIALS 0x4u
/* capabilities: an address names a directory of this host's file system, and listening on ""
 * means the host's per-user runtime directory (ferry_host_v1.runtime_dir); without it, an
 * address is a numeric IP address and an endpoint a port. */
#define FERRY_TRANSPORT_PATH_ADDRESSES 0x8u

/* listen_with_flags: every local user may connect (pipe: the socket file is mode 0666, in a
 * directory they can search). Without it a pipe socket admits its own user only. The listener
 * still learns each peer's uid, gid and pid (ferry_peer_info_v1). */
#define FERRY_LISTEN_ALL_LOCAL_USERS 0x1u

/* The size of a version 1 table before any appended field: the smallest struct_size a host
 * accepts. */
#define FERRY_TRANSPORT_V1_MIN_SIZE offsetof(ferry_transport_v1, send_any_thread)

#ifdef __cplusplus
}
#endif

#endif /* FERRY_PLUGIN_TRANSPORT_H */
