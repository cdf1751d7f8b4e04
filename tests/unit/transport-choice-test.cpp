// Which binding an importer uses (core/src/transport-choice.h), decided from what the transports
// of this process declare: ferry's three, and the test-only `loopback` transport, which core knows
// nothing of but its table (local-only, ranked between pipe and udp).
//   transport-choice-test -- <the loopback transport's module>
#define BOOST_TEST_MODULE transport_choice
#include <boost/test/unit_test.hpp>

#include <ferry/ferry.h>

#include "plugin-loader.h"
#include "transport-choice.h"

using ferry::detail::PluginRegistry;
using ferry::detail::StringBindingData;
using ferry::detail::TransportTraits;
using ferry::detail::traitsOf;

namespace {

std::string loopbackPath() {
  auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_REQUIRE_MESSAGE(suite.argc >= 2,
                        "usage: transport-choice-test -- <ferry-transport-loopback.so>");
  return suite.argv[1];
}

TransportTraits traitsOfLoaded(const std::string& name) {
  const ferry_transport_v1* table = PluginRegistry::instance().tryFindTransport(name);
  BOOST_REQUIRE_MESSAGE(table != nullptr, "transport " << name << " is loaded");
  return traitsOf(*table);
}

// The protseqs of `bindings`, in order.
std::vector<std::string> protseqs(const std::vector<StringBindingData>& bindings) {
  std::vector<std::string> out;
  for (const auto& b : bindings) out.push_back(b.protseq);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_fourth_transport_is_chosen_by_what_it_declares_never_by_its_name) {
  std::string loopback = loopbackPath();
  if (PluginRegistry::instance().tryFindTransport("loopback") == nullptr) {
    BOOST_REQUIRE_EQUAL(PluginRegistry::instance().tryLoad(loopback), "");
  }
  TransportTraits traits = traitsOfLoaded("loopback");
  BOOST_TEST(traits.localOnly);
  BOOST_TEST(traits.costRank > traitsOfLoaded("pipe").costRank);
  BOOST_TEST(traits.costRank < traitsOfLoaded("udp").costRank);

  // This process runs every transport it loaded.
  ferry::detail::RunningTransports running =
      [](const std::string& protseq) -> std::optional<TransportTraits> {
    const ferry_transport_v1* table = PluginRegistry::instance().tryFindTransport(protseq);
    if (table == nullptr) return std::nullopt;
    return traitsOf(*table);
  };
  using ferry::MarshalContext;
  using ferry::detail::usableBindings;
  // An exporter of this host without a pipe, its bindings in no particular order; and one
  // protseq nobody here runs.
  std::vector<StringBindingData> offered{{"tcp", "127.0.0.1", "7001"},
                                         {"sctp", "127.0.0.1", "7004"},
                                         {"loopback", "127.0.0.1", "7002"},
                                         {"udp", "127.0.0.1", "7003"}};
  using Names = std::vector<std::string>;
  BOOST_TEST(protseqs(usableBindings(offered, MarshalContext::local, "", running)) ==
                 (Names{"loopback", "udp", "tcp"}),
             boost::test_tools::per_element());
  BOOST_TEST(protseqs(usableBindings(offered, MarshalContext::differentMachine, "", running)) ==
                 (Names{"udp", "tcp"}),
             boost::test_tools::per_element());
  BOOST_TEST(usableBindings(offered, MarshalContext::differentMachine, "loopback", running).empty(),
             "a local-only transport is not used for another host even when named");
  BOOST_TEST(protseqs(usableBindings(offered, MarshalContext::local, "tcp", running)) ==
                 (Names{"tcp"}),
             boost::test_tools::per_element());
  offered.push_back({"pipe", "/run/user/0/ferry", "sock"});
  BOOST_TEST(protseqs(usableBindings(offered, MarshalContext::local, "", running)) ==
                 (Names{"pipe", "loopback", "udp", "tcp"}),
             boost::test_tools::per_element());
  BOOST_TEST(protseqs(usableBindings(offered, MarshalContext::differentMachine, "", running)) ==
                 (Names{"udp", "tcp"}),
             boost::test_tools::per_element());
}
