// Waking together with the transport loop: threads that wait for work the loop's I/O thread will
// hand them (an MTA thread's response, an idle MTA pool thread's next request) poll the loop's
// epoll descriptor as well, so they wake when the I/O thread does instead of after it, and spin
// while the I/O thread handles the event. On an idle VM each wake-up of a sleeping thread costs
// tens of microseconds; this takes the second one off the call's path (RuntimeOptions::loopSpin).
#pragma once

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

namespace ferry::detail {

// The transport loop, as threads that wake with it see it. Owned by the transport hub and shared
// with whoever may still poll it, so it outlives the hub.
struct LoopState {
  // The loop's epoll descriptor, readable while the loop has an event to handle; -1 before the
  // loop runs and once the hub stops (before the descriptor is closed).
  std::atomic<int> fd{-1};
  // Bumped by the loop before it blocks (a uv_prepare handle): a change means the I/O thread
  // handled what woke it.
  std::atomic<uint64_t> iterations{0};
  // RuntimeOptions::loopSpin of the runtime that owns the loop (0: nobody polls).
  std::chrono::microseconds spin{0};
};

// What a thread needs to wake with the loop (empty: it sleeps as usual).
struct LoopWake {
  std::shared_ptr<const LoopState> loop;

  explicit operator bool() const noexcept {
    return loop != nullptr && loop->fd.load(std::memory_order_acquire) >= 0 && loop->spin.count() > 0;
  }
};

// The calling thread's eventfd (non-blocking), through which whoever hands the thread its work
// wakes it while it polls; created on first use, closed when the thread ends; -1 if it cannot be
// created (the thread then sleeps on its condition variable instead).
int threadEventFd() noexcept;

// Writes the eventfd `fd` (wakes a thread polling it).
void wakeEventFd(int fd) noexcept;

// Consumes what was written to `fd`, if anything.
void drainEventFd(int fd) noexcept;

// Sleeps until `own` is written or the loop has an event, for at most `timeout`; after a loop
// event, spins until `ready()`, the loop finishing that iteration, or the loop's spin time, with
// `*spinning` (if given) true meanwhile. Returns false when it timed out, poll failed, or the loop
// stopped. A hander-over may skip the eventfd write while `*spinning` is true if it made its work
// visible (a sequentially consistent store) before reading the flag (sequentially consistent),
// and the thread reads `ready()` (sequentially consistent) after this returns and before it polls
// again: then either the hander-over sees false and writes, or the thread sees the work.
template <typename Ready>
bool pollWithLoop(const LoopWake& wake, int own, std::chrono::milliseconds timeout, Ready ready,
                  std::atomic<bool>* spinning = nullptr) noexcept;

// ---- implementation ----------------------------------------------------------------------------

// A spin-wait hint to the CPU.
inline void cpuRelax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// poll() on `own` and the loop's descriptor; returns <0 error, 0 timeout, 1 own, 2 loop event.
int pollTwo(int own, int loopFd, std::chrono::milliseconds timeout) noexcept;

template <typename Ready>
bool pollWithLoop(const LoopWake& wake, int own, std::chrono::milliseconds timeout, Ready ready,
                  std::atomic<bool>* spinning) noexcept {
  const LoopState& loop = *wake.loop;
  int fd = loop.fd.load(std::memory_order_acquire);
  if (fd < 0) return false;
  // Read before the sleep: the spin ends as soon as the loop has finished an iteration since.
  // That may be one that only ran timers (they wake nobody), and then the thread does not spin
  // and takes its work through its eventfd, a wake-up later. Reading it after the wake-up
  // instead spins on when the I/O thread was done first; on 2 cores that measured no better
  // (udp null 65-67 us against 68-69, tcp 32 in flight 786-834 us against 630-775).
  uint64_t before = loop.iterations.load(std::memory_order_acquire);
  int woke = pollTwo(own, fd, timeout);
  if (woke <= 0) return false;
  if (woke == 2) {
    if (spinning != nullptr) spinning->store(true);
    auto until = std::chrono::steady_clock::now() + loop.spin;
    while (!ready() && loop.iterations.load(std::memory_order_acquire) == before &&
           std::chrono::steady_clock::now() < until) {
      sched_yield();
    }
    if (spinning != nullptr) spinning->store(false);
  }
  return true;
}

}  // namespace ferry::detail
