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

// Creates a Runtime; at the end of the test destroys it and checks that no apartment, thread,
// exported object, proxy, servant or loop handle survived it.
struct RuntimeFixture {
  explicit RuntimeFixture(RuntimeOptions options = {}) { runtime.emplace(options); }

  ~RuntimeFixture() {
    runtime.reset();
    RuntimeStats s = statsNow();
    BOOST_CHECK_EQUAL(s.apartments, 0);
    BOOST_CHECK_EQUAL(s.staThreads, 0);
    BOOST_CHECK_EQUAL(s.mtaThreads, 0);
    BOOST_CHECK_EQUAL(s.exportedObjects, 0);
    BOOST_CHECK_EQUAL(s.proxyManagers, 0);
    BOOST_CHECK_EQUAL(s.interfaceProxies, 0);
    BOOST_CHECK_EQUAL(s.servants, 0);
    BOOST_CHECK_EQUAL(s.leakedLoopHandles, 0);
    BOOST_CHECK_EQUAL(s.ioThreads, 0);
    BOOST_CHECK_EQUAL(s.watchedCalls, 0);
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
