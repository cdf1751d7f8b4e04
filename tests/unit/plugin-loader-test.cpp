// The plugin loader refuses what does not fit, names the file and the reason, and goes on.
//   plugin-loader-test -- <broken plugin directory>
#define BOOST_TEST_MODULE plugin_loader
#include <boost/test/unit_test.hpp>

#include <ferry/ferry.h>

#include "plugin-loader.h"

using ferry::detail::PluginRegistry;

namespace {

std::string brokenDir() {
  auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_REQUIRE_MESSAGE(suite.argc >= 2, "usage: plugin-loader-test -- <broken plugin dir>");
  return suite.argv[1];
}

void checkRefused(const std::string& file, const std::string& expected) {
  PluginRegistry& registry = PluginRegistry::instance();
  size_t loadedBefore = registry.loaded().size();
  std::string path = brokenDir() + "/" + file;
  std::string reason = registry.tryLoad(path);
  BOOST_TEST_MESSAGE(file << ": " << reason);
  BOOST_CHECK_MESSAGE(reason.find(expected) != std::string::npos,
                      file << " refused for '" << reason << "', expected '" << expected << "'");
  BOOST_CHECK_EQUAL(registry.loaded().size(), loadedBefore);
  bool listed = false;
  for (const auto& r : ferry::Runtime::refusedPlugins()) listed = listed || r.path == path;
  BOOST_CHECK_MESSAGE(listed, file << " is listed among the refused plugins");
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_build_trees_transports_are_loaded_and_listed) {
  std::vector<std::string> names;
  for (const auto& p : ferry::Runtime::plugins()) {
    if (p.kind == "transport") names.push_back(p.name);
  }
  BOOST_CHECK(std::find(names.begin(), names.end(), "tcp") != names.end());
  BOOST_CHECK(std::find(names.begin(), names.end(), "pipe") != names.end());
  BOOST_CHECK(PluginRegistry::instance().tryFindTransport("tcp") != nullptr);
}

BOOST_AUTO_TEST_CASE(an_incompatible_abi_version_is_refused) {
  checkRefused("ferry-transport-badabi.so", "ABI version 2");
}

BOOST_AUTO_TEST_CASE(a_missing_entry_symbol_is_refused) {
  checkRefused("ferry-transport-nosymbol.so", "missing symbol ferry_plugin_entry_v1");
}

BOOST_AUTO_TEST_CASE(a_failing_init_is_refused) {
  checkRefused("ferry-transport-failinit.so", "refused to initialize");
}

BOOST_AUTO_TEST_CASE(a_table_missing_a_function_is_refused) {
  checkRefused("ferry-transport-badtable.so", "lacks a function");
}

BOOST_AUTO_TEST_CASE(a_descriptor_naming_another_plugin_is_refused) {
  checkRefused("ferry-transport-badname.so", "does not match its file name");
}

BOOST_AUTO_TEST_CASE(a_file_that_is_not_a_shared_object_is_refused) {
  checkRefused("meson.build", "file name is not");
}

BOOST_AUTO_TEST_CASE(a_runtime_still_starts_with_the_good_plugins) {
  ferry::Runtime runtime;
  auto bindings = runtime.bindings();
  BOOST_CHECK_GE(bindings.size(), 2u);
  BOOST_CHECK(bindings.front().rfind("pipe:", 0) == 0);  // cheapest first
}
