#include "fault.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "options.h"

namespace ferry::transports::udp {

namespace {

uint64_t splitmix64(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr uint64_t kNsPerMs = 1000000;

bool parseProbability(const std::string& text, double& out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !(value >= 0.0 && value <= 1.0)) {
    return false;
  }
  out = value;
  return true;
}

// Sets one impairment of `direction`; false when `key` names none.
bool setFault(FaultDirection& direction, const std::string& key, const std::string& value,
              std::vector<std::string>& problems) {
  double* probability = key == "drop"       ? &direction.drop
                        : key == "dup"      ? &direction.dup
                        : key == "reorder"  ? &direction.reorder
                        : key == "truncate" ? &direction.truncate
                        : key == "corrupt"  ? &direction.corrupt
                                            : nullptr;
  if (probability != nullptr) {
    if (!parseProbability(value, *probability)) {
      problems.push_back(key + "=" + value + ": not a probability from 0 to 1");
    }
    return true;
  }
  uint64_t* amount = key == "delay_ms"       ? &direction.delayMs
                     : key == "reorder_ms"   ? &direction.reorderMs
                     : key == "max_size"     ? &direction.maxSize
                     : key == "truncate_max" ? &direction.truncateMax
                                             : nullptr;
  if (amount != nullptr) {
    if (!parseUnsigned(value, *amount)) problems.push_back(key + "=" + value + ": not a number");
    return true;
  }
  return false;
}

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
    // Shorter than the datagram and at most truncateMax (unset, the draw is below(size)).
    uint64_t longest = std::min<uint64_t>(size - 1, _config.truncateMax);
    copy.length = static_cast<size_t>(_random.below(longest + 1));
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

void parseFault(const char* text, FaultConfig& fault, std::vector<std::string>& problems) {
  // Unprefixed keys apply to the directions `dir` names, which may come anywhere in the list.
  std::vector<std::pair<std::string, std::string>> unprefixed;
  bool tx = true;
  bool rx = true;
  forEachSetting(text, problems, [&](const std::string& key, const std::string& value) {
    if (key == "seed") {
      if (!parseUnsigned(value, fault.seed)) problems.push_back("seed=" + value + ": not a number");
    } else if (key == "dir") {
      if (value == "tx" || value == "rx" || value == "both") {
        tx = value != "rx";
        rx = value != "tx";
      } else {
        problems.push_back("dir=" + value + ": expected tx, rx or both");
      }
    } else if (key == "blackhole") {
      if (value == "1") {
        fault.tx.drop = 1.0;
        fault.rx.drop = 1.0;
      } else if (value != "0") {
        problems.push_back("blackhole=" + value + ": expected 0 or 1");
      }
    } else if (key.rfind("tx.", 0) == 0) {
      if (!setFault(fault.tx, key.substr(3), value, problems)) {
        problems.push_back("unknown fault '" + key + "'");
      }
    } else if (key.rfind("rx.", 0) == 0) {
      if (!setFault(fault.rx, key.substr(3), value, problems)) {
        problems.push_back("unknown fault '" + key + "'");
      }
    } else {
      unprefixed.emplace_back(key, value);
    }
  });
  for (const auto& [key, value] : unprefixed) {
    FaultDirection probe;
    if (!setFault(probe, key, value, problems)) {
      problems.push_back("unknown fault '" + key + "'");
      continue;
    }
    std::vector<std::string> reported;  // already reported through `probe`
    if (tx) setFault(fault.tx, key, value, reported);
    if (rx) setFault(fault.rx, key, value, reported);
  }
}

}  // namespace ferry::transports::udp
