// Per-method statistics of the calls this process serves: calls, errors and a latency histogram
// per (interface, method), process-wide, since the process started. The admin object reports
// them (core/schema/admin.capnp, MethodStats).
//
// record() is on every served call's path: it takes no lock and allocates nothing — a probe of a
// fixed table of slots, each claimed once by compare-and-swap, and relaxed atomic increments.
// Calls a servant serves to its own apartment (plain C++ calls) never pass here.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include <ferry/ids.h>

namespace ferry::detail::admin {

// The upper bounds of the latency buckets, in microseconds; one more bucket holds the rest.
inline constexpr std::array<uint64_t, 15> kLatencyBoundsMicros{
    10, 25, 50, 100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 50'000, 100'000, 500'000,
    1'000'000};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsMicros.size() + 1;

class MethodStats {
public:
  struct Row {
    Iid iid;
    uint16_t method = 0;
    uint64_t calls = 0;
    uint64_t errors = 0;
    std::array<uint64_t, kLatencyBuckets> latency{};
  };

  static MethodStats& instance() noexcept;

  // One served call of method `method` of interface `iid` ended (`failed`: with an error
  // response) after `elapsed`. Methods beyond the table's capacity (kSlots distinct ones) are
  // not counted.
  void record(uint64_t iid, uint16_t method, bool failed,
              std::chrono::steady_clock::duration elapsed) noexcept;

  // Every method served at least once.
  std::vector<Row> snapshot() const;

  static constexpr size_t kSlots = 1024;

private:
  struct Slot {
    // 0 empty, 1 being claimed, 2 ready (iid and method written).
    std::atomic<uint32_t> state{0};
    std::atomic<uint64_t> iid{0};
    std::atomic<uint16_t> method{0};
    std::atomic<uint64_t> calls{0};
    std::atomic<uint64_t> errors{0};
    std::array<std::atomic<uint64_t>, kLatencyBuckets> latency{};
  };

  Slot* slotFor(uint64_t iid, uint16_t method) noexcept;

  std::array<Slot, kSlots> _slots;
};

}  // namespace ferry::detail::admin
