// The futex words of the benchmarks' in-process floors: a thread sleeps in the kernel until
// another wakes it (raw FUTEX_WAIT/FUTEX_WAKE: no user-space spinning, which would make a floor
// a measure of two busy cores instead of a hand-off).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace bench {

// Sleeps while `word` still holds `seen` (returns at once when it does not).
inline void futexWait(std::atomic<uint32_t>& word, uint32_t seen) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, nullptr,
          nullptr, 0);
}

// Wakes one thread sleeping on `word`.
inline void futexWake(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr,
          0);
}

}  // namespace bench
