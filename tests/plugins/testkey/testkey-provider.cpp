// The test-only `testkey` security provider: a test fixture, not a provider to deploy. Both ends
// hold one fixed 256-bit key compiled in, prove it to each other with HMAC-SHA-256 over fresh
// nonces, and export HMAC(key, label ‖ binding ‖ nonces) as the link's secret — enough for the
// tests to drive the bind exchange and core's record layer at integrity and privacy over tcp and
// udp without the psk and tls providers. It has no forward secrecy and no key of the user's; it
// is installed nowhere and is not on the build tree's FERRY_PLUGIN_PATH.
//
//   client → cn (32 random bytes)                                  CONTINUE
//   server → sn ‖ HMAC(key, "server" ‖ cn ‖ sn)                     CONTINUE
//   client → HMAC(key, "client" ‖ cn ‖ sn)                          OK
//   server: verifies it                                            OK
// Principal: "test:fixed". Settings: none.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <ferry/plugin/security.h>

#define FERRY_TESTKEY_EXPORT extern "C" __attribute__((visibility("default")))

struct ferry_security_credentials {
  int unused = 0;
};

struct ferry_security_context {
  bool server = false;
  int stage = 0;  // steps taken
  bool established = false;
  uint8_t cn[32] = {};
  uint8_t sn[32] = {};
};

namespace {

constexpr uint8_t kKey[32] = {0x66, 0x65, 0x72, 0x72, 0x79, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x6b,
                              0x65, 0x79, 0x2d, 0x6e, 0x6f, 0x74, 0x2d, 0x61, 0x2d, 0x73, 0x65,
                              0x63, 0x72, 0x65, 0x74, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34};

enum Error : int { kFailed = -1, kBadProof = -2, kState = -3 };

bool mac(const std::string& role, const uint8_t* a, const uint8_t* b, size_t size, uint8_t* out) {
  std::vector<uint8_t> data(role.begin(), role.end());
  data.insert(data.end(), a, a + 32);
  data.insert(data.end(), b, b + size);
  size_t written = 0;
  return EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, kKey, sizeof kKey, data.data(),
                   data.size(), out, 32, &written) != nullptr &&
         written == 32;
}

int checkSettings(const char* settings, char*, size_t) {
  return settings == nullptr || *settings == 0 ? 0 : kFailed;
}

int acquire(const ferry_host_v1*, const char*, uint32_t, ferry_security_credentials** out, char*,
            size_t) {
  *out = new (std::nothrow) ferry_security_credentials;
  return *out != nullptr ? 0 : kFailed;
}

void freeCredentials(ferry_security_credentials* c) { delete c; }

int newContext(bool server, ferry_security_context** out) {
  *out = new (std::nothrow) ferry_security_context;
  if (*out == nullptr) return kFailed;
  (*out)->server = server;
  return 0;
}

int initContext(ferry_security_credentials*, const char*, const ferry_security_link_v1*,
                ferry_security_context** out, char*, size_t) {
  return newContext(false, out);
}

int acceptContext(ferry_security_credentials*, const ferry_security_link_v1*,
                  ferry_security_context** out, char*, size_t) {
  return newContext(true, out);
}

int step(ferry_security_context* c, const uint8_t* in, size_t size, uint8_t* out, size_t cap,
         size_t* written, char*, size_t) {
  *written = 0;
  if (cap < 64) return kState;
  uint8_t expected[32];
  if (!c->server && c->stage == 0 && size == 0) {
    if (RAND_bytes(c->cn, 32) != 1) return kFailed;
    std::memcpy(out, c->cn, 32);
    *written = 32;
    c->stage = 1;
    return FERRY_SECURITY_CONTINUE;
  }
  if (c->server && c->stage == 0 && size == 32) {
    std::memcpy(c->cn, in, 32);
    if (RAND_bytes(c->sn, 32) != 1 || !mac("server", c->cn, c->sn, 32, out + 32)) return kFailed;
    std::memcpy(out, c->sn, 32);
    *written = 64;
    c->stage = 1;
    return FERRY_SECURITY_CONTINUE;
  }
  if (!c->server && c->stage == 1 && size == 64) {
    std::memcpy(c->sn, in, 32);
    if (!mac("server", c->cn, c->sn, 32, expected)) return kFailed;
    if (CRYPTO_memcmp(expected, in + 32, 32) != 0) return kBadProof;
    if (!mac("client", c->cn, c->sn, 32, out)) return kFailed;
    *written = 32;
    c->stage = 2;
    c->established = true;
    return FERRY_SECURITY_OK;
  }
  if (c->server && c->stage == 1 && size == 32) {
    if (!mac("client", c->cn, c->sn, 32, expected)) return kFailed;
    if (CRYPTO_memcmp(expected, in, 32) != 0) return kBadProof;
    c->stage = 2;
    c->established = true;
    return FERRY_SECURITY_OK;
  }
  return kState;
}

int queryPeer(ferry_security_context* c, ferry_security_peer_v1* out) {
  if (!c->established) return kState;
  std::strcpy(out->principal, "test:fixed");
  out->level = FERRY_SECURITY_LEVEL_PRIVACY;
  return 0;
}

int exportSecret(ferry_security_context* c, const char* label, const uint8_t* binding,
                 size_t bindingSize, uint8_t* out, size_t size) {
  if (!c->established || size != 32) return kState;
  std::vector<uint8_t> tail(c->sn, c->sn + 32);
  tail.insert(tail.end(), binding, binding + bindingSize);
  return mac(std::string("export ") + label, c->cn, tail.data(), tail.size(), out) ? 0 : kFailed;
}

void freeContext(ferry_security_context* c) {
  OPENSSL_cleanse(c, sizeof *c);
  delete c;
}

const char* describe(int error) {
  switch (error) {
    case kBadProof: return "the peer does not hold the test key";
    case kState: return "a token out of turn";
    default: return "the test provider failed";
  }
}

const ferry_security_v1 kTable = {
    .struct_size = sizeof(ferry_security_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .provider_id = 200,
    .capabilities = FERRY_SECURITY_INTEGRITY | FERRY_SECURITY_PRIVACY | FERRY_SECURITY_MUTUAL,
    .max_token_size = 64,
    .check_settings = &checkSettings,
    .acquire_credentials = &acquire,
    .free_credentials = &freeCredentials,
    .init_context = &initContext,
    .accept_context = &acceptContext,
    .step = &step,
    .query_peer = &queryPeer,
    .export_secret = &exportSecret,
    .free_context = &freeContext,
    .strerror = &describe,
};

const ferry_plugin_v1 kDescriptor = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_SECURITY,
    .name = "testkey",
    .description = "test only: a fixed key compiled in; never deploy",
    .table = &kTable,
};

}  // namespace

FERRY_TESTKEY_EXPORT const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1*) {
  return &kDescriptor;
}
