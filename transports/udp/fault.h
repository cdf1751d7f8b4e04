// The fault layer's decisions: what happens to one datagram on its way out of or into an
// instance (dropped, duplicated, held back, cut short, a bit flipped), drawn from a seeded PRNG so
// that a seed gives the same sequence of decisions every run, like DCE's dglossy.c. The instance
// of the test-only build applies the decisions (udp-transport-faults.cpp with
// FERRY_UDP_FAULT_LAYER, fault-layer.h); this file only parses the settings, decides and counts.
// The shipping plugin does not contain it.
#pragma once

#include <cstddef>
#include <cstdint>

#include <limits>
#include <string>
#include <vector>

namespace ferry::transports::udp {

// One direction's impairments. Probabilities are in [0, 1].
struct FaultDirection {
  double drop = 0;
  double dup = 0;         // send one extra copy
  double reorder = 0;     // hold the datagram back for a random delay up to reorder_ms
  double truncate = 0;    // cut at a random length, below the datagram's and up to truncateMax
  double corrupt = 0;     // flip one random bit
  uint64_t delayMs = 0;   // added to every datagram
  uint64_t reorderMs = 10;
  uint64_t maxSize = 0;   // datagrams larger than this vanish (a PMTU black hole); 0: no limit
  // The longest a cut datagram stays (truncate_max; 0 sends every cut one empty); no bound
  // unless set.
  uint64_t truncateMax = std::numeric_limits<uint64_t>::max();

  bool active() const noexcept {
    return drop > 0 || dup > 0 || reorder > 0 || truncate > 0 || corrupt > 0 || delayMs > 0 ||
           maxSize > 0;
  }
};

struct FaultConfig {
  uint64_t seed = 1;
  FaultDirection tx;  // applied just before a datagram goes to the kernel
  FaultDirection rx;  // applied just after a datagram came from the kernel

  bool active() const noexcept { return tx.active() || rx.active(); }
};

// Parses a fault spec: `seed`, `dir` (tx, rx or both; default both) saying where the keys without
// a prefix apply, the per-direction keys drop, dup, reorder, truncate, corrupt, delay_ms,
// reorder_ms, max_size, truncate_max with an optional `tx.` or `rx.` prefix, and `blackhole=1`
// (nothing in or out: tx.drop=1,rx.drop=1; `rx.drop=1` alone makes an instance deaf but not
// mute).
void parseFault(const char* text, FaultConfig& fault, std::vector<std::string>& problems);

// What the fault layer did, per direction; the tests compare these with the drops they observe.
struct FaultCounts {
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t delayed = 0;     // held back by reorder or delay_ms
  uint64_t truncated = 0;
  uint64_t corrupted = 0;
  uint64_t oversized = 0;   // dropped by max_size
};

inline void addFaultCounts(FaultCounts& into, const FaultCounts& from) noexcept {
  into.dropped += from.dropped;
  into.duplicated += from.duplicated;
  into.delayed += from.delayed;
  into.truncated += from.truncated;
  into.corrupted += from.corrupted;
  into.oversized += from.oversized;
}

// One copy of a datagram to deliver.
struct FaultCopy {
  uint64_t delayNs = 0;
  size_t length = 0;       // <= the datagram's size
  int64_t flipBit = -1;    // bit index to flip, or -1
};

// A small, fast, seedable generator (xorshift64* seeded through splitmix64).
class FaultRandom {
public:
  explicit FaultRandom(uint64_t seed) noexcept;
  uint64_t next() noexcept;
  double uniform() noexcept;  // [0, 1)
  uint64_t below(uint64_t bound) noexcept;  // [0, bound), bound > 0

private:
  uint64_t _state;
};

class FaultInjector {
public:
  FaultInjector(const FaultDirection& config, uint64_t seed) noexcept
      : _config(config), _random(seed) {}

  bool active() const noexcept { return _config.active(); }

  // Decides the fate of one datagram of `size` bytes: writes up to two copies and returns how
  // many (0: dropped).
  size_t decide(size_t size, FaultCopy copies[2]) noexcept;

  const FaultCounts& counts() const noexcept { return _counts; }

private:
  void shape(FaultCopy& copy, size_t size) noexcept;

  FaultDirection _config;
  FaultRandom _random;
  FaultCounts _counts;
};

}  // namespace ferry::transports::udp
