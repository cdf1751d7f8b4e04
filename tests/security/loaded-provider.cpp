#include <boost/test/unit_test.hpp>

#include "plugin-loader.h"
#include "provider-harness.h"

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

}  // namespace ferry::test
