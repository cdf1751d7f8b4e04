// Process-wide counters behind Runtime::stats(): one atomic per entry of FERRY_RUNTIME_COUNTERS
// (ferry/runtime.h), counted where the thing happens (`stats().protocolErrors.fetch_add(1, …)`).
#pragma once

#include <atomic>
#include <cstdint>

#include <ferry/runtime.h>

namespace ferry::detail {

struct Stats {
#define FERRY_STATS_ATOMIC(name, meaning) std::atomic<int64_t> name{0};
  FERRY_RUNTIME_COUNTERS(FERRY_STATS_ATOMIC)
#undef FERRY_STATS_ATOMIC
};

Stats& stats() noexcept;

}  // namespace ferry::detail
