// The plugin loader refuses what does not fit, names the file and the reason, and goes on; it
// reads what transports declare (their traits) and hands them their settings.
//   plugin-loader-test -- <broken plugin directory>
#define BOOST_TEST_MODULE plugin_loader
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

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

BOOST_AUTO_TEST_CASE(the_build_trees_security_providers_are_loaded_and_listed) {
  bool listed = false;
  for (const auto& p : ferry::Runtime::plugins()) {
    listed = listed || (p.kind == "security" && p.name == "local");
  }
  BOOST_CHECK(listed);
  const ferry_security_v1* local = PluginRegistry::instance().tryFindSecurity("local");
  BOOST_REQUIRE(local != nullptr);
  BOOST_CHECK_EQUAL(local->provider_id, static_cast<uint32_t>(FERRY_SECURITY_PROVIDER_LOCAL));
  BOOST_CHECK(PluginRegistry::instance().tryFindSecurity("tcp") == nullptr);
  BOOST_CHECK(PluginRegistry::instance().tryFindTransport("local") == nullptr);
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

// --- What transports declare, and the choice made from it. ---

namespace {

using ferry::detail::TransportTraits;
using ferry::detail::traitsOf;

TransportTraits traitsOfLoaded(const std::string& name) {
  const ferry_transport_v1* table = PluginRegistry::instance().tryFindTransport(name);
  BOOST_REQUIRE_MESSAGE(table != nullptr, "transport " << name << " is loaded");
  return traitsOf(*table);
}

}  // namespace

BOOST_AUTO_TEST_CASE(ferrys_transports_declare_what_they_are_and_rank_pipe_udp_tcp) {
  TransportTraits pipe = traitsOfLoaded("pipe");
  TransportTraits udp = traitsOfLoaded("udp");
  TransportTraits tcp = traitsOfLoaded("tcp");
  BOOST_TEST(pipe.localOnly);
  BOOST_TEST(pipe.kernelCredentials);
  BOOST_TEST(pipe.pathAddresses);
  BOOST_TEST(!pipe.datagram);
  BOOST_TEST(pipe.sendAnyThread);
  BOOST_TEST(!udp.localOnly);
  BOOST_TEST(udp.datagram);
  BOOST_TEST(!udp.kernelCredentials);
  BOOST_TEST(!udp.pathAddresses);
  BOOST_TEST(udp.sendAnyThread);
  BOOST_TEST(!tcp.localOnly);
  BOOST_TEST(!tcp.datagram);
  BOOST_TEST(!tcp.kernelCredentials);
  BOOST_TEST(!tcp.pathAddresses);
  BOOST_TEST(tcp.sendAnyThread);
  BOOST_TEST(pipe.costRank < udp.costRank);
  BOOST_TEST(udp.costRank < tcp.costRank);
  BOOST_TEST(tcp.costRank < TransportTraits::kUndeclaredCostRank);
}

BOOST_AUTO_TEST_CASE(a_table_from_before_the_traits_is_a_network_stream_transport_ranked_last) {
  ferry_transport_v1 table = *PluginRegistry::instance().tryFindTransport("pipe");
  table.struct_size = offsetof(ferry_transport_v1, capabilities);
  TransportTraits old = traitsOf(table);
  BOOST_TEST(!old.localOnly, "the capabilities beyond struct_size are not read");
  BOOST_TEST(!old.datagram);
  BOOST_TEST(!old.kernelCredentials);
  BOOST_TEST(old.sendAnyThread);
  BOOST_TEST(old.costRank == TransportTraits::kUndeclaredCostRank);
  table.struct_size = sizeof table;
  table.cost_rank = 0;
  BOOST_TEST(traitsOf(table).costRank == TransportTraits::kUndeclaredCostRank,
             "a rank of 0 is no rank declared");
  BOOST_TEST(traitsOf(table).localOnly);
}

BOOST_AUTO_TEST_CASE(a_runtime_refuses_transport_settings_a_transport_refuses_naming_the_key) {
  auto refused = [](const std::string& protseq, const std::string& settings,
                    const std::string& expected) {
    ferry::RuntimeOptions options;
    options.transportSettings[protseq] = settings;
    BOOST_CHECK_EXCEPTION(ferry::Runtime runtime(options), ferry::Error,
                          [&](const ferry::Error& e) {
                            BOOST_TEST_MESSAGE(e.message());
                            return e.code() == ferry::Errc::invalidArgument &&
                                   e.message().find(expected) != std::string::npos;
                          });
  };
  refused("udp", "idle_timeout_ms=2000,idle_timout_ms=5",
          "the udp transport refuses RuntimeOptions::transportSettings[\"udp\"] = "
          "'idle_timeout_ms=2000,idle_timout_ms=5': 'idle_timout_ms' is no udp setting");
  refused("udp", "pmtu=maybe", "pmtu=maybe: the value is not a non-negative integer");
  refused("tcp", "nodelay=0", "'nodelay' is no stream transport setting");
  // Good settings, and settings for a transport that is not loaded here (logged), start.
  ferry::RuntimeOptions options;
  options.transportSettings["udp"] = "idle_timeout_ms=2000";
  options.transportSettings["tcp"] = "";
  options.transportSettings["sctp"] = "streams=4";
  ferry::Runtime runtime(options);
  BOOST_TEST(!runtime.bindings().empty());
}

BOOST_AUTO_TEST_CASE(transport_counters_show_what_a_transport_refused) {
  ferry::RuntimeOptions options;
  options.transportSettings["tcp"] = "max_message_size=1000";
  ferry::Runtime runtime(options);
  std::string port;
  for (const std::string& binding : runtime.bindings()) {
    if (binding.rfind("tcp:127.0.0.1[", 0) == 0) {
      port = binding.substr(binding.find('[') + 1, binding.find(']') - binding.find('[') - 1);
    }
  }
  BOOST_REQUIRE_MESSAGE(!port.empty(), "the runtime listens on tcp 127.0.0.1");
  auto counter = [&](const std::string& name) -> uint64_t {
    for (const ferry::TransportCounters& transport : runtime.transportCounters()) {
      if (transport.transport != "tcp") continue;
      for (const auto& [key, value] : transport.counters) {
        if (key == name) return value;
      }
    }
    return UINT64_MAX;
  };
  BOOST_REQUIRE(counter("closed_oversized") == 0u);
  // A peer announces a message larger than the setting allows.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  const uint8_t header[4] = {0x88, 0x13, 0, 0};  // 5000
  BOOST_REQUIRE(send(fd, header, sizeof(header), MSG_NOSIGNAL) == 4);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (counter("closed_oversized") == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  close(fd);
  BOOST_TEST(counter("closed_oversized") == 1u);
  BOOST_TEST(counter("connections_accepted") >= 1u);
}
