// The psk security provider (security/psk), loaded from the build tree as core loads it and
// driven through its C ABI, and its key files as `ferry keygen` writes them. Covers §C 26 of
// reference/udp-and-security.md: a wrong key and an unknown key id fail the same way; replayed
// tokens fail.
#define BOOST_TEST_MODULE psk security provider
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include <sys/stat.h>

#include "key-file.h"
#include "pki.h"
#include "handshake.h"

using namespace ferry::test;

namespace {

const Bytes kBinding = {9, 8, 7};
const std::string kKeyA = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const std::string kKeyB = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

struct Keys {
  TempDir dir;

  // keys=<a file with these lines, mode 0600>
  std::string keys(const std::string& name, const std::string& lines, unsigned mode = 0600) {
    return "keys=" + dir.write(name, lines, mode);
  }
};

// A handshake of the psk provider.
struct PskHandshake : Handshake {
  PskHandshake(const std::string& clientSettings, const std::string& serverSettings,
               const std::string& target = "")
      : Handshake("psk", clientSettings, serverSettings, target) {}
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(psk, Keys)

BOOST_AUTO_TEST_CASE(the_module_declares_the_psk_provider_with_mutual_authentication_and_privacy) {
  const ferry_security_v1& psk = loadedSecurityProvider("psk");
  BOOST_TEST(psk.provider_id == FERRY_SECURITY_PROVIDER_PSK);
  BOOST_TEST((psk.capabilities & FERRY_SECURITY_MUTUAL) != 0u);
  BOOST_TEST((psk.capabilities & FERRY_SECURITY_PRIVACY) != 0u);
}

BOOST_AUTO_TEST_CASE(a_handshake_with_the_same_key_completes_and_both_ends_export_the_same_secret) {
  PskHandshake h(keys("client", "build-17 " + kKeyA + "\n"),
              keys("server", "# clients\nother " + kKeyB + "\nbuild-17 " + kKeyA + "\n"));
  BOOST_REQUIRE_MESSAGE(h.x.established(), h.x.clientWhy + " / " + h.x.serverWhy);
  Bytes atClient;
  Bytes atServer;
  Bytes otherLabel;
  BOOST_REQUIRE_EQUAL(h.client->exportSecret("record", kBinding, atClient), 0);
  BOOST_REQUIRE_EQUAL(h.server->exportSecret("record", kBinding, atServer), 0);
  BOOST_REQUIRE_EQUAL(h.server->exportSecret("record", Bytes{9, 8, 6}, otherLabel), 0);
  BOOST_TEST(atClient == atServer);
  BOOST_TEST(atClient != otherLabel);
  // The principal is the key id, at both ends.
  BOOST_TEST(h.principalSeenBy(*h.server) == "build-17");
  BOOST_TEST(h.principalSeenBy(*h.client) == "build-17");
  BOOST_TEST(h.x.serverTokens.back().empty());  // nothing after the handshake: no tickets
}

BOOST_AUTO_TEST_CASE(two_handshakes_with_the_same_key_export_different_secrets) {
  std::string client = keys("client", "a " + kKeyA + "\n");
  std::string server = keys("server", "a " + kKeyA + "\n");
  PskHandshake first(client, server);
  PskHandshake second(client, server);
  BOOST_REQUIRE(first.x.established() && second.x.established());
  Bytes one;
  Bytes two;
  BOOST_REQUIRE_EQUAL(first.client->exportSecret("record", kBinding, one), 0);
  BOOST_REQUIRE_EQUAL(second.client->exportSecret("record", kBinding, two), 0);
  BOOST_TEST(one != two);  // fresh (EC)DHE shares: forward secrecy, no replayable session
}

BOOST_AUTO_TEST_CASE(a_wrong_key_and_an_unknown_key_id_fail_the_same_way) {
  std::string server = keys("server", "alice " + kKeyA + "\n");
  PskHandshake wrongKey(keys("wrong", "alice " + kKeyB + "\n"), server);
  PskHandshake unknownId(keys("unknown", "mallory " + kKeyB + "\n"), server);
  for (Handshake* h : {&wrongKey, &unknownId}) {
    BOOST_TEST_MESSAGE("server: " << h->x.serverWhy);
    BOOST_TEST(!h->x.established());
    BOOST_TEST(h->x.server == -3);
    BOOST_TEST(h->x.serverTokens.back().empty());  // the server answers nothing at all
    Bytes secret;
    BOOST_TEST(h->server->exportSecret("record", kBinding, secret) < 0);
    ferry_security_peer_v1 peer{};
    BOOST_TEST(h->server->queryPeer(peer) < 0);
  }
  BOOST_TEST(wrongKey.x.serverWhy == unknownId.x.serverWhy);
  BOOST_TEST(wrongKey.x.serverTokens.size() == unknownId.x.serverTokens.size());
}

BOOST_AUTO_TEST_CASE(replayed_client_tokens_do_not_complete_a_handshake_with_a_new_server) {
  std::string server = keys("server", "alice " + kKeyA + "\n");
  PskHandshake h(keys("client", "alice " + kKeyA + "\n"), server);
  BOOST_REQUIRE(h.x.established());
  std::string why;
  auto fresh = h.serverCredentials.credentials->server(why);
  Bytes out;
  // The replayed hello is answered (the server cannot tell yet); its replayed Finished fails.
  BOOST_REQUIRE_EQUAL(fresh->step(&h.x.clientTokens[0], out, why), FERRY_SECURITY_CONTINUE);
  BOOST_TEST(out != h.x.serverTokens[0]);  // a fresh server share and random
  BOOST_TEST(fresh->step(&h.x.clientTokens[1], out, why) == -3);
  Bytes secret;
  BOOST_TEST(fresh->exportSecret("record", kBinding, secret) < 0);
}

BOOST_AUTO_TEST_CASE(the_server_flight_reflected_to_a_server_fails) {
  std::string server = keys("server", "alice " + kKeyA + "\n");
  PskHandshake h(keys("client", "alice " + kKeyA + "\n"), server);
  BOOST_REQUIRE(h.x.established());
  std::string why;
  auto fresh = h.serverCredentials.credentials->server(why);
  Bytes out;
  BOOST_TEST(fresh->step(&h.x.serverTokens[0], out, why) < 0);
}

BOOST_AUTO_TEST_CASE(credentials_never_complete_a_handshake_with_themselves) {
  // One key file in both roles: a client's hello reflected to a server of the same credentials
  // (the "selfie" attack) is refused before the server answers.
  const ferry_security_v1& psk = loadedSecurityProvider("psk");
  Acquired both = acquire(psk, keys("both", "peer " + kKeyA + "\n"),
                          FERRY_SECURITY_ROLE_CLIENT | FERRY_SECURITY_ROLE_SERVER);
  BOOST_REQUIRE_EQUAL(both.status, 0);
  std::string why;
  auto client = both.credentials->client("", why);
  auto server = both.credentials->server(why);
  BOOST_REQUIRE(client && server);
  Bytes hello;
  BOOST_REQUIRE_EQUAL(client->step(nullptr, hello, why), FERRY_SECURITY_CONTINUE);
  Bytes out;
  BOOST_TEST(server->step(&hello, out, why) == -3);
  BOOST_TEST(why.find("reflected") != std::string::npos);
  BOOST_TEST(out.empty());
  // Credentials of their own at each end, with the same key, complete as usual.
  PskHandshake other(keys("c", "peer " + kKeyA + "\n"), keys("s", "peer " + kKeyA + "\n"));
  BOOST_TEST(other.x.established());
}

BOOST_AUTO_TEST_CASE(one_credentials_handle_serves_handshakes_on_several_threads_at_once) {
  // Credentials are used from any thread; each context by one thread at a time.
  const ferry_security_v1& psk = loadedSecurityProvider("psk");
  Acquired client = acquire(psk, keys("c", "peer " + kKeyA + "\n"), FERRY_SECURITY_ROLE_CLIENT);
  Acquired server = acquire(psk, keys("s", "peer " + kKeyA + "\n"), FERRY_SECURITY_ROLE_SERVER);
  BOOST_REQUIRE(client.status == 0 && server.status == 0);
  std::atomic<int> established{0};
  std::atomic<int> matching{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        std::string why;
        auto c = client.credentials->client("", why);
        auto s = server.credentials->server(why);
        if (!c || !s || !runExchange(*c, *s).established()) continue;
        ++established;
        Bytes one;
        Bytes two;
        if (c->exportSecret("record", kBinding, one) == 0 &&
            s->exportSecret("record", kBinding, two) == 0 && one == two) {
          ++matching;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  BOOST_TEST(established.load() == 20);
  BOOST_TEST(matching.load() == 20);
}

BOOST_AUTO_TEST_CASE(the_target_chooses_the_key_a_client_presents) {
  std::string client = keys("client", "a " + kKeyA + "\nb " + kKeyB + "\n");
  PskHandshake h(client, keys("server", "b " + kKeyB + "\n"), "b");
  BOOST_REQUIRE(h.x.established());
  BOOST_TEST(h.principalSeenBy(*h.server) == "b");
  // Several keys, no target and no id=: the client cannot choose.
  const ferry_security_v1& psk = loadedSecurityProvider("psk");
  Acquired several = acquire(psk, client, FERRY_SECURITY_ROLE_CLIENT);
  BOOST_REQUIRE_EQUAL(several.status, 0);
  std::string why;
  BOOST_TEST(!several.credentials->client("", why));
  BOOST_TEST(why.find("id=") != std::string::npos);
  BOOST_TEST(!several.credentials->client("c", why));
  BOOST_TEST(why.find("'c'") != std::string::npos);
  Acquired chosen = acquire(psk, client + ",id=b", FERRY_SECURITY_ROLE_CLIENT);
  BOOST_REQUIRE_EQUAL(chosen.status, 0);
  BOOST_TEST(chosen.credentials->client("", why) != nullptr);
}

BOOST_AUTO_TEST_CASE(key_files_others_may_read_short_keys_and_bad_settings_are_refused_naming_the_key) {
  const ferry_security_v1& psk = loadedSecurityProvider("psk");
  Acquired open = acquire(psk, keys("open", "a " + kKeyA + "\n", 0644), FERRY_SECURITY_ROLE_SERVER);
  BOOST_TEST(open.status == -2);
  BOOST_TEST(open.why.find("keys=") != std::string::npos);
  BOOST_TEST(open.why.find("chmod 600") != std::string::npos);
  Acquired shortKey = acquire(psk, keys("short", "a 00112233445566778899aabbccddeeff\n"),
                              FERRY_SECURITY_ROLE_SERVER);
  BOOST_TEST(shortKey.status == -2);
  BOOST_TEST(shortKey.why.find("line 1 of keys=") != std::string::npos);
  BOOST_TEST(shortKey.why.find("256") != std::string::npos);
  Acquired password = acquire(psk, keys("password", "a correct-horse-battery-staple\n"),
                              FERRY_SECURITY_ROLE_SERVER);
  BOOST_TEST(password.status == -2);
  Acquired unknownId = acquire(psk, keys("k", "a " + kKeyA + "\n") + ",id=b",
                               FERRY_SECURITY_ROLE_CLIENT);
  BOOST_TEST(unknownId.status == -1);
  BOOST_TEST(unknownId.why.find("id=b") != std::string::npos);
  Checked noKeys = checkSettings(psk, "id=a");
  BOOST_TEST(noKeys.status == -1);
  BOOST_TEST(noKeys.why.find("'keys='") != std::string::npos);
  Checked unknownKey = checkSettings(psk, "keys=/k,key=/k");
  BOOST_TEST(unknownKey.status == -1);
  BOOST_TEST(unknownKey.why.find("'key' is no psk security setting") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(keygen_writes_a_private_file_with_a_256_bit_key_and_never_replaces_one) {
  std::string path = dir.path() + "/new.psk";
  ferry::security::psk::writeNewKeyFile(path, "host-a");
  struct stat st {};
  BOOST_REQUIRE_EQUAL(::stat(path.c_str(), &st), 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = ferry::security::psk::parseKeyFile(text.str(), path);
  BOOST_REQUIRE_EQUAL(parsed.size(), 1u);
  BOOST_TEST(parsed[0].id() == "host-a");
  BOOST_TEST(parsed[0].key().size() == 32u);
  BOOST_CHECK_THROW(ferry::security::psk::writeNewKeyFile(path, "host-b"), std::exception);
  std::ifstream again(path);
  std::stringstream unchanged;
  unchanged << again.rdbuf();
  BOOST_TEST(unchanged.str() == text.str());
  // Two keys from keygen differ, and the file works as both ends' keys=.
  std::string other = dir.path() + "/other.psk";
  ferry::security::psk::writeNewKeyFile(other, "host-a");
  PskHandshake h("keys=" + path, "keys=" + path);
  BOOST_TEST(h.x.established());
  PskHandshake mismatch("keys=" + path, "keys=" + other);
  BOOST_TEST(!mismatch.x.established());
}

BOOST_AUTO_TEST_SUITE_END()
