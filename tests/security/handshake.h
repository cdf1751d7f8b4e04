// For the providers' Boost.Test suites: the provider modules as core loads them, and one
// handshake between a client and a server of one provider, from settings to the end of the
// exchange.
#pragma once

#include <memory>
#include <string>

#include "provider-harness.h"

namespace ferry::test {

// The table of the security provider `name` the plugin loader found on FERRY_PLUGIN_PATH (the
// build tree's modules). Fails the test when there is none.
const ferry_security_v1& loadedSecurityProvider(const std::string& name);

// Credentials for each end (the test fails when either is refused), a client context for
// `target`, a server context, and the exchange between them; kept for the test's checks.
struct Handshake {
  const ferry_security_v1& provider;
  Acquired clientCredentials;
  Acquired serverCredentials;
  std::unique_ptr<SecurityContext> client;
  std::unique_ptr<SecurityContext> server;
  Exchange x;

  Handshake(const std::string& providerName, const std::string& clientSettings,
            const std::string& serverSettings, const std::string& target);

  // The principal `end` reports for its peer (the test fails when query_peer does).
  std::string principalSeenBy(SecurityContext& end);
};

}  // namespace ferry::test
