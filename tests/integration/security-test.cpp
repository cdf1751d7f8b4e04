// Security between two processes (issue 12): the bind exchange over the pipe with the local
// provider, what the servant sees of its caller, the access check and the least level, and the
// configurations the Runtime refuses.
//   security-test -- <ferry-security-peer>
#define BOOST_TEST_MODULE security
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <openssl/rand.h>

#include "child-process.h"
#include "fixture.h"
#include "pki.h"
#include "testing.ferry.h"

namespace ferry {
// For Boost.Test's messages.
std::ostream& operator<<(std::ostream& out, Errc code) { return out << static_cast<int>(code); }
}  // namespace ferry

using namespace ferry;
using namespace ferry::test;
using testing::iface::Probe;

namespace {

std::string peerPath() { return testArgument(1, "usage: security-test -- <ferry-security-peer>"); }

std::string ourPrincipal() { return "uid:" + std::to_string(geteuid()); }

// A ferry-security-peer serving over the pipe with `arguments`; its Probe's OBJREF.
class Peer {
public:
  explicit Peer(std::vector<std::string> arguments) : _child(withProgram(std::move(arguments))) {
    auto announced = readAnnouncements(_child);
    if (announced.count("probe") != 0) probe = objRefFromText(announced["probe"]);
    BOOST_REQUIRE_MESSAGE(!probe.empty(), "the peer did not start");
  }

  // Ends the peer; how many calls its servant ran and how many it refused accessDenied.
  std::pair<int, int> finish() {
    _child.closeInput();
    std::string line;
    int ran = -1, denied = -1;
    while (_child.readLine(line, std::chrono::seconds(20))) {
      if (std::sscanf(line.c_str(), "ran %d denied %d", &ran, &denied) == 2) break;
    }
    BOOST_CHECK_EQUAL(_child.wait(std::chrono::seconds(20)), 0);
    return {ran, denied};
  }

  ObjRefBytes probe;

private:
  static std::vector<std::string> withProgram(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), peerPath());
    return arguments;
  }

  Child _child;
};

// Options of a client over `transport` with the test-only testkey provider, asking for `least`.
RuntimeOptions withTestKey(const std::string& transport,
                           std::optional<SecurityLevel> least = std::nullopt) {
  RuntimeOptions options;
  options.transports = {transport};
  options.security = {{"testkey", ""}};
  options.minimumLevel = least;
  return options;
}

RuntimeOptions pipeOnly(bool local, const std::string& settings = "") {
  RuntimeOptions options;
  options.transports = {"pipe"};
  if (local) options.security = {{"local", settings}};
  return options;
}

std::string text(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

// Runs `call` and returns the code of the ferry::Error it threw (ok when none).
Errc codeOf(const std::function<void()>& call, std::string* message = nullptr) {
  try {
    call();
  } catch (const Error& e) {
    if (message != nullptr) *message = e.message();
    return e.code();
  }
  return Errc::ok;
}

// A call from a client with `options` to a peer started with `peerArguments` is answered
// accessDenied with a message holding `says`, and the peer's servant never ran.
void expectDenied(std::vector<std::string> peerArguments, const RuntimeOptions& options,
                  const std::string& says) {
  Peer peer(std::move(peerArguments));
  {
    RuntimeFixture fixture(options);
    auto mta = fixture.rt().joinMta();
    std::string message;
    Errc code = codeOf([&] { unmarshalInterface<Probe>(peer.probe)->count(); }, &message);
    BOOST_CHECK_EQUAL(code, Errc::accessDenied);
    BOOST_CHECK_MESSAGE(message.find(says) != std::string::npos, message);
  }
  auto [ran, denied] = peer.finish();
  BOOST_CHECK_EQUAL(ran, 0);
  BOOST_CHECK_GE(denied, 1);
}

}  // namespace

BOOST_AUTO_TEST_CASE(over_the_pipe_with_the_local_provider_the_servant_sees_our_uid_at_privacy) {
  Peer peer({"--transport", "pipe", "--security", "local"});
  {
    RuntimeFixture fixture(pipeOnly(true));
    auto mta = fixture.rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "local|" + ourPrincipal() + "|privacy");
    BOOST_CHECK_EQUAL(Runtime::stats().bindsRefused, 0);
  }
  auto [ran, denied] = peer.finish();
  BOOST_CHECK_EQUAL(ran, 1);
  BOOST_CHECK_EQUAL(denied, 0);
}

BOOST_AUTO_TEST_CASE(without_providers_the_servant_sees_an_anonymous_caller_at_none) {
  Peer peer({"--transport", "pipe"});
  {
    RuntimeFixture fixture(pipeOnly(false));
    auto mta = fixture.rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "||none");
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 1);
}

BOOST_AUTO_TEST_CASE(an_access_check_that_denies_the_caller_answers_access_denied_and_the_servant_never_runs) {
  expectDenied({"--transport", "pipe", "--security", "local", "--deny", ourPrincipal()},
               pipeOnly(true), "RuntimeOptions::accessCheck");
}

BOOST_AUTO_TEST_CASE(a_caller_below_the_servers_least_level_is_refused_and_the_servant_never_runs) {
  // The peer runs the local provider (least level: integrity); this process has none, so its
  // link stays at none.
  expectDenied({"--transport", "pipe", "--security", "local"}, pipeOnly(false), "level none");
}

BOOST_AUTO_TEST_CASE(a_client_refuses_a_server_of_another_uid_than_it_expects) {
  Peer peer({"--transport", "pipe", "--security", "local"});
  {
    RuntimeFixture fixture(
        pipeOnly(true, "server_uid=" + std::to_string(geteuid() == 0 ? 1 : geteuid() - 1)));
    auto mta = fixture.rt().joinMta();
    int64_t refusedBefore = Runtime::stats().bindsRefused;
    std::string message;
    Errc code = codeOf([&] { unmarshalInterface<Probe>(peer.probe)->count(); }, &message);
    BOOST_CHECK_EQUAL(code, Errc::unavailable);
    BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::security") != std::string::npos, message);
    BOOST_CHECK_GE(Runtime::stats().bindsRefused - refusedBefore, 1);
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 0);
}

BOOST_AUTO_TEST_CASE(over_tcp_and_udp_calls_run_sealed_at_the_level_the_client_asks_for) {
  // The test-only testkey provider (tests/plugins/testkey) on both sides.
  for (std::string transport : {"tcp", "udp"}) {
    for (SecurityLevel level : {SecurityLevel::integrity, SecurityLevel::privacy}) {
      BOOST_TEST_CONTEXT(transport << " at " << toString(level)) {
        Peer peer({"--transport", transport, "--security", "testkey"});
        {
          RuntimeFixture fixture(withTestKey(transport, level));
          auto mta = fixture.rt().joinMta();
          int64_t droppedBefore = Runtime::stats().sealedFramesDropped;
          Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
          BOOST_CHECK_EQUAL(text(probe->echo({})),
                            "testkey|test:fixed|" + std::string(toString(level)));
          std::vector<uint8_t> data(200 * 1024);
          for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31);
          BOOST_CHECK(probe->echo(data) == data);
          BOOST_CHECK_EQUAL(Runtime::stats().sealedFramesDropped - droppedBefore, 0);
        }
        BOOST_CHECK_EQUAL(peer.finish().first, 2);
      }
    }
  }
}

// The real providers end to end: what the servant sees is the principal the provider
// authenticated, at the level the record layer applied.
BOOST_AUTO_TEST_CASE(the_psk_and_tls_providers_authenticate_calls_between_processes_at_privacy) {
  TempDir dir;
  unsigned char secret[32];
  BOOST_REQUIRE_EQUAL(RAND_bytes(secret, sizeof secret), 1);
  std::string hex;
  for (unsigned char b : secret) hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
  std::string keys = dir.write("keys", "client-1 " + hex + "\n");

  TestCa ca("ferry test CA");
  Identity server = ca.issue({"server", "DNS:server.test"});
  Identity client = ca.issue({"client", "URI:spiffe://test/client"});
  std::string common = "ca=" + dir.write("ca.pem", ca.certPem()) + ",principals=" +
                       dir.write("principals", "dns:server.test server\nuri:spiffe://test/client client\n");
  std::string serverTls = common + ",cert=" + dir.write("server.pem", server.certPem) +
                          ",key=" + dir.write("server.key", server.keyPem);
  std::string clientTls = common + ",cert=" + dir.write("client.pem", client.certPem) +
                          ",key=" + dir.write("client.key", client.keyPem);

  struct Case {
    std::string provider, serverSettings, clientSettings, expected;
  };
  const Case cases[] = {
      {"psk", "keys=" + keys, "keys=" + keys, "psk|client-1|privacy"},
      {"tls", serverTls, clientTls, "tls|client|privacy"},
  };
  for (const Case& c : cases) {
    for (std::string transport : {"tcp", "udp"}) {
      BOOST_TEST_CONTEXT(c.provider << " over " << transport) {
        Peer peer({"--transport", transport, "--security", c.provider, "--settings",
                   c.serverSettings});
        {
          RuntimeOptions options;
          options.transports = {transport};
          options.security = {{c.provider, c.clientSettings}};
          options.minimumLevel = SecurityLevel::privacy;
          RuntimeFixture fixture(options);
          auto mta = fixture.rt().joinMta();
          RuntimeStats before = Runtime::stats();
          Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
          BOOST_CHECK_EQUAL(text(probe->echo({})), c.expected);
          std::vector<uint8_t> data(64 * 1024, 0x5a);
          BOOST_CHECK(probe->echo(data) == data);
          BOOST_CHECK_EQUAL(Runtime::stats().sealedFramesDropped - before.sealedFramesDropped, 0);
          BOOST_CHECK_EQUAL(Runtime::stats().bindsRefused - before.bindsRefused, 0);
        }
        BOOST_CHECK_EQUAL(peer.finish().first, 2);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_server_raises_the_level_to_its_own_minimum) {
  Peer peer({"--transport", "tcp", "--security", "testkey", "--minimum", "privacy"});
  {
    RuntimeFixture fixture(withTestKey("tcp"));
    auto mta = fixture.rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "testkey|test:fixed|privacy");
  }
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_proxy_blanket_takes_its_calls_over_a_connection_of_the_level_it_asks_for) {
  Peer peer({"--transport", "tcp", "--security", "testkey"});
  {
    RuntimeFixture fixture(withTestKey("tcp"));
    auto mta = fixture.rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "testkey|test:fixed|integrity");
    BOOST_CHECK(queryProxyBlanket(probe.get()) == SecurityLevel::none);
    setProxyBlanket(probe.get(), SecurityLevel::privacy);
    BOOST_CHECK(queryProxyBlanket(probe.get()) == SecurityLevel::privacy);
    BOOST_CHECK_MESSAGE(transportOf(probe.get()).find("+privacy") != std::string::npos,
                        transportOf(probe.get()));
    BOOST_CHECK_EQUAL(text(probe->echo({})), "testkey|test:fixed|privacy");
    setProxyBlanket(probe.get(), SecurityLevel::none);
    BOOST_CHECK_EQUAL(text(probe->echo({})), "testkey|test:fixed|integrity");
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 3);
}

BOOST_AUTO_TEST_CASE(a_proxy_blanket_above_none_without_a_provider_fails_unavailable) {
  Peer peer({"--transport", "pipe"});
  {
    RuntimeFixture fixture(pipeOnly(false));
    auto mta = fixture.rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(peer.probe);
    std::string message;
    Errc code = codeOf([&] {
      setProxyBlanket(probe.get(), SecurityLevel::integrity);
      probe->count();
    }, &message);
    BOOST_CHECK_EQUAL(code, Errc::unavailable);
    BOOST_CHECK_MESSAGE(message.find("integrity") != std::string::npos, message);
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 0);
}

BOOST_AUTO_TEST_CASE(a_client_that_asks_for_a_provider_the_server_lacks_gets_unavailable_naming_the_settings) {
  Peer peer({"--transport", "tcp"});
  {
    RuntimeFixture fixture(withTestKey("tcp"));
    auto mta = fixture.rt().joinMta();
    std::string message;
    Errc code = codeOf([&] { unmarshalInterface<Probe>(peer.probe)->count(); }, &message);
    BOOST_CHECK_EQUAL(code, Errc::unavailable);
    BOOST_CHECK_MESSAGE(message.find("refused") != std::string::npos &&
                            message.find("RuntimeOptions::security") != std::string::npos,
                        message);
  }
  BOOST_CHECK_EQUAL(peer.finish().first, 0);
}

BOOST_AUTO_TEST_CASE(the_local_provider_is_refused_on_tcp_when_the_runtime_is_made) {
  RuntimeOptions options;
  options.transports = {"tcp"};
  options.security = {{"local", ""}};
  std::string message;
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::security") != std::string::npos &&
                          message.find("tcp") != std::string::npos,
                      message);
}

BOOST_AUTO_TEST_CASE(a_listener_on_a_non_loopback_address_without_provider_is_refused) {
  RuntimeOptions options;
  options.transports = {"tcp"};
  options.listenAddresses = {"192.0.2.1"};
  std::string message;
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::allowInsecureNetwork") != std::string::npos &&
                          message.find("192.0.2.1") != std::string::npos,
                      message);
  // Loopback and the pipe need no provider.
  options.listenAddresses = {"127.0.0.1", "::1"};
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }), Errc::ok);
}

BOOST_AUTO_TEST_CASE(an_unknown_provider_or_bad_settings_are_refused_naming_the_setting) {
  RuntimeOptions options = pipeOnly(false);
  options.security = {{"nosuchprovider", ""}};
  std::string message;
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("nosuchprovider") != std::string::npos, message);
  options.security = {{"local", "allow_uids=abc"}};
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("allow_uids") != std::string::npos, message);
  options.security = {};
  options.minimumLevel = SecurityLevel::integrity;
  BOOST_CHECK_EQUAL(codeOf([&] { Runtime runtime(options); }, &message), Errc::invalidArgument);
  BOOST_CHECK_MESSAGE(message.find("RuntimeOptions::minimumLevel") != std::string::npos, message);
}
