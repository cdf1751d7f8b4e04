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
#include <ferry/plugin/transport.h>

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

// The per-user runtime directory (created 0700 on first use; refused if another user owns it).
const std::string& runtimeDirectory();

}  // namespace ferry::detail
