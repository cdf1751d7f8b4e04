// Servants for testing.capnp, shared by the core tests.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <ferry/ferry.h>

#include "fixture.h"
#include "testing.ferry.h"

namespace ferry::test {

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
    std::this_thread::sleep_for(std::chrono::milliseconds(millis));
  }

  std::atomic<int> calls{0};
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

}  // namespace ferry::test
