#include "registration.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "../plugin-loader.h"

namespace ferry::detail {

StringBindingData ferrydDefaultBinding() { return {"pipe", "/run/ferry", "ferryd"}; }

StringBindingData ferrydSetting(const RuntimeOptions& options) {
  std::string setting = "RuntimeOptions::resolver";
  std::string text = options.resolver;
  if (const char* env = std::getenv("FERRY_RESOLVER")) {
    setting = "FERRY_RESOLVER";
    text = env;
  }
  if (text.empty() || text == "none") return {};
  if (text == "auto") {
    StringBindingData d = ferrydDefaultBinding();
    return access((d.address + "/" + d.endpoint).c_str(), F_OK) == 0 ? d : StringBindingData{};
  }
  std::optional<StringBindingData> parsed = tryParseBinding(text);
  if (!parsed || parsed->endpoint.empty()) {
    FERRY_FAIL(Errc::invalidArgument,
               "{} is '{}', which is not a string binding: name ferryd's pipe like "
               "pipe:/run/ferry[ferryd], or write auto (that pipe when it exists) or none",
               setting, text);
  }
  StringBindingData binding = std::move(*parsed);
  // ferryd takes registrations over a transport that tells it who registers (the kernel's
  // credentials of the peer) and is named by a path: the pipe.
  const ferry_transport_v1* table = PluginRegistry::instance().tryFindTransport(binding.protseq);
  TransportTraits traits = table != nullptr ? traitsOf(*table) : TransportTraits{};
  bool fits = table == nullptr ? binding.protseq == "pipe"
                               : traits.kernelCredentials && traits.pathAddresses;
  if (!fits || binding.address.empty() || binding.address[0] != '/') {
    FERRY_FAIL(Errc::invalidArgument,
               "{} is '{}', but ferryd takes registrations over its pipe only: name its socket's "
               "directory and name, like pipe:/run/ferry[ferryd], or write auto or none",
               setting, text);
  }
  return binding;
}

FerrydRegistration::FerrydRegistration(StringBindingData ferryd)
    : _ferryd(std::move(ferryd)), _key(_ferryd.protseq.empty() ? "" : bindingText(_ferryd)) {}

bool FerrydRegistration::reached() noexcept {
  _retryMs = kFirstRetryMs;
  return std::exchange(_down, false);
}

uint64_t FerrydRegistration::lost(bool& firstTime) noexcept {
  firstTime = !_down;
  _down = true;
  uint64_t delay = _retryMs;
  _retryMs = std::min(delay * 2, kMaxRetryMs);
  return delay;
}

}  // namespace ferry::detail
