// The tls security provider (ferry-security-tls.so): X.509 certificates through a TLS 1.3
// handshake (provider.h's engine), the peer's principal from its certificate's subjectAltName
// through an explicit table. README.md beside this file documents the settings.
#include <algorithm>
#include <cctype>
#include <memory>
#include <utility>
#include <vector>

#include <openssl/x509v3.h>

#include "provider.h"
#include "settings.h"

namespace ferry::security::tls {
namespace {

constexpr const char* kCiphersuites = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

// The settings, checked without reading any file.
struct TlsSettings {
  Settings all;
  std::string cert;
  std::string key;
  std::string ca;
  std::string principals;
  bool requireClientCert = true;

  explicit TlsSettings(const char* text)
      : all("tls", text, {"cert", "key", "ca", "verify", "principals"}),
        ca(all.require("ca")),
        principals(all.require("principals")) {
    if (const std::string* v = all.find("cert")) cert = *v;
    if (const std::string* v = all.find("key")) key = *v;
    if (cert.empty() != key.empty()) {
      throw Failure(kBadSettings, "the tls security settings give " +
                                      std::string(cert.empty() ? "key=" : "cert=") +
                                      " without " + (cert.empty() ? "cert=" : "key=") +
                                      "; give both or neither");
    }
    if (const std::string* v = all.find("verify")) {
      if (*v == "peer") {
        requireClientCert = false;
      } else if (*v != "require") {
        throw Failure(kBadSettings, "verify=" + *v +
                                        " in the tls security settings is neither 'require' "
                                        "(clients must present a certificate) nor 'peer' "
                                        "(clients without one are anonymous)");
      }
    }
  }
};

// SAN → principal, from the principals= file: one "uri:<URI> <principal>" or
// "dns:<name> <principal>" per line; '#' starts a comment line.
class PrincipalTable {
public:
  PrincipalTable(const Settings& settings, const std::string& path) {
    std::string where = "principals=" + path + " of the tls security settings";
    std::string hint = "a line is 'uri:<URI> <principal>' or 'dns:<name> <principal>'";
    forEachPair(readSmallFile(settings, "principals", path), where, hint,
                [&](int line, const std::string& san, const std::string& principal) {
                  if (san.rfind("uri:", 0) != 0 && san.rfind("dns:", 0) != 0) {
                    throw lineFailure(line, where, "names no uri: or dns: subjectAltName", hint);
                  }
                  if (principal.size() >= sizeof(ferry_security_peer_v1::principal)) {
                    throw lineFailure(line, where, "has a principal longer than 255 characters",
                                      hint);
                  }
                  _entries.emplace_back(normalized(san), principal);
                });
    if (_entries.empty()) {
      throw Failure(kBadCredentials, "principals=" + path +
                                         " of the tls security settings maps no subjectAltName "
                                         "to a principal, so every peer would be refused");
    }
  }

  // True when some name maps to `principal`.
  bool hasPrincipal(const std::string& principal) const {
    for (const auto& entry : _entries) {
      if (entry.second == principal) return true;
    }
    return false;
  }

  // The principal a "uri:…"/"dns:…" name maps to, or null.
  const std::string* find(const std::string& san) const {
    std::string key = normalized(san);
    for (const auto& [name, principal] : _entries) {
      if (name == key) return &principal;
    }
    return nullptr;
  }

private:
  // DNS names compare without case; URIs as written.
  static std::string normalized(std::string san) {
    if (san.rfind("dns:", 0) == 0) {
      std::transform(san.begin(), san.end(), san.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
    return san;
  }

  std::vector<std::pair<std::string, std::string>> _entries;
};

struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* names) const noexcept { GENERAL_NAMES_free(names); }
};

// The principal of a verified certificate: the first of its URI and DNS subjectAltNames the
// table maps. Never the subject's CN.
std::string principalOf(X509* cert, const PrincipalTable& table) {
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  std::string seen;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    const char* kind = name->type == GEN_URI ? "uri:" : name->type == GEN_DNS ? "dns:" : nullptr;
    if (kind == nullptr) continue;
    const ASN1_STRING* value = name->d.ia5;
    std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                     static_cast<size_t>(ASN1_STRING_length(value)));
    if (text.find('\0') != std::string::npos) continue;  // an embedded NUL is never a name
    std::string san = kind + text;
    if (const std::string* principal = table.find(san)) return *principal;
    if (seen.size() < 200) seen += (seen.empty() ? "" : ", ") + san;
  }
  throw Failure(kAuthFailed,
                "the peer's certificate was trusted but none of its subjectAltNames (" +
                    (seen.empty() ? std::string("it has no URI or DNS name") : seen) +
                    ") is in the principals= table of the tls security settings; add the "
                    "one that names the peer");
}

class TlsContext : public Context {
public:
  TlsContext(SSL_CTX* ctx, bool server, std::shared_ptr<const PrincipalTable> table,
             bool requireClientCert)
      : Context(ctx, server, nullptr), _table(std::move(table)), _requireClientCert(requireClientCert) {}

  // A client's target, when it is a principal of the table: the server's must be it.
  void expectPrincipal(const std::string& principal) { _expectedPrincipal = principal; }

protected:
  std::string authenticatePeer() override {
    X509* cert = SSL_get0_peer_certificate(ssl());
    if (cert == nullptr) {
      // Only a server that takes anonymous clients (verify=peer) gets here without one.
      if (server() && !_requireClientCert) return "";
      throw Failure(kAuthFailed, "the peer presented no certificate");
    }
    if (SSL_get_verify_result(ssl()) != X509_V_OK) {
      throw Failure(kAuthFailed, "the peer's certificate did not verify");
    }
    std::string principal = principalOf(cert, *_table);
    if (!_expectedPrincipal.empty() && principal != _expectedPrincipal) {
      throw Failure(kAuthFailed, "the server's certificate maps to the principal '" + principal +
                                     "', not to the target '" + _expectedPrincipal + "'");
    }
    return principal;
  }

  std::string describeHandshakeFailure(const std::string& errors) const override {
    return Context::describeHandshakeFailure(errors) +
           "; check the ca=, cert=, key= and verify= settings of the tls provider at both ends" +
           (server() ? "" : " and the name the server is expected to have");
  }

private:
  std::shared_ptr<const PrincipalTable> _table;
  bool _requireClientCert;
  std::string _expectedPrincipal;
};

class TlsCredentials : public Credentials {
public:
  TlsCredentials(const char* text, uint32_t roles) {
    TlsSettings s(text);
    if ((roles & FERRY_SECURITY_ROLE_SERVER) != 0 && s.cert.empty()) {
      throw Failure(kBadSettings, "a tls server needs its certificate and key: give cert= and "
                                  "key= in the tls security settings");
    }
    if (!s.key.empty()) checkPrivateFile(s.all, "key", s.key);
    _table = std::make_shared<const PrincipalTable>(s.all, s.principals);
    _requireClientCert = s.requireClientCert;
    if ((roles & FERRY_SECURITY_ROLE_CLIENT) != 0) {
      _client = load(s, false);
      SSL_CTX_set_verify(_client.get(), SSL_VERIFY_PEER, nullptr);
    }
    if ((roles & FERRY_SECURITY_ROLE_SERVER) != 0) {
      _server = load(s, true);
      SSL_CTX_set_verify(_server.get(),
                         SSL_VERIFY_PEER |
                             (s.requireClientCert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                         nullptr);
    }
  }

  std::unique_ptr<Context> newClient(const std::string& target) override {
    if (!_client) {
      throw Failure(kWrongState, "these tls credentials were acquired without the client role");
    }
    auto context = std::make_unique<TlsContext>(_client.get(), false, _table, true);
    if (_table->hasPrincipal(target)) {
      // Checked once the handshake finished, before the client's own flight leaves.
      context->expectPrincipal(target);
    } else if (!target.empty()) {
      // A host name: the server must prove it by a DNS subjectAltName; the CN is never consulted.
      SSL_set_hostflags(context->ssl(), X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
      if (SSL_set1_host(context->ssl(), target.c_str()) != 1) {
        throw Failure(kBadArgument, "the target '" + target.substr(0, 80) +
                                        "' is no host name a certificate could prove");
      }
    }
    return context;
  }

  std::unique_ptr<Context> newServer() override {
    if (!_server) {
      throw Failure(kWrongState, "these tls credentials were acquired without the server role");
    }
    return std::make_unique<TlsContext>(_server.get(), true, _table, _requireClientCert);
  }

private:
  static SslCtxPtr load(const TlsSettings& s, bool server) {
    SslCtxPtr ctx = newTls13Ctx(server, kCiphersuites);
    if (SSL_CTX_load_verify_locations(ctx.get(), s.ca.c_str(), nullptr) != 1) {
      throw Failure(kBadCredentials, "cannot load the trusted certificates of ca=" + s.ca +
                                         " of the tls security settings: " +
                                         takeOpensslErrors());
    }
    if (s.cert.empty()) return ctx;
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), s.cert.c_str()) != 1) {
      throw Failure(kBadCredentials, "cannot load the certificate of cert=" + s.cert +
                                         " of the tls security settings: " +
                                         takeOpensslErrors());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), s.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw Failure(kBadCredentials, "cannot load the private key of key=" + s.key +
                                         " of the tls security settings: " +
                                         takeOpensslErrors());
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
      throw Failure(kBadCredentials, "key=" + s.key + " of the tls security settings is not "
                                     "the private key of cert=" + s.cert);
    }
    return ctx;
  }

  SslCtxPtr _client;
  SslCtxPtr _server;
  std::shared_ptr<const PrincipalTable> _table;
  bool _requireClientCert = true;
};

const ferry_security_v1 kTable = ProviderAbi<TlsSettings, TlsCredentials>::table(FERRY_SECURITY_PROVIDER_TLS);

const ferry_plugin_v1 kPlugin = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_SECURITY,
    .name = "tls",
    .description = "X.509 certificates through TLS 1.3; principals from the subjectAltName",
    .table = &kTable,
};

}  // namespace
}  // namespace ferry::security::tls

FERRY_SECURITY_EXPORT const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1*) {
  return &ferry::security::tls::kPlugin;
}
