// The record layer: how every frame after a link's bind exchange is protected, on every
// transport (core/schema/orpc.capnp specifies the sealed frame; README.md here the design).
//
// Keys come from the secret the provider exported for the link, through HKDF-Expand (SHA-256):
// one secret per direction ("ferry/1 c2s", "ferry/1 s2c"), so a frame reflected back to its
// sender never opens; from each, the AES-256-GCM key ("key") and IV ("iv") of key phase 0, and
// each later phase's secret from the one before ("ferry ku"). A frame's 64-bit number, counted
// per direction from 0 and carried in the clear in its header, picks its phase (number >> 22:
// a new key every 2^22 frames, well before GCM's limits) and its nonce (IV xor the number).
// A sender whose key is older than its key lifetime (an hour) moves on to the next phase at its
// next frame, skipping the rest of the phase's numbers; the receiver needs no signal for either.
// The AAD is the sealed frame's header, number included; at integrity also the frame itself,
// which then travels readable with an empty ciphertext (GMAC); at privacy it is encrypted.
//
// Receiving checks the number against a 2048-frame replay window of its phase (frames of
// different calls may overtake each other on udp; the receiver keeps the window of the phase
// before its current one, for frames overtaken at a key update), then the tag, and only then
// commits the number to the window: a forged frame, whatever number it names, never moves the
// window. A frame that fails anything is dropped and counted, never answered; the bind layer
// closes a link on which too many fail (orpc/bind.h).
//
// Threading: seal() and open() may each be called from any thread (one lock per direction).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include <ferry/security.h>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;  // NOLINT: matches OpenSSL

namespace ferry::detail::security {

// Which numbers a receiver has seen: the newest and the 2048 before it (RFC 6479's ring of
// words, as WireGuard's counter_validate), split so the caller checks, verifies, then commits.
class ReplayWindow {
public:
  static constexpr uint64_t kBits = 2048;

  // Whether `number` may still be accepted: newer than the window's oldest and not seen.
  bool check(uint64_t number) const noexcept;
  // Marks `number` seen, sliding the window when it is the newest. Only after the frame verified.
  void commit(uint64_t number) noexcept;

private:
  static constexpr uint64_t kWordBits = 64;
  static constexpr uint64_t kWords = kBits / kWordBits;
  // The window spans kBits - kWordBits numbers below the newest (the ring's last word is
  // cleared as it slides).
  static constexpr uint64_t kSpan = kBits - kWordBits;

  uint64_t _next = 0;  // newest committed number + 1; 0: none yet
  std::array<uint64_t, kWords> _ring{};
};

// Key material of one direction and phase.
struct DirectionKeys {
  std::array<uint8_t, 32> secret{};
  std::array<uint8_t, 32> key{};
  std::array<uint8_t, 12> iv{};
};

class RecordLayer {
public:
  static constexpr size_t kHeaderSize = 24;
  static constexpr size_t kTagSize = 16;
  static constexpr size_t kOverhead = kHeaderSize + kTagSize;
  static constexpr size_t kSecretSize = 32;
  // Frames per key phase (2^22, RFC 9001 §6.6 keeps AES-GCM under 2^23).
  static constexpr unsigned kPhaseShift = 22;
  // How long a sender keeps one key (the design brief's hour) before it moves to the next phase.
  static constexpr std::chrono::steady_clock::duration kKeyLifetime = std::chrono::hours(1);

  // `secret`: kSecretSize bytes the provider exported for this link (both ends the same).
  // `client`: this end opened the link (it seals c2s and opens s2c). `level`: integrity or
  // privacy. `keyLifetime`: how long this end seals under one key (tests shorten it).
  RecordLayer(std::span<const uint8_t> secret, bool client, SecurityLevel level,
              std::chrono::steady_clock::duration keyLifetime = kKeyLifetime);
  RecordLayer(const RecordLayer&) = delete;
  ~RecordLayer();

  SecurityLevel level() const noexcept { return _level; }

  // The sealed frame carrying `frame` under the next number of this end's direction.
  std::vector<uint8_t> seal(std::span<const uint8_t> frame);
  // The frame a sealed frame carries, or null when it is malformed, replayed or fails its tag
  // (counted in Runtime::stats()); `replayed`, when given, says whether a null was a replay (a
  // number seen or older than the window) rather than a malformed or forged frame. Nothing of a
  // frame that fails is released.
  std::optional<std::vector<uint8_t>> open(std::span<const uint8_t> sealed,
                                           bool* replayed = nullptr);
  // As open(), without copying: the frame is the sealed frame's own body at integrity, and at
  // privacy a buffer this layer keeps (no allocation, no page to fault in once it grew to the
  // largest frame). Valid until the next open or openInPlace, and `sealed` must outlive it; for
  // one receiving thread (the bind layer's network thread).
  std::optional<std::span<const uint8_t>> openInPlace(std::span<const uint8_t> sealed,
                                                      bool* replayed = nullptr);

  // For tests: seals under a chosen number (as a sender that already sent that many would).
  std::vector<uint8_t> sealNumbered(std::span<const uint8_t> frame, uint64_t number);

private:
  struct Direction {
    std::mutex mutex;
    EVP_CIPHER_CTX* context = nullptr;
    DirectionKeys phase0;   // phase 0, kept so that any phase can be derived
    DirectionKeys current;  // of `phase`
    uint64_t phase = 0;
    uint64_t loadedPhase = UINT64_MAX;  // the phase whose key `context` holds
    // Send direction.
    uint64_t nextNumber = 0;
    std::chrono::steady_clock::time_point keyedAt;  // when `phase` began
    // Receive direction: the numbers of `phase`, and of the phase before it.
    ReplayWindow window;
    ReplayWindow previousWindow;
    std::vector<uint8_t> plaintext;  // openInPlace's buffer at privacy; only grows
  };

  // The keys of `phase` (derived forward from the current ones, or from phase 0).
  DirectionKeys keysFor(Direction& direction, uint64_t phase);
  void load(Direction& direction, const DirectionKeys& keys, uint64_t phase, bool encrypt);
  std::vector<uint8_t> sealLocked(Direction& direction, std::span<const uint8_t> frame,
                                  uint64_t number);
  std::optional<std::span<const uint8_t>> openLocked(std::span<const uint8_t> sealed,
                                                     bool* replayed);

  const SecurityLevel _level;
  const std::chrono::steady_clock::duration _keyLifetime;
  Direction _send;
  Direction _receive;
};

// HKDF-Expand (RFC 5869) with SHA-256: `size` bytes of `secret` bound to `info`.
void hkdfExpand(std::span<const uint8_t> secret, std::string_view info, std::span<uint8_t> out);

// SHA-256 of `data`.
std::array<uint8_t, 32> sha256(std::span<const uint8_t> data);

}  // namespace ferry::detail::security
