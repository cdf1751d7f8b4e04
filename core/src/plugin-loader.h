// Finds, loads and checks plugins (core/include/ferry/plugin/). Plugins are loaded once per
// process and never unloaded.
//
// Search order: each directory of FERRY_PLUGIN_PATH (colon-separated), then the install
// directory. In each, files named ferry-transport-<name>.so and ferry-security-<name>.so are
// candidates; the first plugin of a kind and name wins, later ones are reported as shadowed.
// A candidate is refused — with a log line naming the file and the reason, and the process goes
// on with the others — when dlopen fails, the entry symbol is missing, the entry returns NULL,
// or the descriptor or its table does not match ABI version 1.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <ferry/plugin/plugin.h>
#include <ferry/plugin/security.h>
#include <ferry/plugin/transport.h>

namespace ferry {
struct RuntimeOptions;
}

namespace ferry::detail {

struct LoadedPlugin {
  std::string path;
  std::string name;
  uint32_t kind;
  std::string description;
  const ferry_plugin_v1* descriptor;
};

struct RefusedPlugin {
  std::string path;
  std::string reason;
};

class PluginRegistry {
public:
  // Loads what the search path offers, the first time; later calls return the same registry.
  static PluginRegistry& instance();

  const std::vector<LoadedPlugin>& loaded() const noexcept { return _loaded; }
  const std::vector<RefusedPlugin>& refused() const noexcept { return _refused; }

  // Where the loader looked, as a sentence an error message can end with: "the plugin loader
  // looked in FERRY_PLUGIN_PATH (…) and in the install directory …".
  std::string describeSearch() const;

  // The transport table of a loaded plugin, or null.
  const ferry_transport_v1* tryFindTransport(const std::string& name) const noexcept;
  // The security provider table of a loaded plugin, or null.
  const ferry_security_v1* tryFindSecurity(const std::string& name) const noexcept;

  // The host services handed to plugins.
  static const ferry_host_v1* host() noexcept;

  // Checks one file as the loader would and loads it if it passes (tests use it to feed the
  // loader broken plugins). Returns the refusal reason, or "" when loaded.
  std::string tryLoad(const std::string& path);

private:
  PluginRegistry();
  void scan(const std::string& directory);

  std::optional<std::string> _pluginPath;  // FERRY_PLUGIN_PATH as it was read; nullopt if unset
  std::vector<LoadedPlugin> _loaded;
  std::vector<RefusedPlugin> _refused;
};

// What a transport is, from its table (the capabilities of core/include/ferry/plugin/transport.h).
// Core decides from these, never from a transport's name.
struct TransportTraits {
  // The rank of a transport whose table declares none: after every declared one.
  static constexpr uint32_t kUndeclaredCostRank = UINT32_MAX;

  bool localOnly = false;          // reaches this host only; a peer over it is on this host
  bool datagram = false;           // over datagrams, rather than a stream socket
  bool kernelCredentials = false;  // a listener learns each peer's uid, gid and pid
  bool pathAddresses = false;      // addresses are directories; "" is the runtime directory
  bool sendAnyThread = false;      // send_any_thread is offered
  bool receiveAnyThread = false;   // receive_any_thread is offered
  bool counters = false;           // counters is offered
  bool connectionInfo = false;     // connection_info is offered
  uint32_t costRank = kUndeclaredCostRank;  // lower is cheaper
};

// The traits `table` declares; for a table too short to declare them (built before they were
// appended), a network stream transport without credentials and with an undeclared rank.
TransportTraits traitsOf(const ferry_transport_v1& table) noexcept;

// Creates an instance of `plugin`'s transport with its settings from
// RuntimeOptions::transportSettings (create_with_settings; create() when it takes none). Returns
// what the plugin returned: 0, or a negative error (logged, naming the transport). On the loop's
// thread; never throws.
int createTransport(const LoadedPlugin& plugin, const ferry_host_v1* host, uv_loop_t* loop,
                    const ferry_transport_events_v1* events, const RuntimeOptions& options,
                    ferry_transport** out) noexcept;

// Checks RuntimeOptions::transportSettings against the loaded transports before any starts.
// Throws invalidArgument naming the transport and the setting when a transport refuses its
// settings, or takes none and is given some. A name that is no loaded transport is logged as a
// warning (an optional plugin may be missing from a host) and otherwise ignored.
void checkTransportSettings(const RuntimeOptions& options);

// The per-user runtime directory (created 0700 on first use; refused if another user owns it).
const std::string& runtimeDirectory();

}  // namespace ferry::detail
