// The tls security provider (security/tls), loaded from the build tree as core loads it and
// driven through its C ABI: a client and a server context exchange tokens in memory. The
// certificates are made at test time (pki.h). Covers §C 24 and 25 of
// reference/udp-and-security.md: every refused handshake ends without OK, without a principal and
// without an exported secret on both ends.
#define BOOST_TEST_MODULE tls security provider
#include <boost/test/unit_test.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "pki.h"
#include "handshake.h"

using namespace ferry::test;

namespace {

const Bytes kBinding = {1, 2, 3, 4};

// A CA, server and client certificates, and the settings that name them.
struct Pki {
  TempDir dir;
  TestCa ca{"ferry test CA"};
  TestCa otherCa{"another CA"};
  std::string caFile = dir.write("ca.pem", ca.certPem(), 0644);
  std::string principals = dir.write(
      "principals", "# SAN -> principal\nuri:spiffe://test/alice alice\ndns:Server.Test server\n",
      0644);

  // "cert=…,key=…" for an identity written under `name`.
  std::string identity(const std::string& name, const Identity& id) const {
    return "cert=" + dir.write(name + ".pem", id.certPem, 0644) +
           ",key=" + dir.write(name + ".key", id.keyPem, 0600);
  }
  std::string settings(const std::string& identityPart, const std::string& extra = "") const {
    return (identityPart.empty() ? "" : identityPart + ",") + "ca=" + caFile +
           ",principals=" + principals + extra;
  }
  std::string serverSettings(const std::string& extra = "") const {
    return settings(identity("server", ca.issue({"server.test", "DNS:server.test"})), extra);
  }
  std::string aliceSettings() const {
    return settings(identity("alice", ca.issue({"alice", "URI:spiffe://test/alice"})));
  }
};

// One client and one server, from settings to an exchange; keeps them for the test's checks.
// A handshake of the tls provider.
struct TlsHandshake : Handshake {
  TlsHandshake(const std::string& clientSettings, const std::string& serverSettings,
               const std::string& target = "server.test")
      : Handshake("tls", clientSettings, serverSettings, target) {}
};

// A refused handshake: one end failed with the generic authentication error, and an end that did
// not return OK names no peer and exports no secret. (A TLS 1.3 client returns OK before the
// server has verified the client's certificate; the server, which refuses it, holds no secret.)
void requireRefused(Handshake& h) {
  BOOST_TEST_MESSAGE("client: " << h.x.clientWhy << " / server: " << h.x.serverWhy);
  BOOST_TEST(!h.x.established());
  BOOST_TEST((h.x.client == -3 || h.x.server == -3));
  BOOST_TEST(h.x.server != FERRY_SECURITY_OK);
  for (SecurityContext* end : {h.client.get(), h.server.get()}) {
    if ((end == h.client.get() ? h.x.client : h.x.server) == FERRY_SECURITY_OK) continue;
    Bytes secret;
    BOOST_TEST(end->exportSecret("record", kBinding, secret) < 0);
    ferry_security_peer_v1 peer{};
    BOOST_TEST(end->queryPeer(peer) < 0);
  }
}

// A TLS client of OpenSSL's own, outside the provider, for what a ferry client never sends.
class RawClient {
public:
  RawClient(int maxVersion, bool alpn, const std::string& caFile,
            const char* ciphersuites = "TLS_AES_256_GCM_SHA384") {
    _ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(_ctx, maxVersion);
    SSL_CTX_set_ciphersuites(_ctx, ciphersuites);
    SSL_CTX_load_verify_locations(_ctx, caFile.c_str(), nullptr);
    if (alpn) {
      static const unsigned char kAlpn[] = {7, 'f', 'e', 'r', 'r', 'y', '/', '1'};
      SSL_CTX_set_alpn_protos(_ctx, kAlpn, sizeof kAlpn);
    }
    _ssl = SSL_new(_ctx);
    _in = BIO_new(BIO_s_mem());
    _out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(_in, -1);
    SSL_set_bio(_ssl, _in, _out);
    SSL_set_connect_state(_ssl);
  }
  ~RawClient() {
    SSL_free(_ssl);
    SSL_CTX_free(_ctx);
    ERR_clear_error();
  }

  // Feeds the server's token (if any) and returns what the client sends next.
  Bytes step(const Bytes& in) {
    if (!in.empty()) BIO_write(_in, in.data(), static_cast<int>(in.size()));
    SSL_do_handshake(_ssl);
    Bytes out(BIO_ctrl_pending(_out));
    if (!out.empty()) BIO_read(_out, out.data(), static_cast<int>(out.size()));
    return out;
  }

private:
  SSL_CTX* _ctx;
  SSL* _ssl;
  BIO* _in;
  BIO* _out;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(tls, Pki)

BOOST_AUTO_TEST_CASE(the_module_declares_the_tls_provider_with_mutual_authentication_and_privacy) {
  const ferry_security_v1& tls = loadedSecurityProvider("tls");
  BOOST_TEST(tls.struct_size == sizeof(ferry_security_v1));
  BOOST_TEST(tls.provider_id == FERRY_SECURITY_PROVIDER_TLS);
  BOOST_TEST((tls.capabilities & FERRY_SECURITY_MUTUAL) != 0u);
  BOOST_TEST((tls.capabilities & FERRY_SECURITY_PRIVACY) != 0u);
  BOOST_TEST((tls.capabilities & FERRY_SECURITY_KERNEL_PROTECTED) == 0u);
}

BOOST_AUTO_TEST_CASE(a_mutual_handshake_completes_and_both_ends_export_the_same_secret) {
  TlsHandshake h(aliceSettings(), serverSettings());
  BOOST_REQUIRE_MESSAGE(h.x.established(), h.x.clientWhy + " / " + h.x.serverWhy);
  Bytes atClient;
  Bytes atServer;
  BOOST_REQUIRE_EQUAL(h.client->exportSecret("record", kBinding, atClient), 0);
  BOOST_REQUIRE_EQUAL(h.server->exportSecret("record", kBinding, atServer), 0);
  BOOST_TEST(atClient == atServer);
  BOOST_TEST(atClient != Bytes(32, 0));
}

BOOST_AUTO_TEST_CASE(the_exported_secret_differs_for_another_label_another_binding_or_another_link) {
  TlsHandshake h(aliceSettings(), serverSettings());
  BOOST_REQUIRE(h.x.established());
  Bytes base;
  Bytes otherLabel;
  Bytes otherBinding;
  BOOST_REQUIRE_EQUAL(h.client->exportSecret("record", kBinding, base), 0);
  BOOST_REQUIRE_EQUAL(h.server->exportSecret("other", kBinding, otherLabel), 0);
  BOOST_REQUIRE_EQUAL(h.server->exportSecret("record", Bytes{1, 2, 3, 5}, otherBinding), 0);
  BOOST_TEST(base != otherLabel);
  BOOST_TEST(base != otherBinding);
  TlsHandshake second(aliceSettings(), serverSettings());
  BOOST_REQUIRE(second.x.established());
  Bytes otherLink;
  BOOST_REQUIRE_EQUAL(second.client->exportSecret("record", kBinding, otherLink), 0);
  BOOST_TEST(base != otherLink);
}

BOOST_AUTO_TEST_CASE(each_end_names_the_other_by_the_principal_its_subject_alt_name_maps_to) {
  TlsHandshake h(aliceSettings(), serverSettings());
  BOOST_REQUIRE(h.x.established());
  BOOST_TEST(h.principalSeenBy(*h.server) == "alice");
  BOOST_TEST(h.principalSeenBy(*h.client) == "server");  // the table's DNS name, any case
  ferry_security_peer_v1 peer{};
  BOOST_REQUIRE_EQUAL(h.server->queryPeer(peer), 0);
  BOOST_TEST(peer.level == static_cast<uint32_t>(FERRY_SECURITY_LEVEL_PRIVACY));
  BOOST_TEST(peer.has_uid == 0);
}

BOOST_AUTO_TEST_CASE(a_trusted_certificate_whose_subject_alt_names_are_not_in_the_table_is_refused_whatever_its_cn) {
  // Its CN is a name the table maps (as a DNS name); its only SAN is not in the table.
  Identity mallory = ca.issue({"server.test", "URI:spiffe://test/mallory"});
  TlsHandshake h(settings(identity("mallory", mallory)), serverSettings());
  requireRefused(h);
  BOOST_TEST(h.x.server == -3);
  BOOST_TEST(h.x.serverWhy.find("principals=") != std::string::npos);
  BOOST_TEST(h.x.serverWhy.find("spiffe://test/mallory") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_expired_client_certificate_is_refused) {
  Identity expired = ca.issue({"alice", "URI:spiffe://test/alice", -10, -1});
  TlsHandshake h(settings(identity("expired", expired)), serverSettings());
  requireRefused(h);
  BOOST_TEST(h.x.server == -3);
  BOOST_TEST(h.x.serverWhy.find("expired") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_expired_server_certificate_is_refused_by_the_client) {
  Identity expired = ca.issue({"server.test", "DNS:server.test", -10, -1});
  TlsHandshake h(aliceSettings(), settings(identity("expired", expired)));
  requireRefused(h);
  BOOST_TEST(h.x.client == -3);
  BOOST_TEST(h.x.clientWhy.find("expired") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_client_certificate_from_an_untrusted_ca_is_refused) {
  Identity stranger = otherCa.issue({"alice", "URI:spiffe://test/alice"});
  TlsHandshake h(settings(identity("stranger", stranger)), serverSettings());
  requireRefused(h);
  BOOST_TEST(h.x.server == -3);
}

BOOST_AUTO_TEST_CASE(a_server_certificate_from_an_untrusted_ca_is_refused_by_the_client) {
  Identity stranger = otherCa.issue({"server.test", "DNS:server.test"});
  TlsHandshake h(aliceSettings(), settings(identity("stranger", stranger)));
  requireRefused(h);
  BOOST_TEST(h.x.client == -3);
  // The client stopped at the server's certificate: it never sent its own.
  BOOST_TEST(h.x.clientTokens.back().empty());
}

BOOST_AUTO_TEST_CASE(a_self_signed_server_certificate_is_refused_by_the_client) {
  Identity self = selfSigned({"server.test", "DNS:server.test"});
  TlsHandshake h(aliceSettings(), settings(identity("self", self)));
  requireRefused(h);
  BOOST_TEST(h.x.client == -3);
  BOOST_TEST(h.x.clientWhy.find("self") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_self_signed_client_certificate_is_refused_by_the_server) {
  Identity self = selfSigned({"alice", "URI:spiffe://test/alice"});
  TlsHandshake h(settings(identity("self", self)), serverSettings());
  requireRefused(h);
  BOOST_TEST(h.x.server == -3);
}

BOOST_AUTO_TEST_CASE(a_server_that_does_not_prove_the_target_name_is_refused_by_the_client) {
  TlsHandshake h(aliceSettings(), serverSettings(), "other.test");
  requireRefused(h);
  BOOST_TEST(h.x.client == -3);
  BOOST_TEST(h.x.clientWhy.find("mismatch") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_target_that_is_a_principal_of_the_table_must_be_the_server_s_principal) {
  TlsHandshake right(aliceSettings(), serverSettings(), "server");
  BOOST_REQUIRE_MESSAGE(right.x.established(), right.x.clientWhy);
  TlsHandshake wrong(aliceSettings(), serverSettings(), "alice");
  requireRefused(wrong);
  BOOST_TEST(wrong.x.client == -3);
  BOOST_TEST(wrong.x.clientWhy.find("not to the target 'alice'") != std::string::npos);
  // The client's certificate and Finished never left: its last step wrote nothing.
  BOOST_TEST(wrong.x.clientTokens.back().empty());
}

BOOST_AUTO_TEST_CASE(the_target_is_never_matched_against_the_cn) {
  // The server's CN is the target; its SAN is another name.
  Identity cnOnly = ca.issue({"server.test", "DNS:elsewhere.test"});
  TlsHandshake h(aliceSettings(), settings(identity("cn", cnOnly)), "server.test");
  requireRefused(h);
  BOOST_TEST(h.x.client == -3);
}

BOOST_AUTO_TEST_CASE(a_client_without_a_certificate_is_refused_when_the_server_requires_one) {
  TlsHandshake h(settings(""), serverSettings(",verify=require"));
  requireRefused(h);
  BOOST_TEST(h.x.server == -3);
}

BOOST_AUTO_TEST_CASE(a_server_with_verify_peer_takes_a_client_without_a_certificate_as_anonymous) {
  TlsHandshake h(settings(""), serverSettings(",verify=peer"));
  BOOST_REQUIRE_MESSAGE(h.x.established(), h.x.clientWhy + " / " + h.x.serverWhy);
  BOOST_TEST(h.principalSeenBy(*h.server) == "");
  BOOST_TEST(h.principalSeenBy(*h.client) == "server");
}

BOOST_AUTO_TEST_CASE(a_tls_1_2_client_is_refused) {
  TlsHandshake h(aliceSettings(), serverSettings());  // only for its server credentials
  std::string why;
  auto server = h.serverCredentials.credentials->server(why);
  RawClient old(TLS1_2_VERSION, true, caFile);
  Bytes hello = old.step({});
  BOOST_REQUIRE(!hello.empty());
  Bytes out;
  BOOST_TEST(server->step(&hello, out, why) == -3);
  BOOST_TEST(out.empty());  // not even an alert: core sends the generic refusal
  Bytes secret;
  BOOST_TEST(server->exportSecret("record", kBinding, secret) < 0);
}

BOOST_AUTO_TEST_CASE(a_client_that_offers_only_suites_outside_the_two_allowed_is_refused) {
  TlsHandshake h(aliceSettings(), serverSettings());  // only for its server credentials
  std::string why;
  auto server = h.serverCredentials.credentials->server(why);
  RawClient weaker(TLS1_3_VERSION, true, caFile, "TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_SHA256");
  Bytes hello = weaker.step({});
  BOOST_REQUIRE(!hello.empty());
  Bytes out;
  BOOST_TEST(server->step(&hello, out, why) == -3);
  BOOST_TEST(why.find("no shared cipher") != std::string::npos);
  BOOST_TEST(out.empty());
}

BOOST_AUTO_TEST_CASE(a_client_that_does_not_offer_the_ferry_alpn_is_refused) {
  TlsHandshake h(aliceSettings(), serverSettings(",verify=peer"));
  std::string why;
  auto server = h.serverCredentials.credentials->server(why);
  RawClient plain(TLS1_3_VERSION, false, caFile);
  Bytes hello = plain.step({});
  Bytes flight;
  BOOST_REQUIRE_EQUAL(server->step(&hello, flight, why), FERRY_SECURITY_CONTINUE);
  Bytes finished = plain.step(flight);
  BOOST_REQUIRE(!finished.empty());
  Bytes out;
  BOOST_TEST(server->step(&finished, out, why) == -3);
  BOOST_TEST(why.find("ALPN") != std::string::npos);
  ferry_security_peer_v1 peer{};
  BOOST_TEST(server->queryPeer(peer) < 0);
}

BOOST_AUTO_TEST_CASE(the_server_exports_nothing_and_names_no_peer_before_it_verified_the_client_finished) {
  TlsHandshake h(aliceSettings(), serverSettings());  // only for its credentials
  std::string why;
  auto client = h.clientCredentials.credentials->client("server.test", why);
  auto server = h.serverCredentials.credentials->server(why);
  Bytes hello;
  Bytes flight;
  BOOST_REQUIRE_EQUAL(client->step(nullptr, hello, why), FERRY_SECURITY_CONTINUE);
  BOOST_REQUIRE_EQUAL(server->step(&hello, flight, why), FERRY_SECURITY_CONTINUE);
  // The server has written its Finished; OpenSSL's exporter would already answer here.
  Bytes secret;
  BOOST_TEST(server->exportSecret("record", kBinding, secret) == -4);
  ferry_security_peer_v1 peer{};
  BOOST_TEST(server->queryPeer(peer) == -4);
  // A protected record (or anything else) in place of the client's Finished fails the context.
  Bytes injected(64, 0x17);
  Bytes out;
  BOOST_TEST(server->step(&injected, out, why) == -3);
  BOOST_TEST(server->exportSecret("record", kBinding, secret) < 0);
  BOOST_TEST(server->queryPeer(peer) < 0);
}

BOOST_AUTO_TEST_CASE(the_server_sends_no_bytes_after_the_handshake_and_the_client_needs_none) {
  TlsHandshake h(aliceSettings(), serverSettings());
  BOOST_REQUIRE(h.x.established());
  // Two round trips: hello; server flight; client flight; nothing (no session tickets).
  BOOST_REQUIRE_EQUAL(h.x.serverTokens.size(), 2u);
  BOOST_TEST(h.x.serverTokens.back().empty());
  BOOST_TEST(h.x.clientTokens.size() == 2u);
  // A token after the end of the exchange is refused.
  Bytes extra{0x17, 3, 3, 0, 1, 0};
  Bytes out;
  std::string why;
  BOOST_TEST(h.client->step(&extra, out, why) < 0);
}

BOOST_AUTO_TEST_CASE(replayed_client_tokens_do_not_complete_a_handshake_with_a_new_server) {
  TlsHandshake h(aliceSettings(), serverSettings());
  BOOST_REQUIRE(h.x.established());
  std::string why;
  auto server = h.serverCredentials.credentials->server(why);
  Bytes out;
  BOOST_REQUIRE_EQUAL(server->step(&h.x.clientTokens[0], out, why), FERRY_SECURITY_CONTINUE);
  BOOST_TEST(server->step(&h.x.clientTokens[1], out, why) == -3);
  Bytes secret;
  BOOST_TEST(server->exportSecret("record", kBinding, secret) < 0);
}

BOOST_AUTO_TEST_CASE(settings_errors_are_sentences_that_name_the_key) {
  const ferry_security_v1& tls = loadedSecurityProvider("tls");
  Checked unknown = checkSettings(tls, settings("", ",colour=blue"));
  BOOST_TEST(unknown.status == -1);
  BOOST_TEST(unknown.why.find("'colour' is no tls security setting") != std::string::npos);
  Checked verify = checkSettings(tls, settings("", ",verify=maybe"));
  BOOST_TEST(verify.status == -1);
  BOOST_TEST(verify.why.find("verify=maybe") != std::string::npos);
  Checked noCa = checkSettings(tls, "principals=" + principals);
  BOOST_TEST(noCa.status == -1);
  BOOST_TEST(noCa.why.find("'ca='") != std::string::npos);
  Checked half = checkSettings(tls, settings("cert=/x.pem"));
  BOOST_TEST(half.why.find("key=") != std::string::npos);
  BOOST_TEST(checkSettings(tls, serverSettings()).status == 0);

  // acquire_credentials reads the files: a private key others may read, a missing certificate.
  Identity server = ca.issue({"server.test", "DNS:server.test"});
  std::string cert = dir.write("s.pem", server.certPem, 0644);
  std::string openKey = dir.write("open.key", server.keyPem, 0644);
  Acquired open = acquire(tls, settings("cert=" + cert + ",key=" + openKey),
                          FERRY_SECURITY_ROLE_SERVER);
  BOOST_TEST(open.status == -2);
  BOOST_TEST(open.why.find("key=" + openKey) != std::string::npos);
  BOOST_TEST(open.why.find("chmod 600") != std::string::npos);
  std::string key = dir.write("s.key", server.keyPem, 0600);
  Acquired missing = acquire(tls, settings("cert=" + dir.path() + "/none.pem,key=" + key),
                             FERRY_SECURITY_ROLE_SERVER);
  BOOST_TEST(missing.status == -2);
  BOOST_TEST(missing.why.find("cert=") != std::string::npos);
  Acquired noIdentity = acquire(tls, settings(""), FERRY_SECURITY_ROLE_SERVER);
  BOOST_TEST(noIdentity.status == -1);
  BOOST_TEST(noIdentity.why.find("cert=") != std::string::npos);
  std::string badTable = dir.write("bad-table", "spiffe://x alice\n", 0644);
  Acquired table = acquire(tls, "ca=" + caFile + ",principals=" + badTable,
                           FERRY_SECURITY_ROLE_CLIENT);
  BOOST_TEST(table.status == -2);
  BOOST_TEST(table.why.find("line 1 of principals=") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
