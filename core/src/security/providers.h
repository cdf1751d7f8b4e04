// The security providers a process configured (RuntimeOptions::security), with their
// credentials, and the configuration checks made before any transport starts.
#pragma once

#include <string>
#include <vector>

#include <ferry/plugin/security.h>
#include <ferry/runtime.h>

#include "../plugin-loader.h"

namespace ferry::detail::security {

struct Provider {
  std::string name;
  const ferry_security_v1* table = nullptr;
  ferry_security_credentials* credentials = nullptr;

  uint8_t id() const noexcept { return static_cast<uint8_t>(table->provider_id); }
  bool kernelProtected() const noexcept;
  // Whether it can run over a transport with these FERRY_TRANSPORT_* capabilities.
  bool fits(uint32_t transportCapabilities) const noexcept;
  // The highest level it can give a link.
  SecurityLevel highest() const noexcept;
};

class Providers {
public:
  // Checks and loads RuntimeOptions::security (reading the files its settings name). Throws
  // invalidArgument naming the setting.
  explicit Providers(const RuntimeOptions& options);
  Providers(const Providers&) = delete;
  ~Providers();

  const std::vector<Provider>& list() const noexcept { return _list; }
  bool empty() const noexcept { return _list.empty(); }
  // RuntimeOptions::minimumLevel, its default applied.
  SecurityLevel minimum() const noexcept { return _minimum; }
  const Provider* find(uint8_t id) const noexcept;

private:
  std::vector<Provider> _list;
  SecurityLevel _minimum = SecurityLevel::none;
};

// RuntimeOptions::minimumLevel with its default (integrity with providers, else none).
SecurityLevel effectiveMinimum(const RuntimeOptions& options) noexcept;

// Refuses (invalidArgument naming RuntimeOptions::allowInsecureNetwork) a process that would
// listen on an address other than loopback with no security provider.
void checkSecureByDefault(const RuntimeOptions& options);

// Whether `address` (as RuntimeOptions::listenAddresses holds it) is a loopback address.
bool isLoopbackAddress(const std::string& address) noexcept;

}  // namespace ferry::detail::security
