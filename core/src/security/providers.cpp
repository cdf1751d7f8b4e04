#include "providers.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include <ferry/error.h>
#include <ferry/plugin/transport.h>

#include "../log.h"

namespace ferry::detail::security {

namespace {

constexpr uint32_t kLocalTransport =
    FERRY_TRANSPORT_LOCAL_ONLY | FERRY_TRANSPORT_KERNEL_CREDENTIALS;

// The transports a runtime with these options starts, with their capability bits.
std::vector<std::pair<std::string, uint32_t>> runningTransports(const RuntimeOptions& options) {
  std::vector<std::pair<std::string, uint32_t>> out;
  if (!options.outOfProcess) return out;
  for (const LoadedPlugin& p : PluginRegistry::instance().loaded()) {
    if (p.kind != FERRY_PLUGIN_TRANSPORT) continue;
    if (!options.transports.empty() &&
        std::find(options.transports.begin(), options.transports.end(), p.name) ==
            options.transports.end()) {
      continue;
    }
    TransportTraits traits = traitsOf(*static_cast<const ferry_transport_v1*>(p.descriptor->table));
    uint32_t bits = (traits.localOnly ? FERRY_TRANSPORT_LOCAL_ONLY : 0u) |
                    (traits.kernelCredentials ? FERRY_TRANSPORT_KERNEL_CREDENTIALS : 0u) |
                    (traits.pathAddresses ? FERRY_TRANSPORT_PATH_ADDRESSES : 0u);
    out.emplace_back(p.name, bits);
  }
  return out;
}

}  // namespace

bool Provider::kernelProtected() const noexcept {
  return (table->capabilities & FERRY_SECURITY_KERNEL_PROTECTED) != 0;
}

bool Provider::fits(uint32_t transportCapabilities) const noexcept {
  if ((table->capabilities & FERRY_SECURITY_LOCAL_TRANSPORT_ONLY) == 0) return true;
  return (transportCapabilities & kLocalTransport) == kLocalTransport;
}

SecurityLevel Provider::highest() const noexcept {
  uint32_t caps = table->capabilities;
  if ((caps & (FERRY_SECURITY_PRIVACY | FERRY_SECURITY_KERNEL_PROTECTED)) != 0) {
    return SecurityLevel::privacy;
  }
  return SecurityLevel::integrity;
}

SecurityLevel effectiveMinimum(const RuntimeOptions& options) noexcept {
  if (options.minimumLevel) return *options.minimumLevel;
  return options.security.empty() ? SecurityLevel::none : SecurityLevel::integrity;
}

Providers::Providers(const RuntimeOptions& options) : _minimum(effectiveMinimum(options)) {
  FERRY_REQUIRE(_minimum == SecurityLevel::none || !options.security.empty(),
                Errc::invalidArgument,
                "RuntimeOptions::minimumLevel is {}, and RuntimeOptions::security configures no "
                "provider that could give a connection that level; add a provider or lower the "
                "minimum",
                toString(_minimum));
  const PluginRegistry& registry = PluginRegistry::instance();
  try {
    for (const auto& [name, settings] : options.security) {
      const ferry_security_v1* table = registry.tryFindSecurity(name);
      FERRY_REQUIRE(table != nullptr, Errc::invalidArgument,
                    "RuntimeOptions::security names '{}', which is no loaded security plugin "
                    "(ferry-security-{}.so): {}",
                    name, name, registry.describeSearch());
      for (const Provider& p : _list) {
        FERRY_REQUIRE(p.name != name, Errc::invalidArgument,
                      "RuntimeOptions::security names '{}' twice; keep one entry", name);
      }
      char why[512] = {};
      int rc = table->check_settings(settings.c_str(), why, sizeof why);
      FERRY_REQUIRE(rc == 0, Errc::invalidArgument,
                    "the {} security provider refuses its settings '{}' in "
                    "RuntimeOptions::security: {}; correct them (the README's security section "
                    "lists each provider's)",
                    name, settings, why[0] != 0 ? why : table->strerror(rc));
      Provider provider{name, table, nullptr};
      rc = table->acquire_credentials(PluginRegistry::host(), settings.c_str(),
                                      FERRY_SECURITY_ROLE_CLIENT | FERRY_SECURITY_ROLE_SERVER,
                                      &provider.credentials, why, sizeof why);
      FERRY_REQUIRE(rc == 0 && provider.credentials != nullptr, Errc::invalidArgument,
                    "the {} security provider cannot load what its settings '{}' in "
                    "RuntimeOptions::security name: {}",
                    name, settings, why[0] != 0 ? why : table->strerror(rc));
      _list.push_back(provider);
    }
    // Every transport that runs must have a provider that fits it, or its connections could not
    // reach the minimum.
    if (_minimum != SecurityLevel::none) {
      for (const auto& [transport, bits] : runningTransports(options)) {
        bool fits = std::any_of(_list.begin(), _list.end(),
                                [&, b = bits](const Provider& p) { return p.fits(b); });
        FERRY_REQUIRE(fits, Errc::invalidArgument,
                      "RuntimeOptions::security configures no provider that works over the {} "
                      "transport ({} works over the pipe only, since it relies on the kernel's "
                      "peer credentials); add a network provider such as psk or tls, or leave {} "
                      "out of RuntimeOptions::transports",
                      transport, _list.empty() ? std::string("local") : _list.front().name,
                      transport);
      }
    }
  } catch (...) {
    for (Provider& p : _list) p.table->free_credentials(p.credentials);
    throw;
  }
}

Providers::~Providers() {
  for (Provider& p : _list) p.table->free_credentials(p.credentials);
}

const Provider* Providers::find(uint8_t id) const noexcept {
  for (const Provider& p : _list) {
    if (p.id() == id) return &p;
  }
  return nullptr;
}

bool isLoopbackAddress(const std::string& address) noexcept {
  if (address == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

void checkSecureByDefault(const RuntimeOptions& options) {
  if (!options.security.empty() || options.allowInsecureNetwork) return;
  bool network = false;
  for (const auto& [name, bits] : runningTransports(options)) {
    network = network || (bits & FERRY_TRANSPORT_PATH_ADDRESSES) == 0;
  }
  if (!network) return;
  for (const std::string& address : options.listenAddresses) {
    FERRY_REQUIRE(isLoopbackAddress(address), Errc::invalidArgument,
                  "RuntimeOptions::listenAddresses has '{}', which is not a loopback address, and "
                  "RuntimeOptions::security configures no provider, so anyone who reaches it "
                  "could call this process's objects unauthenticated and read its calls; "
                  "configure a provider (psk or tls), or set "
                  "RuntimeOptions::allowInsecureNetwork = true to listen in the clear",
                  address);
  }
}

}  // namespace ferry::detail::security
