// The psk security provider (ferry-security-psk.so): pre-shared keys through TLS 1.3 external
// PSKs in psk_dhe_ke mode (the key and an ephemeral X25519 or P-256 exchange: mutual
// authentication and forward secrecy), on the tls provider's engine (security/tls/provider.h).
// README.md beside this file documents the settings and why TLS rather than a protocol of our own.
#include <memory>
#include <utility>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "key-file.h"
#include "provider.h"
#include "settings.h"

namespace ferry::security::psk {
namespace {

// One suite: a PSK is bound to one hash, and SHA-384's suite is the one both peers must share.
constexpr const char* kCiphersuites = "TLS_AES_256_GCM_SHA384";
constexpr unsigned char kSuiteId[] = {0x13, 0x02};  // TLS_AES_256_GCM_SHA384

// The settings, checked without reading any file.
struct PskSettings {
  Settings all;
  std::string keys;
  std::string id;

  explicit PskSettings(const char* text)
      : all("psk", text, {"keys", "id"}), keys(all.require("keys")) {
    if (const std::string* v = all.find("id")) {
      id = *v;
      if (!validKeyId(id)) {
        throw Failure(kBadSettings, "id=" + id.substr(0, 80) +
                                        " of the psk security settings is not 1 to 128 of the "
                                        "characters A-Z a-z 0-9 . _ @ : / + -");
      }
    }
  }
};

// A session that carries `key` as a TLS 1.3 external PSK; null when OpenSSL refuses.
SSL_SESSION* newPskSession(SSL* ssl, const std::vector<uint8_t>& key) {
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kSuiteId);
  SSL_SESSION* session = SSL_SESSION_new();
  if (cipher == nullptr || session == nullptr ||
      SSL_SESSION_set1_master_key(session, key.data(), key.size()) != 1 ||
      SSL_SESSION_set_cipher(session, cipher) != 1 ||
      SSL_SESSION_set_protocol_version(session, TLS1_3_VERSION) != 1) {
    SSL_SESSION_free(session);
    return nullptr;
  }
  return session;
}

struct KeyRing {
  std::vector<PskKey> keys;
  // What a server uses for an id it does not know: random, known to nobody, so the handshake
  // takes the same path as with a wrong key and fails at the same check (the PSK binder).
  PskKey dummy;
};

class PskContext : public Context {
public:
  // A client presenting `key`.
  PskContext(SSL_CTX* ctx, std::shared_ptr<OwnHellos> ownHellos,
             std::shared_ptr<const KeyRing> ring, const PskKey& key)
      : Context(ctx, false, std::move(ownHellos)), _ring(std::move(ring)), _key(&key), _identity(key.id()) {}
  // A server.
  PskContext(SSL_CTX* ctx, std::shared_ptr<OwnHellos> ownHellos,
             std::shared_ptr<const KeyRing> ring)
      : Context(ctx, true, std::move(ownHellos)), _ring(std::move(ring)) {}

  // SSL_CTX_set_psk_use_session_callback: the client offers its key, for SHA-384 only.
  static int useSession(SSL* ssl, const EVP_MD* md, const unsigned char** id, size_t* idSize,
                        SSL_SESSION** session) {
    auto* self = static_cast<PskContext*>(Context::of(ssl));
    *session = nullptr;
    if (self == nullptr || self->_key == nullptr) return 0;
    if (md != nullptr && EVP_MD_get_size(md) != 48) return 1;  // no PSK for another hash
    *session = newPskSession(ssl, self->_key->key());
    if (*session == nullptr) return 0;
    *id = reinterpret_cast<const unsigned char*>(self->_key->id().data());
    *idSize = self->_key->id().size();
    return 1;
  }

  // SSL_CTX_set_psk_find_session_callback: the server takes the key of the offered id, or the
  // dummy key for an unknown one, so both failures take one path.
  static int findSession(SSL* ssl, const unsigned char* id, size_t idSize,
                         SSL_SESSION** session) {
    auto* self = static_cast<PskContext*>(Context::of(ssl));
    *session = nullptr;
    if (self == nullptr) return 0;
    std::string_view offered(reinterpret_cast<const char*>(id), idSize);
    const PskKey* found = nullptr;
    for (const PskKey& k : self->_ring->keys) {
      if (found == nullptr && k.id() == offered) found = &k;
    }
    self->_known = found != nullptr;
    if (found != nullptr) self->_identity = found->id();
    *session = newPskSession(ssl, found != nullptr ? found->key() : self->_ring->dummy.key());
    return *session != nullptr ? 1 : 0;
  }

protected:
  std::string authenticatePeer() override {
    if (SSL_session_reused(ssl()) != 1 || (server() && !_known)) {
      throw Failure(kAuthFailed, "the peer did not authenticate with a pre-shared key");
    }
    return _identity;
  }

  std::string describeHandshakeFailure(const std::string& errors) const override {
    // The same sentence for a wrong key and an unknown id: no log line tells them apart either.
    return Context::describeHandshakeFailure(errors) +
           "; both ends need the same key under the same id in their keys= files of the psk "
           "provider";
  }

private:
  std::shared_ptr<const KeyRing> _ring;
  const PskKey* _key = nullptr;  // the client's key, in _ring
  std::string _identity;         // the key id: the principal of the server's peer
  bool _known = false;
};

class PskCredentials : public Credentials {
public:
  PskCredentials(const char* text, uint32_t roles) {
    PskSettings s(text);
    checkPrivateFile(s.all, "keys", s.keys);
    std::string contents = readSmallFile(s.all, "keys", s.keys);
    std::vector<PskKey> keys =
        parseKeyFile(contents, "keys=" + s.keys + " of the psk security settings");
    OPENSSL_cleanse(contents.data(), contents.size());
    std::vector<uint8_t> dummy(kMinKeySize);
    if (RAND_priv_bytes(dummy.data(), static_cast<int>(dummy.size())) != 1) {
      throw Failure(kInternal, "the random generator failed");
    }
    auto ring = std::make_shared<const KeyRing>(
        KeyRing{std::move(keys), PskKey("", std::move(dummy))});
    _defaultId = s.id;
    if (!_defaultId.empty() && find(*ring, _defaultId) == nullptr) {
      throw Failure(kBadSettings, "id=" + _defaultId + " of the psk security settings is no "
                                  "key id of keys=" + s.keys);
    }
    _ring = std::move(ring);
    if ((roles & FERRY_SECURITY_ROLE_CLIENT) != 0) {
      _client = newTls13Ctx(false, kCiphersuites);
      // No trust anchors: a server that answers with a certificate instead of the PSK fails.
      SSL_CTX_set_verify(_client.get(), SSL_VERIFY_PEER, nullptr);
      SSL_CTX_set_psk_use_session_callback(_client.get(), PskContext::useSession);
    }
    if ((roles & FERRY_SECURITY_ROLE_SERVER) != 0) {
      _server = newTls13Ctx(true, kCiphersuites);
      SSL_CTX_set_psk_find_session_callback(_server.get(), PskContext::findSession);
    }
    _keysPath = s.keys;
  }

  std::unique_ptr<Context> newClient(const std::string& target) override {
    if (!_client) {
      throw Failure(kWrongState, "these psk credentials were acquired without the client role");
    }
    // The server proves that it holds the key of `target`; "" is the key id= names, or the only
    // key of the file.
    const std::string& id = !target.empty() ? target : _defaultId;
    const PskKey* key = nullptr;
    if (!id.empty()) {
      key = find(*_ring, id);
      if (key == nullptr) {
        throw Failure(kBadArgument, "keys=" + _keysPath + " of the psk security settings has "
                                    "no key for the server principal '" + id.substr(0, 80) + "'");
      }
    } else if (_ring->keys.size() == 1) {
      key = &_ring->keys.front();
    } else {
      throw Failure(kBadSettings, "keys=" + _keysPath + " holds several keys: give id= in the "
                                  "psk security settings to say which one this client presents");
    }
    return std::make_unique<PskContext>(_client.get(), _ownHellos, _ring, *key);
  }

  std::unique_ptr<Context> newServer() override {
    if (!_server) {
      throw Failure(kWrongState, "these psk credentials were acquired without the server role");
    }
    return std::make_unique<PskContext>(_server.get(), _ownHellos, _ring);
  }

private:
  static const PskKey* find(const KeyRing& ring, const std::string& id) {
    for (const PskKey& k : ring.keys) {
      if (k.id() == id) return &k;
    }
    return nullptr;
  }

  std::shared_ptr<const KeyRing> _ring;
  // Its client contexts' hellos, which its server contexts refuse (RFC 9257's selfie attack).
  std::shared_ptr<OwnHellos> _ownHellos = std::make_shared<OwnHellos>();
  std::string _defaultId;
  std::string _keysPath;
  SslCtxPtr _client;
  SslCtxPtr _server;
};

const ferry_security_v1 kTable = ProviderAbi<PskSettings, PskCredentials>::table(FERRY_SECURITY_PROVIDER_PSK);

const ferry_plugin_v1 kPlugin = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_SECURITY,
    .name = "psk",
    .description = "pre-shared keys through TLS 1.3 (psk_dhe_ke); the principal is the key id",
    .table = &kTable,
};

}  // namespace
}  // namespace ferry::security::psk

FERRY_SECURITY_EXPORT const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1*) {
  return &ferry::security::psk::kPlugin;
}
