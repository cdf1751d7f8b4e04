// A fourth transport needs no change in core: with the test-only `loopback` transport (local-only,
// ranked between pipe and udp; tests/plugins/loopback) loaded by both processes, an import from a
// process of this host that offers no pipe takes it, ahead of udp and tcp, by what its table
// declares. (That a local-only transport is never taken for another host is asserted without a
// second host in tests/unit/transport-choice-test.)
//   fourth-transport-test -- <ferry-test-peer>
// FERRY_PLUGIN_PATH (from meson) names the loopback transport's directory too.
#define BOOST_TEST_MODULE fourth_transport
#include <boost/test/unit_test.hpp>

#include <sstream>

#include "child-process.h"
#include "fixture.h"
#include "servants.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Probe;

namespace {

std::string peerPath() {
  return testArgument(1, "usage: fourth-transport-test -- <ferry-test-peer>");
}

bool startsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

// A peer serving over `transports`; its Probe's OBJREF.
class Peer {
public:
  explicit Peer(const std::string& transports)
      : _child({peerPath(), "--transports", transports, "--listen", "127.0.0.1"}) {
    auto announced = readAnnouncements(_child);
    if (announced.count("probe") != 0) probe = objRefFromText(announced["probe"]);
    BOOST_REQUIRE_MESSAGE(!probe.empty(), "the peer did not start");
  }

  void finish() { finishPeer(_child); }

  pid_t pid() const { return _child.pid(); }

  ObjRefBytes probe;

private:
  Child _child;
};

bool loopbackLoaded() {
  for (const auto& p : Runtime::plugins()) {
    if (p.name == "loopback") return true;
  }
  return false;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(choice, RuntimeFixture)

BOOST_AUTO_TEST_CASE(an_import_from_this_host_takes_the_cheapest_transport_its_table_declares) {
  BOOST_REQUIRE_MESSAGE(loopbackLoaded(), "the loopback test transport is not on FERRY_PLUGIN_PATH");
  Peer peer("tcp,udp,loopback");
  auto mta = rt().joinMta();
  {
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_MESSAGE(startsWith(transportOf(probe.get()), "loopback:127.0.0.1["),
                        transportOf(probe.get()));
    BOOST_CHECK_EQUAL(probe->threadId(), static_cast<uint64_t>(peer.pid()));
    std::vector<uint8_t> data(64 * 1024, 0x5a);
    BOOST_CHECK(probe->echo(data) == data);
    // The others stay reachable when asked for by name.
    setTransport(probe.get(), "tcp");
    BOOST_CHECK_MESSAGE(startsWith(transportOf(probe.get()), "tcp:127.0.0.1["),
                        transportOf(probe.get()));
    BOOST_CHECK_EQUAL(probe->threadId(), static_cast<uint64_t>(peer.pid()));
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_cheaper_transport_wins_over_the_fourth_one) {
  Peer peer("tcp,loopback,pipe");
  auto mta = rt().joinMta();
  {
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_MESSAGE(startsWith(transportOf(probe.get()), "pipe:"), transportOf(probe.get()));
    probe->nothing();
  }
  peer.finish();
}

BOOST_AUTO_TEST_SUITE_END()
