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

namespace ferry::detail {

// What a thread needs to wake with the loop. Published by the transport hub once its loop runs.
struct LoopWake {
  int fd = -1;  // the loop's epoll descriptor: readable while the loop has an event to handle
  // Bumped by the loop before it blocks (a uv_prepare handle): a change means the I/O thread
  // handled what woke it.
  const std::atomic<uint64_t>* iterations = nullptr;

  explicit operator bool() const noexcept { return fd >= 0 && iterations != nullptr; }
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
// event, spins until `ready()`, the loop finishing that iteration, or `spin`, with `*spinning`
// (if given) true meanwhile. Returns false when it timed out or poll failed.
template <typename Ready>
bool pollWithLoop(const LoopWake& wake, int own, std::chrono::milliseconds timeout,
                  std::chrono::microseconds spin, Ready ready,
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
bool pollWithLoop(const LoopWake& wake, int own, std::chrono::milliseconds timeout,
                  std::chrono::microseconds spin, Ready ready,
                  std::atomic<bool>* spinning) noexcept {
  uint64_t before = wake.iterations->load(std::memory_order_acquire);
  int woke = pollTwo(own, wake.fd, timeout);
  if (woke <= 0) return false;
  if (woke == 2) {
    if (spinning != nullptr) spinning->store(true, std::memory_order_release);
    auto until = std::chrono::steady_clock::now() + spin;
    while (!ready() && wake.iterations->load(std::memory_order_acquire) == before &&
           std::chrono::steady_clock::now() < until) {
      sched_yield();
    }
    if (spinning != nullptr) spinning->store(false, std::memory_order_release);
  }
  return true;
}

}  // namespace ferry::detail
