#include "provider.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <string_view>

#include <openssl/err.h>
#include <openssl/x509.h>

namespace ferry::security {
namespace {

// ALPN: the protocol ferry speaks over the handshake, in its wire form (length-prefixed).
constexpr unsigned char kAlpnWire[] = {7, 'f', 'e', 'r', 'r', 'y', '/', '1'};
constexpr std::string_view kAlpn = "ferry/1";

// The exporter label is this prefix and the host's label: RFC 5705 §4 leaves labels that begin
// with "EXPERIMENTAL" free for private use.
constexpr std::string_view kLabelPrefix = "EXPERIMENTAL-ferry/";
constexpr size_t kMaxLabel = 64;
constexpr size_t kMaxSecret = 1024;

// The server's ALPN choice: "ferry/1" or a fatal no_application_protocol alert.
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outSize, const unsigned char* in,
               unsigned int inSize, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outSize, kAlpnWire, sizeof kAlpnWire, in, inSize) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// The server's first look at a ClientHello: refuses one its own credentials sent.
int checkClientHello(SSL* ssl, int* alert, void*) {
  const unsigned char* random = nullptr;
  size_t size = SSL_client_hello_get0_random(ssl, &random);
  Context* context = Context::of(ssl);
  if (context == nullptr || context->isOwnHello(random, size)) {
    *alert = SSL_AD_HANDSHAKE_FAILURE;
    ERR_raise_data(ERR_LIB_SSL, SSL_R_CALLBACK_FAILED,
                   "the ClientHello is one a client of the same credentials sent: a reflected "
                   "handshake");
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace

void OwnHellos::add(const Random& random) {
  std::lock_guard<std::mutex> lock(_mutex);
  _randoms.insert(random);
}

void OwnHellos::remove(const Random& random) noexcept {
  std::lock_guard<std::mutex> lock(_mutex);
  _randoms.erase(random);
}

bool OwnHellos::contains(const unsigned char* random, size_t size) const {
  if (size != SSL3_RANDOM_SIZE) return false;
  Random key;
  std::memcpy(key.data(), random, key.size());
  std::lock_guard<std::mutex> lock(_mutex);
  return _randoms.count(key) != 0;
}

namespace {

int contextIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

Credentials* unwrap(ferry_security_credentials* credentials) noexcept {
  return reinterpret_cast<Credentials*>(credentials);
}

Context* unwrap(ferry_security_context* context) noexcept {
  return reinterpret_cast<Context*>(context);
}

ferry_security_context* wrapContext(Context* context) noexcept {
  return reinterpret_cast<ferry_security_context*>(context);
}

}  // namespace

const char* strerror(int error) noexcept {
  switch (error) {
    case kBadSettings: return "the security settings are malformed or incomplete";
    case kBadCredentials: return "a file named in the security settings is missing, unsafe or unreadable";
    case kAuthFailed: return "the peer failed authentication";
    case kWrongState: return "the call does not fit the security context's state";
    case kTokenTooLarge: return "a security token is larger than the provider allows";
    case kBadArgument: return "a security provider function was called with an invalid argument";
    case kOutOfMemory: return "the security provider ran out of memory";
    case kInternal: return "the security provider failed internally";
    default: return "unknown security provider error";
  }
}

std::string takeOpensslErrors() {
  std::string text;
  int count = 0;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    if (++count > 3) continue;  // the first errors say what failed; later ones repeat the stack
    char buffer[256];
    ERR_error_string_n(e, buffer, sizeof buffer);
    const char* reason = ERR_reason_error_string(e);
    text += std::string(text.empty() ? "" : "; ") + (reason != nullptr ? reason : buffer);
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      text += std::string(" (") + data + ")";
    }
  }
  return text;
}

SslCtxPtr newTls13Ctx(bool server, const char* ciphersuites) {
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) throw Failure(kOutOfMemory, "cannot create a TLS context: " + takeOpensslErrors());
  SSL_CTX* c = ctx.get();
  bool ok = SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) == 1 &&
            SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) == 1 &&
            SSL_CTX_set_ciphersuites(c, ciphersuites) == 1 &&
            SSL_CTX_set1_groups_list(c, "X25519:P-256") == 1 &&
            SSL_CTX_set_num_tickets(c, 0) == 1 && SSL_CTX_set_max_early_data(c, 0) == 1 &&
            SSL_CTX_set_recv_max_early_data(c, 0) == 1;
  // Tokens never cross a middlebox: the compatibility ChangeCipherSpec records are only bytes.
  SSL_CTX_clear_options(c, SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (server) {
    SSL_CTX_set_alpn_select_cb(c, selectAlpn, nullptr);
    SSL_CTX_set_client_hello_cb(c, checkClientHello, nullptr);
  } else {
    ok = ok && SSL_CTX_set_alpn_protos(c, kAlpnWire, sizeof kAlpnWire) == 0;  // 0 is success
  }
  if (!ok) throw Failure(kInternal, "cannot configure TLS 1.3: " + takeOpensslErrors());
  return ctx;
}

Context::Context(SSL_CTX* ctx, bool server, std::shared_ptr<OwnHellos> ownHellos)
    : _server(server), _ownHellos(std::move(ownHellos)) {
  _ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (_ssl == nullptr || in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    SSL_free(_ssl);
    throw Failure(kOutOfMemory, "cannot create a TLS session: " + takeOpensslErrors());
  }
  // An empty read BIO means "wait for the peer's next token", never end of file.
  BIO_set_mem_eof_return(in, -1);
  BIO_set_mem_eof_return(out, -1);
  SSL_set_bio(_ssl, in, out);
  _in = in;
  _out = out;
  SSL_set_ex_data(_ssl, contextIndex(), this);
  if (server) {
    SSL_set_accept_state(_ssl);
  } else {
    SSL_set_connect_state(_ssl);
  }
}

Context::~Context() {
  forgetHello();
  SSL_free(_ssl);
}

void Context::forgetHello() noexcept {
  if (!_helloKept) return;
  OwnHellos::Random random;
  SSL_get_client_random(_ssl, random.data(), random.size());
  _ownHellos->remove(random);
  _helloKept = false;
}

Context* Context::of(SSL* ssl) noexcept {
  return static_cast<Context*>(SSL_get_ex_data(ssl, contextIndex()));
}

int Context::step(const uint8_t* in, size_t inSize, uint8_t* out, size_t outCap,
                  size_t* outSize) {
  *outSize = 0;
  if (_state == State::dead) {
    throw Failure(kWrongState, "this security context failed earlier; the link needs a new one");
  }
  try {
    if (_state == State::established) {
      throw Failure(kAuthFailed, "the peer sent a token after the exchange had ended");
    }
    bool first = SSL_in_before(_ssl) == 1;
    if (inSize == 0 && (_server || !first)) {
      throw Failure(kAuthFailed, "the peer's token is empty");
    }
    if (inSize > kMaxTokenSize) {
      throw Failure(kTokenTooLarge, "the peer's token is " + std::to_string(inSize) +
                                        " bytes, more than the " + std::to_string(kMaxTokenSize) +
                                        " a handshake flight may be");
    }
    if (inSize > 0 && BIO_write(_in, in, static_cast<int>(inSize)) != static_cast<int>(inSize)) {
      throw Failure(kOutOfMemory, "cannot buffer the peer's token: " + takeOpensslErrors());
    }
    int status = advance(out, outCap, outSize);
    if (first && !_server && _ownHellos != nullptr) {
      OwnHellos::Random random;
      SSL_get_client_random(_ssl, random.data(), random.size());
      _ownHellos->add(random);
      _helloKept = true;
    }
    if (status == FERRY_SECURITY_OK) forgetHello();
    return status;
  } catch (...) {
    forgetHello();
    _state = State::dead;
    *outSize = 0;
    throw;
  }
}

int Context::advance(uint8_t* out, size_t outCap, size_t* outSize) {
  ERR_clear_error();
  int r = SSL_do_handshake(_ssl);
  if (r != 1 && SSL_get_error(_ssl, r) != SSL_ERROR_WANT_READ) {
    throw Failure(kAuthFailed, describeHandshakeFailure(takeOpensslErrors()));
  }
  // No alert or other output goes to the peer after a failure (above): core answers every
  // failure with one generic refusal.
  size_t pending = BIO_ctrl_pending(_out);
  if (pending > outCap) {
    throw Failure(kTokenTooLarge, "the next handshake token is " + std::to_string(pending) +
                                      " bytes, more than the " + std::to_string(outCap) +
                                      " the host gave step(); shorten the certificate chain");
  }
  if (pending > 0 && BIO_read(_out, out, static_cast<int>(pending)) != static_cast<int>(pending)) {
    throw Failure(kInternal, "cannot take the handshake's output: " + takeOpensslErrors());
  }
  *outSize = pending;
  if (r != 1) return FERRY_SECURITY_CONTINUE;

  if (SSL_is_init_finished(_ssl) != 1 || SSL_version(_ssl) != TLS1_3_VERSION) {
    throw Failure(kInternal, "the TLS handshake reported success before it finished");
  }
  if (size_t extra = BIO_ctrl_pending(_in); extra != 0) {
    throw Failure(kAuthFailed, "the peer sent " + std::to_string(extra) +
                                   " bytes after its last handshake message");
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpnSize = 0;
  SSL_get0_alpn_selected(_ssl, &alpn, &alpnSize);
  if (alpn == nullptr ||
      std::string_view(reinterpret_cast<const char*>(alpn), alpnSize) != kAlpn) {
    throw Failure(kAuthFailed, "the peer did not agree on the application protocol 'ferry/1' "
                               "(ALPN): it is no ferry peer, or an incompatible version");
  }
  _principal = authenticatePeer();
  _state = State::established;
  return FERRY_SECURITY_OK;
}

std::string Context::describeHandshakeFailure(const std::string& opensslErrors) const {
  long verify = SSL_get_verify_result(_ssl);
  if (verify != X509_V_OK) {
    return std::string("the TLS handshake failed: the peer's certificate was refused (") +
           X509_verify_cert_error_string(verify) + ")";
  }
  return "the TLS handshake failed: " +
         (opensslErrors.empty() ? std::string("the peer's messages were not TLS 1.3")
                                : opensslErrors);
}

void Context::queryPeer(ferry_security_peer_v1& out) const {
  if (_state != State::established) {
    throw Failure(kWrongState, "the peer is known only once step() returned OK");
  }
  std::memset(&out, 0, sizeof out);
  out.struct_size = sizeof out;
  std::memcpy(out.principal, _principal.data(),
              std::min(_principal.size(), sizeof out.principal - 1));
  out.level = FERRY_SECURITY_LEVEL_PRIVACY;
}

void Context::exportSecret(const char* label, const uint8_t* binding, size_t bindingSize,
                           uint8_t* out, size_t size) const {
  if (_state != State::established) {
    throw Failure(kWrongState, "a secret is exported only once step() returned OK");
  }
  size_t labelSize = label == nullptr ? 0 : std::strlen(label);
  if (labelSize == 0 || labelSize > kMaxLabel || out == nullptr || size == 0 ||
      size > kMaxSecret || (binding == nullptr && bindingSize != 0)) {
    throw Failure(kBadArgument, "export_secret needs a label of 1 to 64 characters and 1 to "
                                "1024 bytes of output");
  }
  std::string fullLabel = std::string(kLabelPrefix) + label;
  static const unsigned char kNoBinding = 0;
  if (SSL_export_keying_material(_ssl, out, size, fullLabel.data(), fullLabel.size(),
                                 binding != nullptr ? binding : &kNoBinding, bindingSize,
                                 1) != 1) {
    throw Failure(kInternal, "the TLS exporter failed: " + takeOpensslErrors());
  }
}

namespace abi {

void writeWhy(char* why, size_t whyCap, const std::string& text) noexcept {
  if (why == nullptr || whyCap == 0) return;
  size_t n = std::min(text.size(), whyCap - 1);
  std::memcpy(why, text.data(), n);
  why[n] = '\0';
}

ferry_security_credentials* wrap(Credentials* credentials) noexcept {
  return reinterpret_cast<ferry_security_credentials*>(credentials);
}

void freeCredentials(ferry_security_credentials* credentials) noexcept {
  delete unwrap(credentials);
}

int initContext(ferry_security_credentials* credentials, const char* target,
                const ferry_security_link_v1*, ferry_security_context** out, char* why,
                size_t whyCap) noexcept {
  return guarded(why, whyCap, [&] {
    if (credentials == nullptr || out == nullptr) {
      throw Failure(kBadArgument, "init_context needs credentials and a place for the context");
    }
    *out = nullptr;
    *out = wrapContext(unwrap(credentials)->newClient(target != nullptr ? target : "").release());
    return 0;
  });
}

int acceptContext(ferry_security_credentials* credentials, const ferry_security_link_v1*,
                  ferry_security_context** out, char* why, size_t whyCap) noexcept {
  return guarded(why, whyCap, [&] {
    if (credentials == nullptr || out == nullptr) {
      throw Failure(kBadArgument,
                    "accept_context needs credentials and a place for the context");
    }
    *out = nullptr;
    *out = wrapContext(unwrap(credentials)->newServer().release());
    return 0;
  });
}

int step(ferry_security_context* context, const uint8_t* in, size_t inSize, uint8_t* out,
         size_t outCap, size_t* outSize, char* why, size_t whyCap) noexcept {
  return guarded(why, whyCap, [&] {
    if (context == nullptr || outSize == nullptr || (in == nullptr && inSize != 0) ||
        (out == nullptr && outCap != 0)) {
      throw Failure(kBadArgument, "step() was called with a null context, token or output");
    }
    return unwrap(context)->step(in, inSize, out, outCap, outSize);
  });
}

int queryPeer(ferry_security_context* context, ferry_security_peer_v1* out) noexcept {
  return guarded(nullptr, 0, [&] {
    if (context == nullptr || out == nullptr) throw Failure(kBadArgument, "");
    unwrap(context)->queryPeer(*out);
    return 0;
  });
}

int exportSecret(ferry_security_context* context, const char* label, const uint8_t* binding,
                 size_t bindingSize, uint8_t* out, size_t size) noexcept {
  return guarded(nullptr, 0, [&] {
    if (context == nullptr) throw Failure(kBadArgument, "");
    unwrap(context)->exportSecret(label, binding, bindingSize, out, size);
    return 0;
  });
}

void freeContext(ferry_security_context* context) noexcept { delete unwrap(context); }

const char* strerror(int error) noexcept { return security::strerror(error); }

}  // namespace abi
}  // namespace ferry::security
