// Shared test support: a Runtime per test case that must end with nothing left behind.
#pragma once

#include <boost/test/unit_test.hpp>

#include <functional>
#include <optional>
#include <chrono>
#include <thread>

#include <ferry/ferry.h>

namespace ferry::test {

// A hash of the calling thread's id: what Probe/Callback servants report.
inline uint64_t threadHash() {
  return std::hash<std::thread::id>{}(std::this_thread::get_id());
}

// Creates a Runtime; at the end of the test destroys it and checks that nothing it counts as
// live (FERRY_LIVE_COUNTERS: apartments, threads, exported objects, proxies, servants, ...)
// survived it, and that no STA loop closed with a handle left open.
struct RuntimeFixture {
  explicit RuntimeFixture(RuntimeOptions options = {}) { runtime.emplace(options); }

  ~RuntimeFixture() {
    runtime.reset();
    RuntimeStats s = statsNow();
#define FERRY_CHECK_GONE(name, meaning)                                                      \
  BOOST_CHECK_MESSAGE(s.name == 0, #name " (" meaning ") is " << s.name                     \
                                       << " after the runtime was destroyed");
    FERRY_LIVE_COUNTERS(FERRY_CHECK_GONE)
#undef FERRY_CHECK_GONE
    BOOST_CHECK_EQUAL(s.leakedLoopHandles, 0);
  }

  static RuntimeStats statsNow() { return Runtime::stats(); }

  Runtime& rt() { return *runtime; }

  std::optional<Runtime> runtime;
};

// Polls `predicate` until it holds or `limit` passes: for effects that travel asynchronously
// (remote releases are oneway). Returns the predicate's last value.
inline bool eventually(const std::function<bool()>& predicate,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Checks that `fn` throws ferry::Error with `code`.
#define FERRY_CHECK_ERRC(expr, errc)                                                        \
  BOOST_CHECK_EXCEPTION(expr, ::ferry::Error,                                               \
                        [](const ::ferry::Error& e) {                                       \
                          BOOST_TEST_MESSAGE("caught: " << e.what());                       \
                          return e.code() == (errc);                                        \
                        })

}  // namespace ferry::test
