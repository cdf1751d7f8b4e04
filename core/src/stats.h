// Process-wide counters behind Runtime::stats().
#pragma once

#include <atomic>
#include <cstdint>

namespace ferry::detail {

struct Stats {
  std::atomic<int64_t> apartments{0};
  std::atomic<int64_t> staThreads{0};
  std::atomic<int64_t> mtaThreads{0};
  std::atomic<int64_t> exportedObjects{0};
  std::atomic<int64_t> proxyManagers{0};
  std::atomic<int64_t> interfaceProxies{0};
  std::atomic<int64_t> leakedLoopHandles{0};
  std::atomic<int64_t> protocolErrors{0};
  std::atomic<int64_t> onewayFailures{0};
  std::atomic<int64_t> ioThreads{0};
  std::atomic<int64_t> callsResent{0};
  std::atomic<int64_t> duplicateRequests{0};
  std::atomic<int64_t> replyCacheEntries{0};
  std::atomic<int64_t> watchedCalls{0};
  std::atomic<int64_t> registrationsRefused{0};
};

Stats& stats() noexcept;

}  // namespace ferry::detail
