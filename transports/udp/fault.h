// The fault layer's decisions: what happens to one datagram on its way out of or into an
// instance (dropped, duplicated, held back, cut short, a bit flipped), drawn from a seeded PRNG so
// that a seed gives the same sequence of decisions every run, like DCE's dglossy.c. The instance
// applies the decisions (udp-transport.cpp); this file only decides and counts.
#pragma once

#include <cstddef>
#include <cstdint>

#include "options.h"

namespace ferry::transports::udp {

// What the fault layer did, per direction; the tests compare these with the drops they observe.
struct FaultCounts {
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t delayed = 0;     // held back by reorder or delay_ms
  uint64_t truncated = 0;
  uint64_t corrupted = 0;
  uint64_t oversized = 0;   // dropped by max_size
};

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
