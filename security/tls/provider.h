// What the tls and psk providers share: both are TLS 1.3 handshakes over memory BIOs (psk in
// psk_dhe_ke mode, README.md of security/psk says why), so one engine runs the exchange of
// tokens, the checks at completion and the exporter, and one set of C ABI functions
// (core/include/ferry/plugin/security.h) forwards to it. Each provider adds its settings, its
// credentials (how its SSL_CTX authenticates) and how a finished handshake names the peer.
//
// Built into a static library that only the modules of security/ link: it is the one place
// ferry links OpenSSL's TLS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <array>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include <openssl/ssl.h>

#include <ferry/plugin/security.h>

namespace ferry::security {

// The errors of both providers (negative, as the ABI wants); strerror() names them.
enum Error : int {
  kBadSettings = -1,      // the settings text is malformed or incomplete
  kBadCredentials = -2,   // a file the settings name is missing, unsafe or unreadable
  kAuthFailed = -3,       // the exchange failed: the peer is not who it must be, or broke TLS
  kWrongState = -4,       // the call does not fit the context's state
  kTokenTooLarge = -5,    // a token is larger than max_token_size
  kBadArgument = -6,      // a null pointer or an impossible size from the host
  kOutOfMemory = -7,
  kInternal = -8,         // OpenSSL refused something the provider itself set up
};

// The largest token either provider writes or reads. One flight with a certificate chain of a
// few certificates is 2-4 KiB; the rest is room for longer chains.
inline constexpr size_t kMaxTokenSize = 32 * 1024;

// A failure with the sentence for the local log; the ABI functions turn it into (code, why).
class Failure : public std::runtime_error {
public:
  Failure(Error code, const std::string& why) : std::runtime_error(why), _code(code) {}
  Error code() const noexcept { return _code; }

private:
  Error _code;
};

// The static text of an error either provider returned.
const char* strerror(int error) noexcept;

// OpenSSL's queued errors as one phrase ("" if none), and the queue emptied.
std::string takeOpensslErrors();

// Owning pointers for OpenSSL objects.
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// A new SSL_CTX configured exactly as both providers need it (reference udp-and-security.md
// §B5): TLS 1.3 only, the given TLS 1.3 suites, groups X25519 and P-256, no session tickets, no
// session cache, no early data, ALPN "ferry/1" offered (client) or required (server).
SslCtxPtr newTls13Ctx(bool server, const char* ciphersuites);

// The randoms of the ClientHellos the client contexts of one psk credentials handle sent and whose
// handshakes are under way. A server context of the same credentials refuses a ClientHello that
// carries one: it is the handle's own hello reflected back to it, which a pre-shared key used in
// both roles would otherwise complete (the "selfie" attack, RFC 9257 §4.1). Thread-safe.
class OwnHellos {
public:
  using Random = std::array<unsigned char, SSL3_RANDOM_SIZE>;
  void add(const Random& random);
  void remove(const Random& random) noexcept;
  bool contains(const unsigned char* random, size_t size) const;

private:
  mutable std::mutex _mutex;
  std::set<Random> _randoms;
};

// One end of one link: a TLS 1.3 handshake driven by step() over memory BIOs. A subclass says who
// the peer is once the handshake finished (authenticatePeer).
//
// States: handshaking → established (step returned OK) or dead (an error; every later call
// fails). The exporter and the peer's identity are available in `established` only — in
// particular not on a server that has written its Finished but not yet verified the client's
// (OpenSSL would export there; reference §B5 condition 1).
class Context {
public:
  // `ctx` is kept alive by the SSL object this creates. `ownHellos`, when not null, is its
  // credentials' set of their clients' hellos (psk: a key may be held in both roles).
  Context(SSL_CTX* ctx, bool server, std::shared_ptr<OwnHellos> ownHellos);
  virtual ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // The ABI's step(). Throws Failure; the context is then dead.
  int step(const uint8_t* in, size_t inSize, uint8_t* out, size_t outCap, size_t* outSize);
  void queryPeer(ferry_security_peer_v1& out) const;
  void exportSecret(const char* label, const uint8_t* binding, size_t bindingSize, uint8_t* out,
                    size_t size) const;

  bool server() const noexcept { return _server; }
  // True when this context's credentials have a client context waiting on a ClientHello with
  // this random.
  bool isOwnHello(const unsigned char* random, size_t size) const {
    return _ownHellos != nullptr && _ownHellos->contains(random, size);
  }
  SSL* ssl() const noexcept { return _ssl; }
  // The Context an SSL object of this engine belongs to (for OpenSSL callbacks).
  static Context* of(SSL* ssl) noexcept;

protected:
  // Called once, when the handshake has finished on this end and ALPN is "ferry/1": the far
  // end's principal ("" for an anonymous TLS client). Throws Failure(kAuthFailed) to refuse it.
  virtual std::string authenticatePeer() = 0;

  // A sentence saying why the handshake failed, from OpenSSL's state; subclasses add what their
  // settings can change.
  virtual std::string describeHandshakeFailure(const std::string& opensslErrors) const;

private:
  int advance(uint8_t* out, size_t outCap, size_t* outSize);
  // A client: takes its ClientHello's random out of its credentials' OwnHellos.
  void forgetHello() noexcept;

  enum class State { handshaking, established, dead };
  SSL* _ssl = nullptr;
  BIO* _in = nullptr;   // tokens from the peer; owned by _ssl
  BIO* _out = nullptr;  // what TLS writes for the peer; owned by _ssl
  bool _server;
  std::shared_ptr<OwnHellos> _ownHellos;
  State _state = State::handshaking;
  std::string _principal;
  bool _helloKept = false;  // a client whose ClientHello's random is in _ownHellos
};

// A credentials handle: what acquire_credentials read, used from any thread.
class Credentials {
public:
  virtual ~Credentials() = default;
  // `target` is never null ("" when the host names none). Throw Failure.
  virtual std::unique_ptr<Context> newClient(const std::string& target) = 0;
  virtual std::unique_ptr<Context> newServer() = 0;
};

// The ABI table functions both providers share; each fills its ferry_security_v1 with these
// plus its own check_settings and acquire_credentials.
namespace abi {
void freeCredentials(ferry_security_credentials* credentials) noexcept;
int initContext(ferry_security_credentials* credentials, const char* target,
                const ferry_security_link_v1* link, ferry_security_context** out, char* why,
                size_t whyCap) noexcept;
int acceptContext(ferry_security_credentials* credentials, const ferry_security_link_v1* link,
                  ferry_security_context** out, char* why, size_t whyCap) noexcept;
int step(ferry_security_context* context, const uint8_t* in, size_t inSize, uint8_t* out,
         size_t outCap, size_t* outSize, char* why, size_t whyCap) noexcept;
int queryPeer(ferry_security_context* context, ferry_security_peer_v1* out) noexcept;
int exportSecret(ferry_security_context* context, const char* label, const uint8_t* binding,
                 size_t bindingSize, uint8_t* out, size_t size) noexcept;
void freeContext(ferry_security_context* context) noexcept;
const char* strerror(int error) noexcept;

// Runs the body of a provider's own check_settings or acquire_credentials: returns what it
// returns, or the code of what it threw with the sentence in `why`.
template <typename Body>
int guarded(char* why, size_t whyCap, Body&& body) noexcept;

// Hands a provider's credentials to the host.
ferry_security_credentials* wrap(Credentials* credentials) noexcept;

// Writes `text` to `why` (cut at whyCap, NUL-terminated); nothing when why is null.
void writeWhy(char* why, size_t whyCap, const std::string& text) noexcept;
}  // namespace abi

template <typename Body>
int abi::guarded(char* why, size_t whyCap, Body&& body) noexcept {
  try {
    return body();
  } catch (const Failure& e) {
    writeWhy(why, whyCap, e.what());
    return e.code();
  } catch (const std::bad_alloc&) {
    writeWhy(why, whyCap, "the security provider ran out of memory");
    return kOutOfMemory;
  } catch (const std::exception& e) {
    writeWhy(why, whyCap, std::string("the security provider failed: ") + e.what());
    return kInternal;
  } catch (...) {
    writeWhy(why, whyCap, "the security provider failed with an unknown exception");
    return kInternal;
  }
}

// The table of a provider on this engine. `ProviderSettings` is constructed from the settings
// text (check_settings: it throws Failure for settings it refuses, and reads no file);
// `ProviderCredentials` from the settings text and the roles (acquire_credentials).
template <typename ProviderSettings, typename ProviderCredentials>
struct ProviderAbi {
  static int checkSettings(const char* text, char* why, size_t whyCap) noexcept {
    return abi::guarded(why, whyCap, [&] {
      ProviderSettings settings(text);
      return 0;
    });
  }

  static int acquireCredentials(const ferry_host_v1*, const char* text, uint32_t roles,
                                ferry_security_credentials** out, char* why,
                                size_t whyCap) noexcept {
    return abi::guarded(why, whyCap, [&] {
      if (out == nullptr || roles == 0 ||
          (roles & ~(FERRY_SECURITY_ROLE_CLIENT | FERRY_SECURITY_ROLE_SERVER)) != 0) {
        throw Failure(kBadArgument, "acquire_credentials needs client and/or server roles and "
                                    "a place for the credentials");
      }
      *out = nullptr;
      *out = abi::wrap(new ProviderCredentials(text, roles));
      return 0;
    });
  }

  // Both providers authenticate both ends and export secrets for integrity and privacy.
  static constexpr ferry_security_v1 table(uint32_t providerId) {
    return {
        .struct_size = sizeof(ferry_security_v1),
        .abi_version = FERRY_PLUGIN_ABI_VERSION,
        .provider_id = providerId,
        .capabilities =
            FERRY_SECURITY_INTEGRITY | FERRY_SECURITY_PRIVACY | FERRY_SECURITY_MUTUAL,
        .max_token_size = kMaxTokenSize,
        .check_settings = checkSettings,
        .acquire_credentials = acquireCredentials,
        .free_credentials = abi::freeCredentials,
        .init_context = abi::initContext,
        .accept_context = abi::acceptContext,
        .step = abi::step,
        .query_peer = abi::queryPeer,
        .export_secret = abi::exportSecret,
        .free_context = abi::freeContext,
        .strerror = abi::strerror,
    };
  }
};

// Marks the one symbol a provider module exports; the modules are built with hidden visibility.
#define FERRY_SECURITY_EXPORT extern "C" __attribute__((visibility("default")))

}  // namespace ferry::security
