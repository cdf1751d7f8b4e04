/* Security-provider plugins, ABI version 1 (FERRY_PLUGIN_SECURITY; ferry_plugin_v1.table points
 * to a ferry_security_v1).
 *
 * A provider authenticates the two ends of a link and exports secrets; it never touches ORPC
 * frames. ferry core runs the exchange of tokens (a bind exchange before the first call on every
 * link, on every transport, reliable and in order), keeps the cleartext negotiation (which
 * providers and levels each side offered and chose), and protects every later frame with its one
 * record layer, keyed from export_secret() with that negotiation as the context: tampering with
 * the negotiation changes the keys, so the first protected frame fails and a downgrade is caught.
 *
 * The model is SSPI's: credentials per process and role, a context per link, a loop of step()
 * calls exchanging opaque tokens until both ends report FERRY_SECURITY_OK.
 *
 * Threading: credentials are created and freed on any one thread at a time, and are then used
 * from any thread; a context is used by one thread at a time (core serializes each link's
 * exchange). No function blocks (no network or disk I/O inside step(); files named in the
 * settings are read by acquire_credentials). No C++ exception crosses the ABI.
 *
 * Errors are negative numbers; the table's `strerror` names them. A provider that fails writes
 * one sentence for the local log to `why` (NUL-terminated, cut at why_cap): what failed and the
 * setting to change. The peer is never told why: core answers every failure of the exchange with
 * one generic refusal, so no failure cause is an oracle.
 *
 * This header compiles on its own, as C or C++. */
#ifndef FERRY_PLUGIN_SECURITY_H
#define FERRY_PLUGIN_SECURITY_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ferry_security_credentials ferry_security_credentials; /* opaque to the host */
typedef struct ferry_security_context ferry_security_context;         /* opaque to the host */

/* Protection levels, lowest first. Core compares them as numbers. */
enum ferry_security_level {
  FERRY_SECURITY_LEVEL_NONE = 1,      /* no protection: frames as the transport carries them */
  FERRY_SECURITY_LEVEL_INTEGRITY = 2, /* authenticated peers; frames carry an AEAD tag */
  FERRY_SECURITY_LEVEL_PRIVACY = 3    /* and the frames' contents are encrypted */
};

/* Provider ids, as they appear in the cleartext negotiation and in OBJREF security bindings. */
enum ferry_security_provider_id {
  FERRY_SECURITY_PROVIDER_NONE = 0,
  FERRY_SECURITY_PROVIDER_LOCAL = 1,
  FERRY_SECURITY_PROVIDER_PSK = 2,
  FERRY_SECURITY_PROVIDER_TLS = 3
};

/* step() results (>= 0); errors are negative. */
enum ferry_security_status {
  FERRY_SECURITY_OK = 0,       /* the context is established; send the output token if any */
  FERRY_SECURITY_CONTINUE = 1  /* send the output token and call step() with the peer's answer */
};

/* Roles a credentials handle serves. */
#define FERRY_SECURITY_ROLE_CLIENT 0x1u /* init_context: the end that opened the link */
#define FERRY_SECURITY_ROLE_SERVER 0x2u /* accept_context: the end that accepted it */

/* capabilities: */
/* The provider authenticates peers whose frames the record layer then protects at integrity. */
#define FERRY_SECURITY_INTEGRITY 0x1u
/* ... and at privacy. */
#define FERRY_SECURITY_PRIVACY 0x2u
/* Both ends are authenticated (without it, only the server is: a TLS server that takes no
 * client certificate, say — the client is then anonymous). */
#define FERRY_SECURITY_MUTUAL 0x4u
/* The provider works only on transports with FERRY_TRANSPORT_KERNEL_CREDENTIALS and
 * FERRY_TRANSPORT_LOCAL_ONLY (the pipe): core refuses it on any other at configuration time. */
#define FERRY_SECURITY_LOCAL_TRANSPORT_ONLY 0x8u
/* The transport itself keeps the frames private and unaltered (the kernel, for a unix socket):
 * the provider exports no secret, core applies no record layer, and the achieved level is
 * privacy. */
#define FERRY_SECURITY_KERNEL_PROTECTED 0x10u

/* What the transport knows about the link a context is for. Strings valid during the call. */
typedef struct ferry_security_link_v1 {
  uint32_t struct_size;
  uint32_t transport_capabilities; /* FERRY_TRANSPORT_* of the link's transport */
  const char* address;             /* the peer's printable address, as ferry_peer_info_v1 */
  int has_credentials;             /* 1 when uid/gid/pid are the kernel's, for the far end */
  uint32_t uid;
  uint32_t gid;
  int32_t pid; /* a hint for logs only: pids are reused, never authorize by one */
} ferry_security_link_v1;

/* Who the far end of an established context is. */
typedef struct ferry_security_peer_v1 {
  uint32_t struct_size;
  /* Provider-qualified, printable, stable for the same peer: "uid:1000" (local), the key id
   * (psk), the name the certificate's SAN maps to through the configured table (tls). "" when
   * the peer is anonymous (a TLS client without a certificate). */
  char principal[256];
  uint32_t level; /* enum ferry_security_level the provider achieved for this link */
  int has_uid;    /* local: the peer's uid and gid from the kernel */
  uint32_t uid;
  uint32_t gid;
} ferry_security_peer_v1;

typedef struct ferry_security_v1 {
  uint32_t struct_size;
  uint32_t abi_version;

  uint32_t provider_id;  /* enum ferry_security_provider_id */
  uint32_t capabilities; /* FERRY_SECURITY_* bits */
  /* The largest token step() writes; core gives step() an output buffer this large. */
  size_t max_token_size;

  /* Checks settings text ("key=value,key=value"), as acquire_credentials takes it, without side
   * effects (no file is read). 0, or a negative error with the sentence in why. */
  int (*check_settings)(const char* settings, char* why, size_t why_cap);

  /* Reads the settings (keys, certificates, tables) once for the given roles. */
  int (*acquire_credentials)(const ferry_host_v1* host, const char* settings, uint32_t roles,
                             ferry_security_credentials** out, char* why, size_t why_cap);
  void (*free_credentials)(ferry_security_credentials* credentials);

  /* A client context for a link. `target` is the principal the server must prove it is ("" : any
   * principal the credentials trust; for local: "" or "uid:N"). */
  int (*init_context)(ferry_security_credentials* credentials, const char* target,
                      const ferry_security_link_v1* link, ferry_security_context** out,
                      char* why, size_t why_cap);
  /* A server context for a link. */
  int (*accept_context)(ferry_security_credentials* credentials,
                        const ferry_security_link_v1* link, ferry_security_context** out,
                        char* why, size_t why_cap);

  /* One step of the exchange. The client's first call passes in = NULL, in_size = 0. Writes the
   * token to send (possibly none: *out_size = 0) and returns FERRY_SECURITY_CONTINUE or
   * FERRY_SECURITY_OK, or a negative error (the context is then dead). A server returns OK only
   * once the client is authenticated as far as the provider goes (TLS: SSL_is_init_finished). */
  int (*step)(ferry_security_context* context, const uint8_t* in, size_t in_size, uint8_t* out,
              size_t out_cap, size_t* out_size, char* why, size_t why_cap);

  /* Once step() returned OK: the far end. */
  int (*query_peer)(ferry_security_context* context, ferry_security_peer_v1* out);

  /* Once step() returned OK, unless the provider is FERRY_SECURITY_KERNEL_PROTECTED: `size`
   * bytes of secret shared by both ends of this context only, bound to `label` and `context`
   * (core passes its negotiation transcript hash), e.g. TLS's exporter. Both ends get the same
   * bytes for the same label and context, and different bytes for anything else. */
  int (*export_secret)(ferry_security_context* context, const char* label,
                       const uint8_t* binding, size_t binding_size, uint8_t* out, size_t size);

  void (*free_context)(ferry_security_context* context);

  /* A static, human-readable text for an error this provider returned. */
  const char* (*strerror)(int error);
} ferry_security_v1;

#define FERRY_SECURITY_V1_MIN_SIZE sizeof(ferry_security_v1)

#ifdef __cplusplus
}
#endif

#endif /* FERRY_PLUGIN_SECURITY_H */
