#include "plugin-loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <ferry/error.h>
#include <ferry/runtime.h>

#include "log.h"

#ifndef FERRY_PLUGIN_INSTALL_DIR
#define FERRY_PLUGIN_INSTALL_DIR "/usr/local/lib/ferry/plugins"
#endif

namespace ferry::detail {

namespace {

void hostLog(void*, int level, const char* plugin, const char* message) {
  const char* p = plugin != nullptr ? plugin : "?";
  const char* m = message != nullptr ? message : "";
  switch (level) {
    case FERRY_LOG_ERROR:
      FERRY_LOG(error, "plugin " << p << ": " << m);
      break;
    case FERRY_LOG_WARN:
      FERRY_LOG(warn, "plugin " << p << ": " << m);
      break;
    case FERRY_LOG_INFO:
      FERRY_LOG(info, "plugin " << p << ": " << m);
      break;
    default:
      FERRY_LOG(debug, "plugin " << p << ": " << m);
      break;
  }
}

bool ensurePrivateDirectory(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return false;
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  // Sockets in a directory another user controls could be swapped under us.
  if (st.st_uid != geteuid()) return false;
  if ((st.st_mode & 0077) != 0 && chmod(path.c_str(), 0700) != 0) return false;
  return true;
}

std::string chooseRuntimeDirectory() {
  std::vector<std::string> candidates;
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg == '/') {
    candidates.push_back(std::string(xdg) + "/ferry");
  }
  candidates.push_back("/run/user/" + std::to_string(geteuid()) + "/ferry");
  candidates.push_back("/tmp/ferry-" + std::to_string(geteuid()));
  for (const std::string& dir : candidates) {
    if (ensurePrivateDirectory(dir)) return dir;
  }
  FERRY_LOG(error, "no usable private runtime directory (tried $XDG_RUNTIME_DIR/ferry, "
                   "/run/user/<uid>/ferry, /tmp/ferry-<uid>); pipe endpoints will fail");
  return candidates.back();
}

// "ferry-transport-tcp.so" → kind transport, name "tcp".
bool parseFileName(const std::string& file, uint32_t& kind, std::string& name) {
  static const std::pair<const char*, uint32_t> kPrefixes[] = {
      {"ferry-transport-", FERRY_PLUGIN_TRANSPORT}, {"ferry-security-", FERRY_PLUGIN_SECURITY}};
  if (file.size() < 4 || file.compare(file.size() - 3, 3, ".so") != 0) return false;
  for (auto [prefix, k] : kPrefixes) {
    size_t n = std::strlen(prefix);
    if (file.compare(0, n, prefix) == 0) {
      kind = k;
      name = file.substr(n, file.size() - n - 3);
      return !name.empty();
    }
  }
  return false;
}

bool validName(const char* name) {
  if (name == nullptr) return false;
  size_t n = std::strlen(name);
  if (n == 0 || n > 16) return false;
  return std::all_of(name, name + n, [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

// Whether `table` is long enough to hold the appended field that ends `fieldEnd` bytes in.
bool covers(const ferry_transport_v1& table, size_t fieldEnd) noexcept {
  return table.struct_size >= fieldEnd;
}

#define FERRY_TABLE_HAS(table, field) \
  covers(table, offsetof(ferry_transport_v1, field) + sizeof(ferry_transport_v1::field))

// Why a transport table is unusable, or "".
std::string checkTransportTable(const ferry_transport_v1* t) {
  if (t == nullptr) return "the descriptor has no transport table";
  if (t->struct_size < FERRY_TRANSPORT_V1_MIN_SIZE) {
    return "transport table is " + std::to_string(t->struct_size) + " bytes, version 1 needs " +
           std::to_string(FERRY_TRANSPORT_V1_MIN_SIZE);
  }
  if (t->abi_version != FERRY_PLUGIN_ABI_VERSION) {
    return "transport table is ABI version " + std::to_string(t->abi_version) + ", expected 1";
  }
  if (t->create == nullptr || t->destroy == nullptr || t->listen == nullptr ||
      t->connect == nullptr || t->send == nullptr || t->close == nullptr ||
      t->check_binding == nullptr || t->strerror == nullptr) {
    return "transport table lacks a function";
  }
  if (t->max_message_size < 1024) return "transport max_message_size below 1 KiB";
  return "";
}

// Why a security table is unusable, or "".
std::string checkSecurityTable(const ferry_security_v1* t) {
  if (t == nullptr) return "the descriptor has no security table";
  if (t->struct_size < FERRY_SECURITY_V1_MIN_SIZE) {
    return "security table is " + std::to_string(t->struct_size) + " bytes, version 1 needs " +
           std::to_string(FERRY_SECURITY_V1_MIN_SIZE);
  }
  if (t->abi_version != FERRY_PLUGIN_ABI_VERSION) {
    return "security table is ABI version " + std::to_string(t->abi_version) + ", expected 1";
  }
  if (t->check_settings == nullptr || t->acquire_credentials == nullptr ||
      t->free_credentials == nullptr || t->init_context == nullptr ||
      t->accept_context == nullptr || t->step == nullptr || t->query_peer == nullptr ||
      t->export_secret == nullptr || t->free_context == nullptr || t->strerror == nullptr) {
    return "security table lacks a function";
  }
  if (t->provider_id == FERRY_SECURITY_PROVIDER_NONE || t->provider_id > 255) {
    return "security provider id " + std::to_string(t->provider_id) + " is not 1 to 255";
  }
  if ((t->capabilities & (FERRY_SECURITY_INTEGRITY | FERRY_SECURITY_PRIVACY |
                          FERRY_SECURITY_KERNEL_PROTECTED)) == 0) {
    return "security provider declares no protection level";
  }
  if (t->max_token_size == 0 || t->max_token_size > 65536) {
    return "security provider max_token_size is not 1 to 65536 bytes";
  }
  return "";
}

}  // namespace

const std::string& runtimeDirectory() {
  static const std::string dir = chooseRuntimeDirectory();
  return dir;
}

const ferry_host_v1* PluginRegistry::host() noexcept {
  static const ferry_host_v1 services = [] {
    ferry_host_v1 h{};
    h.struct_size = sizeof(ferry_host_v1);
    h.abi_version = FERRY_PLUGIN_ABI_VERSION;
    h.context = nullptr;
    h.log = &hostLog;
    h.runtime_dir = runtimeDirectory().c_str();
    return h;
  }();
  return &services;
}

PluginRegistry& PluginRegistry::instance() {
  static PluginRegistry registry;
  return registry;
}

PluginRegistry::PluginRegistry() {
  std::vector<std::string> directories;
  if (const char* path = std::getenv("FERRY_PLUGIN_PATH")) {
    _pluginPath = path;
    std::string list = path;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      if (end > start) directories.push_back(list.substr(start, end - start));
      start = end + 1;
    }
  }
  directories.push_back(FERRY_PLUGIN_INSTALL_DIR);
  for (const std::string& dir : directories) scan(dir);
  for (const LoadedPlugin& p : _loaded) {
    FERRY_LOG(info, "loaded " << (p.kind == FERRY_PLUGIN_TRANSPORT ? "transport" : "security")
                              << " plugin '" << p.name << "' from " << p.path);
  }
}

void PluginRegistry::scan(const std::string& directory) {
  DIR* dir = opendir(directory.c_str());
  if (dir == nullptr) return;  // a missing directory is normal (e.g. nothing installed)
  std::vector<std::string> files;
  while (dirent* entry = readdir(dir)) {
    uint32_t kind;
    std::string name;
    if (parseFileName(entry->d_name, kind, name)) files.push_back(entry->d_name);
  }
  closedir(dir);
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) tryLoad(directory + "/" + file);
}

std::string PluginRegistry::tryLoad(const std::string& path) {
  auto refuse = [&](std::string reason) {
    FERRY_LOG(warn, "plugin " << path << " refused: " << reason);
    _refused.push_back({path, reason});
    return reason;
  };
  std::string file = path.substr(path.rfind('/') + 1);
  uint32_t kind = 0;
  std::string name;
  if (!parseFileName(file, kind, name)) {
    return refuse("file name is not ferry-transport-<name>.so or ferry-security-<name>.so");
  }
  for (const LoadedPlugin& p : _loaded) {
    if (p.kind == kind && p.name == name) {
      FERRY_LOG(info, "plugin " << path << " shadowed by " << p.path);
      return "shadowed by " + p.path;
    }
  }
  // RTLD_LOCAL: plugins do not see each other's symbols. Never dlclose'd once loaded.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return refuse(std::string("dlopen failed: ") + (err != nullptr ? err : "unknown error"));
  }
  auto entry = reinterpret_cast<ferry_plugin_entry_v1_fn>(dlsym(handle, FERRY_PLUGIN_ENTRY_V1_SYMBOL));
  if (entry == nullptr) {
    dlclose(handle);
    return refuse(std::string("missing symbol ") + FERRY_PLUGIN_ENTRY_V1_SYMBOL);
  }
  const ferry_plugin_v1* descriptor = entry(host());
  std::string problem;
  if (descriptor == nullptr) {
    problem = "its entry point refused to initialize";
  } else if (descriptor->struct_size < sizeof(ferry_plugin_v1)) {
    problem = "descriptor is " + std::to_string(descriptor->struct_size) + " bytes, version 1 needs " +
              std::to_string(sizeof(ferry_plugin_v1));
  } else if (descriptor->abi_version != FERRY_PLUGIN_ABI_VERSION) {
    problem = "built for plugin ABI version " + std::to_string(descriptor->abi_version) +
              ", this ferry speaks version 1";
  } else if (descriptor->kind != kind) {
    problem = "its descriptor's kind does not match its file name";
  } else if (!validName(descriptor->name) || name != descriptor->name) {
    problem = "its descriptor's name does not match its file name";
  } else if (kind == FERRY_PLUGIN_TRANSPORT) {
    problem = checkTransportTable(static_cast<const ferry_transport_v1*>(descriptor->table));
  } else if (kind == FERRY_PLUGIN_SECURITY) {
    problem = checkSecurityTable(static_cast<const ferry_security_v1*>(descriptor->table));
  }
  if (!problem.empty()) {
    // Refused before any of its code is used further: safe to unload.
    dlclose(handle);
    return refuse(problem);
  }
  _loaded.push_back({path, name, kind,
                     descriptor->description != nullptr ? descriptor->description : "",
                     descriptor});
  return "";
}

std::string PluginRegistry::describeSearch() const {
  std::string out = "the plugin loader looked in FERRY_PLUGIN_PATH (";
  out += _pluginPath ? "'" + *_pluginPath + "'" : std::string("not set");
  out += ") and in the install directory " FERRY_PLUGIN_INSTALL_DIR;
  if (!_refused.empty()) {
    out += ", and refused " + std::to_string(_refused.size()) +
           " plugin file(s) there (`ferry plugins` says why)";
  }
  return out;
}

const ferry_transport_v1* PluginRegistry::tryFindTransport(const std::string& name) const noexcept {
  for (const LoadedPlugin& p : _loaded) {
    if (p.kind == FERRY_PLUGIN_TRANSPORT && p.name == name) {
      return static_cast<const ferry_transport_v1*>(p.descriptor->table);
    }
  }
  return nullptr;
}

const ferry_security_v1* PluginRegistry::tryFindSecurity(const std::string& name) const noexcept {
  for (const LoadedPlugin& p : _loaded) {
    if (p.kind == FERRY_PLUGIN_SECURITY && p.name == name) {
      return static_cast<const ferry_security_v1*>(p.descriptor->table);
    }
  }
  return nullptr;
}

TransportTraits traitsOf(const ferry_transport_v1& table) noexcept {
  TransportTraits traits;
  traits.sendAnyThread =
      FERRY_TABLE_HAS(table, send_any_thread) && table.send_any_thread != nullptr;
  traits.receiveAnyThread =
      FERRY_TABLE_HAS(table, receive_any_thread) && table.receive_any_thread != nullptr;
  traits.counters = FERRY_TABLE_HAS(table, counters) && table.counters != nullptr;
  traits.connectionInfo =
      FERRY_TABLE_HAS(table, connection_info) && table.connection_info != nullptr;
  if (FERRY_TABLE_HAS(table, cost_rank)) {
    uint32_t bits = table.capabilities;
    traits.localOnly = (bits & FERRY_TRANSPORT_LOCAL_ONLY) != 0;
    traits.datagram = (bits & FERRY_TRANSPORT_DATAGRAM) != 0;
    traits.kernelCredentials = (bits & FERRY_TRANSPORT_KERNEL_CREDENTIALS) != 0;
    traits.pathAddresses = (bits & FERRY_TRANSPORT_PATH_ADDRESSES) != 0;
    if (table.cost_rank != 0) traits.costRank = table.cost_rank;
  }
  return traits;
}

namespace {

// The settings RuntimeOptions gives transport `name`, or null.
const std::string* settingsFor(const RuntimeOptions& options, const std::string& name) {
  auto it = options.transportSettings.find(name);
  return it != options.transportSettings.end() ? &it->second : nullptr;
}

bool takesSettings(const ferry_transport_v1& table) noexcept {
  return FERRY_TABLE_HAS(table, check_settings) && table.create_with_settings != nullptr &&
         table.check_settings != nullptr;
}

}  // namespace

int createTransport(const LoadedPlugin& plugin, const ferry_host_v1* host, uv_loop_t* loop,
                    const ferry_transport_events_v1* events, const RuntimeOptions& options,
                    ferry_transport** out) noexcept {
  const auto* table = static_cast<const ferry_transport_v1*>(plugin.descriptor->table);
  int rc = 0;
  const std::string* settings = settingsFor(options, plugin.name);
  if (takesSettings(*table)) {
    const char* text = settings != nullptr ? settings->c_str() : "";
    rc = table->create_with_settings(host, loop, events, text, out);
  } else if (settings != nullptr && !settings->empty()) {
    // checkTransportSettings refused this before the hub started; a table is static.
    rc = UV_EINVAL;
  } else {
    rc = table->create(host, loop, events, out);
  }
  if (rc < 0) {
    FERRY_LOG(error, "transport " << plugin.name << " failed to start: " << table->strerror(rc));
  }
  return rc;
}

void checkTransportSettings(const RuntimeOptions& options) {
  const PluginRegistry& registry = PluginRegistry::instance();
  for (const auto& [name, settings] : options.transportSettings) {
    const ferry_transport_v1* table = registry.tryFindTransport(name);
    if (table == nullptr) {
      FERRY_LOG(warn, "RuntimeOptions::transportSettings names '"
                          << name << "', which is no loaded transport plugin; its settings are "
                          << "unused (`ferry plugins` lists the loaded ones)");
      continue;
    }
    if (!takesSettings(*table)) {
      FERRY_REQUIRE(settings.empty(), Errc::invalidArgument,
                    "RuntimeOptions::transportSettings gives the {} transport '{}', but it takes "
                    "no settings; remove its entry",
                    name, settings);
      continue;
    }
    char why[512] = {};
    int rc = table->check_settings(settings.c_str(), why, sizeof why);
    FERRY_REQUIRE(rc == 0, Errc::invalidArgument,
                  "the {} transport refuses RuntimeOptions::transportSettings[\"{}\"] = '{}': {}; "
                  "correct that setting (the README's configuration section lists them)",
                  name, name, settings, why[0] != 0 ? why : table->strerror(rc));
  }
}

}  // namespace ferry::detail
