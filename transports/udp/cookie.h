// Stateless address validation (PROTOCOL.md, "Handshake"): a server answers a HELLO without a
// valid cookie with a COOKIE and keeps nothing. The cookie is
//
//     ts (u32, seconds on the jar's clock) || HMAC-SHA256(K, family || ip || port || ts ||
//                                                      client_nonce || client_session ||
//                                                      server_epoch)[0..16]
//
// valid for `lifetime`, with K replaced every `rotate` (the previous key is still accepted, as in
// WireGuard's cookie secret), so a cookie proves the client receives at the address it claims.
// Keys come from RAND_priv_bytes and never leave memory; MACs are compared in constant time.
#pragma once

#include <openssl/evp.h>
#include <sys/socket.h>

#include <cstdint>

#include "wire.h"

namespace ferry::transports::udp {

class CookieJar {
public:
  // Throws std::bad_alloc or std::runtime_error when OpenSSL cannot provide HMAC-SHA256.
  CookieJar(uint64_t epoch, uint64_t lifetimeNs, uint64_t rotateNs, uint64_t nowNs);
  ~CookieJar();
  CookieJar(const CookieJar&) = delete;
  CookieJar& operator=(const CookieJar&) = delete;

  // Writes the cookie for a HELLO from `from` into `out`.
  void make(const sockaddr_storage& from, const uint8_t* nonce, uint64_t clientSession,
            uint64_t nowNs, uint8_t* out);
  // True when `cookie` was made by this jar for these inputs and has not expired.
  bool verify(const sockaddr_storage& from, const uint8_t* nonce, uint64_t clientSession,
              const uint8_t* cookie, uint64_t nowNs);

private:
  struct Key {
    EVP_MAC_CTX* context = nullptr;  // initialized with the key; duplicated per use
  };

  void rotateIfDue(uint64_t nowNs);
  void newKey(Key& key);
  bool mac(Key& key, const sockaddr_storage& from, const uint8_t* nonce, uint64_t clientSession,
           uint32_t ts, uint8_t* out);

  uint64_t _epoch;
  uint64_t _lifetimeNs;
  uint64_t _rotateNs;
  uint64_t _originNs;
  uint64_t _rotatedAtNs;
  EVP_MAC* _hmac = nullptr;
  Key _current;
  Key _previous;
};

}  // namespace ferry::transports::udp
