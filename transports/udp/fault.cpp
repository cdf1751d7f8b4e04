#include "fault.h"

namespace ferry::transports::udp {

namespace {

uint64_t splitmix64(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr uint64_t kNsPerMs = 1000000;

}  // namespace

FaultRandom::FaultRandom(uint64_t seed) noexcept {
  uint64_t x = seed;
  _state = splitmix64(x);
  if (_state == 0) _state = 1;
}

uint64_t FaultRandom::next() noexcept {
  _state ^= _state >> 12;
  _state ^= _state << 25;
  _state ^= _state >> 27;
  return _state * 0x2545F4914F6CDD1Dull;
}

double FaultRandom::uniform() noexcept {
  return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t FaultRandom::below(uint64_t bound) noexcept { return next() % bound; }

void FaultInjector::shape(FaultCopy& copy, size_t size) noexcept {
  copy.delayNs = _config.delayMs * kNsPerMs;
  copy.length = size;
  copy.flipBit = -1;
  if (_config.reorder > 0 && _random.uniform() < _config.reorder) {
    uint64_t span = _config.reorderMs > 0 ? _config.reorderMs * kNsPerMs : kNsPerMs;
    copy.delayNs += 1 + _random.below(span);
  }
  if (copy.delayNs > 0) ++_counts.delayed;
  if (_config.truncate > 0 && size > 0 && _random.uniform() < _config.truncate) {
    copy.length = static_cast<size_t>(_random.below(size));
    ++_counts.truncated;
  }
  if (_config.corrupt > 0 && copy.length > 0 && _random.uniform() < _config.corrupt) {
    copy.flipBit = static_cast<int64_t>(_random.below(uint64_t{copy.length} * 8));
    ++_counts.corrupted;
  }
}

size_t FaultInjector::decide(size_t size, FaultCopy copies[2]) noexcept {
  if (_config.maxSize > 0 && size > _config.maxSize) {
    ++_counts.oversized;
    return 0;
  }
  if (_config.drop > 0 && _random.uniform() < _config.drop) {
    ++_counts.dropped;
    return 0;
  }
  size_t count = 1;
  shape(copies[0], size);
  if (_config.dup > 0 && _random.uniform() < _config.dup) {
    ++_counts.duplicated;
    shape(copies[1], size);
    count = 2;
  }
  return count;
}

}  // namespace ferry::transports::udp
