// Servants for testing.capnp, shared by the core tests.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <ferry/ferry.h>
#include <ferry/generated.h>

#include "apartment-impl.h"
#include "fixture.h"
#include "testing.ferry.h"

namespace ferry::test {

// Probe.waitForCancel: polls callCanceled() every millisecond for up to `maxMillis`.
inline bool pollForCancel(uint32_t maxMillis) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(maxMillis);
  while (std::chrono::steady_clock::now() < end) {
    if (callCanceled()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Probe.countSlowly: counts, then blocks for `millis`.
inline uint64_t addThenSleep(std::atomic<uint64_t>& counter, uint32_t millis) {
  uint64_t total = ++counter;
  std::this_thread::sleep_for(std::chrono::milliseconds(millis));
  return total;
}

class ProbeImpl final : public Implements<testing::iface::Probe> {
public:
  uint64_t threadId() override {
    calls.fetch_add(1);
    return threadHash();
  }
  std::vector<uint8_t> echo(std::span<const uint8_t> data) override {
    return std::vector<uint8_t>(data.begin(), data.end());
  }
  void nothing() override {}
  void fail(std::string_view message) override { throw std::runtime_error(std::string(message)); }
  void sleepMillis(uint32_t millis) override {
    calls.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(millis));
  }
  bool waitForCancel(uint32_t maxMillis) override { return pollForCancel(maxMillis); }

  uint64_t count() override { return ++counted; }
  uint64_t peek() override { return counted; }
  uint64_t countSlowly(uint32_t millis) override { return addThenSleep(counted, millis); }

  std::atomic<int> calls{0};
  std::atomic<uint64_t> counted{0};
};

class CallbackImpl final : public Implements<testing::iface::Callback> {
public:
  uint64_t called(int64_t value) override {
    std::lock_guard lock(mutex);
    values.push_back(value);
    return threadHash();
  }

  std::mutex mutex;
  std::vector<int64_t> values;
};

class HolderImpl final : public Implements<testing::iface::Holder> {
public:
  void set(Ref<testing::iface::Callback> cb) override { held = std::move(cb); }
  Ref<testing::iface::Callback> get() override { return held; }
  uint64_t callBack(int64_t value) override { return held->called(value); }
  bool isSameAs(Ref<testing::iface::Callback> cb) override { return sameObject(cb, held); }

  Ref<testing::iface::Callback> held;
};

// A Probe that reports its death, its running calls and its external connections.
class WatchedProbe final : public Implements<testing::iface::Probe>, public ExternalConnection {
public:
  struct Log {
    std::atomic<bool> alive{false};
    std::atomic<int> connects{0};
    std::atomic<int> disconnects{0};
    std::atomic<bool> lastCloses{false};
    std::atomic<int> running{0};
  };
  explicit WatchedProbe(std::shared_ptr<Log> log) : _log(std::move(log)) { _log->alive = true; }
  ~WatchedProbe() override { _log->alive = false; }

  uint64_t threadId() override { return threadHash(); }
  std::vector<uint8_t> echo(std::span<const uint8_t> d) override { return {d.begin(), d.end()}; }
  void nothing() override {}
  void fail(std::string_view m) override { throw std::runtime_error(std::string(m)); }
  void sleepMillis(uint32_t millis) override {
    _log->running += 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(millis));
    _log->running -= 1;
  }
  bool waitForCancel(uint32_t maxMillis) override { return pollForCancel(maxMillis); }

  uint64_t count() override { return ++_counted; }
  uint64_t peek() override { return _counted; }
  uint64_t countSlowly(uint32_t millis) override { return addThenSleep(_counted, millis); }

  void addConnection() override { _log->connects += 1; }
  void releaseConnection(bool lastReleaseCloses) override {
    _log->disconnects += 1;
    _log->lastCloses = lastReleaseCloses;
  }

private:
  std::shared_ptr<Log> _log;
  std::atomic<uint64_t> _counted{0};
};

// Creates a servant in `apartment` and returns a proxy for the calling apartment.
template <typename I, typename Impl, typename... Args>
Ref<I> exportFrom(const Apartment& apartment, Args... args) {
  ObjRefBytes packet = apartment.invoke([=] { return marshalInterface(Ref<I>(make<Impl>(args...))); });
  return unmarshalInterface<I>(packet);
}

// Strong references and weak entries `apartment`'s exporter table holds for `object`, as
// ferry::externalReferences reports them.
inline std::pair<uint32_t, uint32_t> exportCounts(const Apartment& apartment, Interface* object) {
  return apartment.invoke([&] {
    ExternalReferences refs = externalReferences(object);
    return std::make_pair(refs.strong, refs.weak);
  });
}

// Objects `apartment` exports.
inline size_t exportedIn(const Apartment& apartment) {
  return apartment.invoke([&] { return apartment.impl()->exports().size(); });
}

}  // namespace ferry::test
