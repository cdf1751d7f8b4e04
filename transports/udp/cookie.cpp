#include "cookie.h"

#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <new>
#include <stdexcept>
#include <utility>

namespace ferry::transports::udp {

namespace {

constexpr uint64_t kNsPerSecond = 1000000000ull;
constexpr size_t kKeySize = 32;
constexpr size_t kMacSize = kCookieSize - 4;

void freeKey(EVP_MAC_CTX*& context) {
  EVP_MAC_CTX_free(context);
  context = nullptr;
}

}  // namespace

CookieJar::CookieJar(uint64_t epoch, uint64_t lifetimeNs, uint64_t rotateNs, uint64_t nowNs)
    : _epoch(epoch),
      _lifetimeNs(lifetimeNs),
      _rotateNs(rotateNs),
      _originNs(nowNs),
      _rotatedAtNs(nowNs) {
  _hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (_hmac == nullptr) throw std::runtime_error("OpenSSL offers no HMAC");
  try {
    newKey(_current);
    newKey(_previous);
  } catch (...) {
    freeKey(_current.context);
    freeKey(_previous.context);
    EVP_MAC_free(_hmac);
    throw;
  }
}

CookieJar::~CookieJar() {
  freeKey(_current.context);
  freeKey(_previous.context);
  EVP_MAC_free(_hmac);
}

void CookieJar::newKey(Key& key) {
  uint8_t secret[kKeySize];
  if (RAND_priv_bytes(secret, sizeof(secret)) != 1) {
    throw std::runtime_error("OpenSSL's random generator failed");
  }
  EVP_MAC_CTX* context = EVP_MAC_CTX_new(_hmac);
  if (context == nullptr) {
    OPENSSL_cleanse(secret, sizeof(secret));
    throw std::bad_alloc();
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  int ok = EVP_MAC_init(context, secret, sizeof(secret), params);
  OPENSSL_cleanse(secret, sizeof(secret));
  if (ok != 1) {
    EVP_MAC_CTX_free(context);
    throw std::runtime_error("OpenSSL cannot initialize HMAC-SHA256");
  }
  freeKey(key.context);
  key.context = context;
}

void CookieJar::rotateIfDue(uint64_t nowNs) {
  if (nowNs - _rotatedAtNs < _rotateNs) return;
  // Cookies made two periods ago have expired (lifetime <= rotate), so the previous key may go.
  std::swap(_current, _previous);
  newKey(_current);
  if (nowNs - _rotatedAtNs >= 2 * _rotateNs) newKey(_previous);
  _rotatedAtNs = nowNs;
}

bool CookieJar::mac(Key& key, const sockaddr_storage& from, const uint8_t* nonce,
                    uint64_t clientSession, uint32_t ts, uint8_t* out) {
  uint8_t input[1 + 16 + 2 + 4 + kNonceSize + 8 + 8];
  Writer w(input, sizeof(input));
  if (from.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(from);
    w.u8(4);
    w.bytes(reinterpret_cast<const uint8_t*>(&in.sin_addr), 4);
    w.bytes(reinterpret_cast<const uint8_t*>(&in.sin_port), 2);
  } else {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(from);
    w.u8(6);
    w.bytes(reinterpret_cast<const uint8_t*>(&in6.sin6_addr), 16);
    w.bytes(reinterpret_cast<const uint8_t*>(&in6.sin6_port), 2);
  }
  w.u32(ts);
  w.bytes(nonce, kNonceSize);
  w.u64(clientSession);
  w.u64(_epoch);
  EVP_MAC_CTX* context = EVP_MAC_CTX_dup(key.context);
  if (context == nullptr) return false;
  uint8_t digest[EVP_MAX_MD_SIZE];
  size_t length = 0;
  bool ok = EVP_MAC_update(context, input, w.size()) == 1 &&
            EVP_MAC_final(context, digest, &length, sizeof(digest)) == 1 && length >= kMacSize;
  EVP_MAC_CTX_free(context);
  if (ok) std::memcpy(out, digest, kMacSize);
  return ok;
}

void CookieJar::make(const sockaddr_storage& from, const uint8_t* nonce, uint64_t clientSession,
                     uint64_t nowNs, uint8_t* out) {
  rotateIfDue(nowNs);
  uint32_t ts = static_cast<uint32_t>((nowNs - _originNs) / kNsPerSecond);
  Writer w(out, kCookieSize);
  w.u32(ts);
  if (!mac(_current, from, nonce, clientSession, ts, out + 4)) {
    // A cookie that never verifies: the client retries, and the failure is OpenSSL's.
    std::memset(out + 4, 0, kMacSize);
  }
}

bool CookieJar::verify(const sockaddr_storage& from, const uint8_t* nonce, uint64_t clientSession,
                       const uint8_t* cookie, uint64_t nowNs) {
  rotateIfDue(nowNs);
  Reader r(cookie, kCookieSize);
  uint32_t ts = r.u32();
  uint64_t nowS = (nowNs - _originNs) / kNsPerSecond;
  if (ts > nowS) return false;
  // Whole seconds: a cookie may live up to a second longer than the lifetime.
  if ((nowS - ts) * kNsPerSecond > _lifetimeNs) return false;
  for (Key* key : {&_current, &_previous}) {
    uint8_t expected[kMacSize];
    if (!mac(*key, from, nonce, clientSession, ts, expected)) return false;
    if (CRYPTO_memcmp(expected, cookie + 4, kMacSize) == 0) return true;
  }
  return false;
}

}  // namespace ferry::transports::udp
