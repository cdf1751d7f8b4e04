/* The ferry plugin ABI, version 1: what every dynamically loaded plugin exports.
 *
 * A plugin is a shared module named ferry-transport-<name>.so or ferry-security-<name>.so that
 * exports one C function:
 *
 *     const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1* host);
 *
 * The host calls it once, right after dlopen, on the thread that loads plugins. It returns a
 * pointer to a static descriptor (never freed), or NULL to refuse to load (after logging why
 * through host->log). Rules of the ABI:
 *   - every struct begins with its own size (struct_size) and the ABI version it was built for;
 *     a reader uses a field only if struct_size covers it, so fields are only ever appended;
 *   - host services (logging, the runtime directory) are handed in through ferry_host_v1;
 *   - no C++ exception ever crosses it (plugins catch everything at each entry point);
 *   - plugins are never unloaded (no dlclose), so their static data may be referenced freely.
 * This header compiles on its own, as C or C++. */
#ifndef FERRY_PLUGIN_PLUGIN_H
#define FERRY_PLUGIN_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_PLUGIN_ABI_VERSION 1u

enum ferry_log_level {
  FERRY_LOG_ERROR = 0,
  FERRY_LOG_WARN = 1,
  FERRY_LOG_INFO = 2,
  FERRY_LOG_DEBUG = 3
};

enum ferry_plugin_kind {
  FERRY_PLUGIN_TRANSPORT = 1,
  FERRY_PLUGIN_SECURITY = 2
};

/* Services the host gives every plugin. Valid for the life of the process. */
typedef struct ferry_host_v1 {
  uint32_t struct_size;
  uint32_t abi_version;
  void* context;
  /* Thread-safe. `plugin` is the plugin's name; `message` one line without a newline. */
  void (*log)(void* context, int level, const char* plugin, const char* message);
  /* A per-user directory (mode 0700) for sockets and similar runtime files, without a
   * trailing slash, e.g. "/run/user/1000/ferry". */
  const char* runtime_dir;
} ferry_host_v1;

/* What ferry_plugin_entry_v1 returns. */
typedef struct ferry_plugin_v1 {
  uint32_t struct_size;
  uint32_t abi_version;
  uint32_t kind;            /* enum ferry_plugin_kind */
  const char* name;         /* the protseq or provider name: [a-z0-9]{1,16} */
  const char* description;  /* one line for logs and `ferry plugins` */
  const void* table;        /* kind-specific: a ferry_transport_v1* (FERRY_PLUGIN_TRANSPORT, transport.h)
                           * or a ferry_security_v1* (FERRY_PLUGIN_SECURITY, security.h) */
} ferry_plugin_v1;

typedef const ferry_plugin_v1* (*ferry_plugin_entry_v1_fn)(const ferry_host_v1* host);

#define FERRY_PLUGIN_ENTRY_V1_SYMBOL "ferry_plugin_entry_v1"

#ifdef __cplusplus
}
#endif

#endif /* FERRY_PLUGIN_PLUGIN_H */
