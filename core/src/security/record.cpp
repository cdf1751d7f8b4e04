#include "record.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <cstring>
#include <string_view>

#include <ferry/error.h>

#include "../stats.h"

namespace ferry::detail::security {

namespace {

// The sealed frame's header: magic, kind 9, flags 0, two reserved zero bytes, the number
// (little-endian), eight reserved zero bytes.
constexpr uint8_t kMagic[4] = {'F', 'R', 'Y', '1'};
constexpr uint8_t kSealedKind = 11;

// Fetched once (OpenSSL 3's implicit fetch on every call is slow), never freed: the process
// keeps them until it exits.
EVP_CIPHER* gcm() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  FERRY_REQUIRE(cipher != nullptr, Errc::unavailable,
                "OpenSSL offers no AES-256-GCM; install a libssl3 with the default provider");
  return cipher;
}

EVP_KDF* hkdf() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  FERRY_REQUIRE(kdf != nullptr, Errc::unavailable,
                "OpenSSL offers no HKDF; install a libssl3 with the default provider");
  return kdf;
}

void putLe64(uint8_t* out, uint64_t value) noexcept {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}

uint64_t getLe64(const uint8_t* in) noexcept {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= static_cast<uint64_t>(in[i]) << (8 * i);
  return value;
}

std::array<uint8_t, 12> nonceFor(const DirectionKeys& keys, uint64_t number) noexcept {
  std::array<uint8_t, 12> nonce = keys.iv;
  for (int i = 0; i < 8; ++i) nonce[4 + i] ^= static_cast<uint8_t>(number >> (8 * (7 - i)));
  return nonce;
}

void deriveTraffic(DirectionKeys& keys) {
  hkdfExpand(keys.secret, "key", keys.key);
  hkdfExpand(keys.secret, "iv", keys.iv);
}

void dropped() noexcept { stats().sealedFramesDropped.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

// ---- ReplayWindow --------------------------------------------------------------------------------

bool ReplayWindow::check(uint64_t number) const noexcept {
  if (number == UINT64_MAX) return false;  // never sent: the sender stops long before
  uint64_t n = number + 1;
  if (n > _next) return true;
  if (_next - n >= kSpan) return false;
  return (_ring[(n / kWordBits) % kWords] & (uint64_t{1} << (n % kWordBits))) == 0;
}

void ReplayWindow::commit(uint64_t number) noexcept {
  uint64_t n = number + 1;
  if (n > _next) {
    uint64_t from = _next / kWordBits;
    uint64_t to = n / kWordBits;
    uint64_t clear = std::min<uint64_t>(to - from, kWords);
    for (uint64_t i = 1; i <= clear; ++i) _ring[(from + i) % kWords] = 0;
    _next = n;
  }
  _ring[(n / kWordBits) % kWords] |= uint64_t{1} << (n % kWordBits);
}

// ---- key derivation ------------------------------------------------------------------------------

void hkdfExpand(std::span<const uint8_t> secret, std::string_view info, std::span<uint8_t> out) {
  EVP_KDF_CTX* context = EVP_KDF_CTX_new(hkdf());
  FERRY_REQUIRE(context != nullptr, Errc::internal, "OpenSSL could not make an HKDF context");
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(secret.data()),
                                        secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end()};
  int rc = EVP_KDF_derive(context, out.data(), out.size(), params);
  EVP_KDF_CTX_free(context);
  FERRY_REQUIRE(rc > 0, Errc::internal, "OpenSSL's HKDF failed to derive {} bytes", out.size());
}

std::array<uint8_t, 32> sha256(std::span<const uint8_t> data) {
  std::array<uint8_t, 32> out{};
  unsigned size = 0;
  FERRY_REQUIRE(EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr) > 0,
                Errc::internal, "OpenSSL's SHA-256 failed on {} bytes", data.size());
  return out;
}

// ---- RecordLayer ---------------------------------------------------------------------------------

RecordLayer::RecordLayer(std::span<const uint8_t> secret, bool client, SecurityLevel level,
                         std::chrono::steady_clock::duration keyLifetime)
    : _level(level), _keyLifetime(keyLifetime) {
  FERRY_ASSERT(secret.size() == kSecretSize);
  FERRY_ASSERT(level == SecurityLevel::integrity || level == SecurityLevel::privacy);
  DirectionKeys c2s, s2c;
  hkdfExpand(secret, "ferry/1 c2s", c2s.secret);
  hkdfExpand(secret, "ferry/1 s2c", s2c.secret);
  deriveTraffic(c2s);
  deriveTraffic(s2c);
  _send.phase0 = _send.current = client ? c2s : s2c;
  _receive.phase0 = _receive.current = client ? s2c : c2s;
  _send.keyedAt = std::chrono::steady_clock::now();
  _send.context = EVP_CIPHER_CTX_new();
  _receive.context = EVP_CIPHER_CTX_new();
  OPENSSL_cleanse(&c2s, sizeof c2s);
  OPENSSL_cleanse(&s2c, sizeof s2c);
  if (_send.context == nullptr || _receive.context == nullptr) {
    EVP_CIPHER_CTX_free(_send.context);
    EVP_CIPHER_CTX_free(_receive.context);
    FERRY_FAIL(Errc::internal, "OpenSSL could not make a cipher context");
  }
}

RecordLayer::~RecordLayer() {
  EVP_CIPHER_CTX_free(_send.context);
  EVP_CIPHER_CTX_free(_receive.context);
  for (Direction* d : {&_send, &_receive}) {
    OPENSSL_cleanse(&d->phase0, sizeof d->phase0);
    OPENSSL_cleanse(&d->current, sizeof d->current);
  }
}

DirectionKeys RecordLayer::keysFor(Direction& direction, uint64_t phase) {
  DirectionKeys keys = phase >= direction.phase ? direction.current : direction.phase0;
  for (uint64_t p = phase >= direction.phase ? direction.phase : 0; p < phase; ++p) {
    std::array<uint8_t, 32> next{};
    hkdfExpand(keys.secret, "ferry ku", next);
    keys.secret = next;
    OPENSSL_cleanse(next.data(), next.size());
    deriveTraffic(keys);
  }
  return keys;
}

void RecordLayer::load(Direction& direction, const DirectionKeys& keys, uint64_t phase,
                       bool encrypt) {
  if (direction.loadedPhase == phase) return;
  int rc = encrypt ? EVP_EncryptInit_ex2(direction.context, gcm(), keys.key.data(), nullptr, nullptr)
                   : EVP_DecryptInit_ex2(direction.context, gcm(), keys.key.data(), nullptr, nullptr);
  FERRY_REQUIRE(rc > 0, Errc::internal, "OpenSSL could not key AES-256-GCM");
  direction.loadedPhase = phase;
}

std::vector<uint8_t> RecordLayer::seal(std::span<const uint8_t> frame) {
  std::lock_guard lock(_send.mutex);
  auto now = std::chrono::steady_clock::now();
  uint64_t number = _send.nextNumber;
  if (now - _send.keyedAt >= _keyLifetime && (number >> kPhaseShift) == _send.phase) {
    // The key is past its lifetime: this frame is the next phase's first.
    number = ((number >> kPhaseShift) + 1) << kPhaseShift;
  }
  FERRY_REQUIRE(number < (uint64_t{1} << 62), Errc::disconnected,
                "the link sealed 2^62 frames; open a new connection");
  _send.nextNumber = number + 1;
  uint64_t phase = _send.phase;
  std::vector<uint8_t> sealed = sealLocked(_send, frame, number);
  if (_send.phase != phase) _send.keyedAt = now;
  return sealed;
}

std::vector<uint8_t> RecordLayer::sealNumbered(std::span<const uint8_t> frame, uint64_t number) {
  std::lock_guard lock(_send.mutex);
  return sealLocked(_send, frame, number);
}

std::vector<uint8_t> RecordLayer::sealLocked(Direction& d, std::span<const uint8_t> frame,
                                             uint64_t number) {
  uint64_t phase = number >> kPhaseShift;
  if (phase != d.phase) {
    // A sender's numbers only grow: the new phase replaces the current one for good.
    d.current = keysFor(d, phase);
    d.phase = phase;
  }
  load(d, d.current, phase, true);
  // Built by appending, so that no byte is written twice (a zero-filled buffer would cost a
  // pass over a 16 MiB frame): the header, the frame (encrypted in place at privacy), the tag.
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize + frame.size() + kTagSize);
  out.resize(kHeaderSize);
  std::memcpy(out.data(), kMagic, 4);
  out[4] = kSealedKind;
  putLe64(out.data() + 8, number);
  out.insert(out.end(), frame.data(), frame.data() + frame.size());
  out.resize(out.size() + kTagSize);
  std::array<uint8_t, 12> nonce = nonceFor(d.current, number);
  EVP_CIPHER_CTX* c = d.context;
  int n = 0;
  bool ok = EVP_EncryptInit_ex2(c, nullptr, nullptr, nonce.data(), nullptr) > 0 &&
            EVP_EncryptUpdate(c, nullptr, &n, out.data(), kHeaderSize) > 0;
  uint8_t* body = out.data() + kHeaderSize;
  if (_level == SecurityLevel::privacy) {
    ok = ok && EVP_EncryptUpdate(c, body, &n, body, static_cast<int>(frame.size())) > 0 &&
         static_cast<size_t>(n) == frame.size();
  } else {
    // Integrity: the frame is authenticated data and travels as it is.
    ok = ok && EVP_EncryptUpdate(c, nullptr, &n, body, static_cast<int>(frame.size())) > 0;
  }
  ok = ok && EVP_EncryptFinal_ex(c, body + frame.size(), &n) > 0 &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, kTagSize, body + frame.size()) > 0;
  FERRY_REQUIRE(ok, Errc::internal, "OpenSSL failed to seal a frame of {} bytes", frame.size());
  return out;
}

std::optional<std::vector<uint8_t>> RecordLayer::open(std::span<const uint8_t> sealed,
                                                      bool* replayed) {
  std::lock_guard lock(_receive.mutex);
  std::optional<std::span<const uint8_t>> frame = openLocked(sealed, replayed);
  if (!frame) return std::nullopt;
  return std::vector<uint8_t>(frame->begin(), frame->end());
}

std::optional<std::span<const uint8_t>> RecordLayer::openInPlace(std::span<const uint8_t> sealed,
                                                                 bool* replayed) {
  std::lock_guard lock(_receive.mutex);
  return openLocked(sealed, replayed);
}

std::optional<std::span<const uint8_t>> RecordLayer::openLocked(std::span<const uint8_t> sealed,
                                                                bool* replayed) {
  if (replayed != nullptr) *replayed = false;
  if (sealed.size() < kOverhead || std::memcmp(sealed.data(), kMagic, 4) != 0 ||
      sealed[4] != kSealedKind || sealed[5] != 0 || sealed[6] != 0 || sealed[7] != 0 ||
      getLe64(sealed.data() + 16) != 0) {
    dropped();
    return std::nullopt;
  }
  uint64_t number = getLe64(sealed.data() + 8);
  Direction& d = _receive;
  // The receiver accepts the current phase, the one before (frames overtaken at the boundary)
  // and the next; anything else is older than the windows or a forgery.
  uint64_t phase = number >> kPhaseShift;
  if (phase + 1 < d.phase || phase > d.phase + 1) {
    dropped();
    return std::nullopt;
  }
  ReplayWindow& window = phase < d.phase ? d.previousWindow : d.window;
  if (!window.check(number)) {
    stats().replaysDropped.fetch_add(1, std::memory_order_relaxed);
    if (replayed != nullptr) *replayed = true;
    return std::nullopt;
  }
  DirectionKeys keys = phase == d.phase ? d.current : keysFor(d, phase);
  load(d, keys, phase, false);
  size_t bodySize = sealed.size() - kOverhead;
  const uint8_t* body = sealed.data() + kHeaderSize;
  std::array<uint8_t, 12> nonce = nonceFor(keys, number);
  std::array<uint8_t, kTagSize> tag{};
  std::memcpy(tag.data(), body + bodySize, kTagSize);
  // The plaintext's buffer grows to the largest frame and stays: its pages are faulted in once.
  if (_level == SecurityLevel::privacy && d.plaintext.size() < bodySize) d.plaintext.resize(bodySize);
  uint8_t* plaintext = d.plaintext.data();
  EVP_CIPHER_CTX* c = d.context;
  int n = 0;
  bool ok = EVP_DecryptInit_ex2(c, nullptr, nullptr, nonce.data(), nullptr) > 0 &&
            EVP_DecryptUpdate(c, nullptr, &n, sealed.data(), kHeaderSize) > 0;
  if (_level == SecurityLevel::privacy) {
    ok = ok && EVP_DecryptUpdate(c, plaintext, &n, body, static_cast<int>(bodySize)) > 0;
  } else {
    ok = ok && EVP_DecryptUpdate(c, nullptr, &n, body, static_cast<int>(bodySize)) > 0;
  }
  uint8_t end[16];
  ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag.data()) > 0 &&
       EVP_DecryptFinal_ex(c, end, &n) > 0;
  if (!ok) {
    // Nothing decrypted is released, and the window stays where it was.
    if (_level == SecurityLevel::privacy && bodySize > 0) OPENSSL_cleanse(plaintext, bodySize);
    OPENSSL_cleanse(&keys, sizeof keys);
    dropped();
    return std::nullopt;
  }
  if (phase > d.phase) {
    // The next phase's first frame to verify: the current window becomes the previous one.
    d.previousWindow = d.window;
    d.window = ReplayWindow();
    d.current = keys;
    d.phase = phase;
  }
  (phase < d.phase ? d.previousWindow : d.window).commit(number);
  OPENSSL_cleanse(&keys, sizeof keys);
  if (_level == SecurityLevel::integrity) return std::span<const uint8_t>(body, bodySize);
  return std::span<const uint8_t>(plaintext, bodySize);
}

}  // namespace ferry::detail::security
