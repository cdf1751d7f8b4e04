#include "handshake.h"

#include <boost/test/unit_test.hpp>

#include "plugin-loader.h"

namespace ferry::test {

const ferry_security_v1& loadedSecurityProvider(const std::string& name) {
  const auto& registry = ferry::detail::PluginRegistry::instance();
  for (const auto& plugin : registry.loaded()) {
    if (plugin.kind == FERRY_PLUGIN_SECURITY && plugin.name == name) {
      return *static_cast<const ferry_security_v1*>(plugin.descriptor->table);
    }
  }
  BOOST_FAIL("no security provider '" + name + "' was loaded: " + registry.describeSearch());
  throw std::logic_error("unreachable");
}

Handshake::Handshake(const std::string& providerName, const std::string& clientSettings,
                     const std::string& serverSettings, const std::string& target)
    : provider(loadedSecurityProvider(providerName)) {
  clientCredentials = acquire(provider, clientSettings, FERRY_SECURITY_ROLE_CLIENT);
  BOOST_REQUIRE_MESSAGE(clientCredentials.status == 0, clientCredentials.why);
  serverCredentials = acquire(provider, serverSettings, FERRY_SECURITY_ROLE_SERVER);
  BOOST_REQUIRE_MESSAGE(serverCredentials.status == 0, serverCredentials.why);
  std::string why;
  client = clientCredentials.credentials->client(target, why);
  BOOST_REQUIRE_MESSAGE(client, why);
  server = serverCredentials.credentials->server(why);
  BOOST_REQUIRE_MESSAGE(server, why);
  x = runExchange(*client, *server);
}

std::string Handshake::principalSeenBy(SecurityContext& end) {
  ferry_security_peer_v1 peer{};
  BOOST_REQUIRE_EQUAL(end.queryPeer(peer), 0);
  return peer.principal;
}

}  // namespace ferry::test
