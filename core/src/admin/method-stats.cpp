#include "method-stats.h"

#include <algorithm>

namespace ferry::detail::admin {

MethodStats& MethodStats::instance() noexcept {
  static MethodStats stats;
  return stats;
}

MethodStats::Slot* MethodStats::slotFor(uint64_t iid, uint16_t method) noexcept {
  size_t start = static_cast<size_t>((iid ^ (uint64_t{method} * 0x9e3779b97f4a7c15ull)) %
                                     kSlots);
  for (size_t probe = 0; probe < kSlots; ++probe) {
    Slot& slot = _slots[(start + probe) % kSlots];
    uint32_t state = slot.state.load(std::memory_order_acquire);
    if (state == 0) {
      if (slot.state.compare_exchange_strong(state, 1, std::memory_order_acq_rel)) {
        slot.iid.store(iid, std::memory_order_relaxed);
        slot.method.store(method, std::memory_order_relaxed);
        slot.state.store(2, std::memory_order_release);
        return &slot;
      }
    }
    // Another thread is writing this slot's key: it does two stores, so the wait is short.
    while (state == 1) state = slot.state.load(std::memory_order_acquire);
    if (slot.iid.load(std::memory_order_relaxed) == iid &&
        slot.method.load(std::memory_order_relaxed) == method) {
      return &slot;
    }
  }
  return nullptr;
}

void MethodStats::record(uint64_t iid, uint16_t method, bool failed,
                         std::chrono::steady_clock::duration elapsed) noexcept {
  Slot* slot = slotFor(iid, method);
  if (slot == nullptr) return;
  slot->calls.fetch_add(1, std::memory_order_relaxed);
  if (failed) slot->errors.fetch_add(1, std::memory_order_relaxed);
  auto micros = static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()));
  // Bucket i holds the calls of at most kLatencyBoundsMicros[i] (and more than the bound before).
  size_t bucket = static_cast<size_t>(
      std::lower_bound(kLatencyBoundsMicros.begin(), kLatencyBoundsMicros.end(), micros) -
      kLatencyBoundsMicros.begin());
  slot->latency[bucket].fetch_add(1, std::memory_order_relaxed);
}

std::vector<MethodStats::Row> MethodStats::snapshot() const {
  std::vector<Row> rows;
  for (const Slot& slot : _slots) {
    if (slot.state.load(std::memory_order_acquire) != 2) continue;
    Row& row = rows.emplace_back();
    row.iid = Iid(slot.iid.load(std::memory_order_relaxed));
    row.method = slot.method.load(std::memory_order_relaxed);
    row.calls = slot.calls.load(std::memory_order_relaxed);
    row.errors = slot.errors.load(std::memory_order_relaxed);
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
      row.latency[i] = slot.latency[i].load(std::memory_order_relaxed);
    }
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.iid.value != b.iid.value ? a.iid.value < b.iid.value : a.method < b.method;
  });
  return rows;
}

}  // namespace ferry::detail::admin
