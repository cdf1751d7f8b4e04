// Servants of tests/idl/everything.capnp's interfaces, as the comment at the top of that schema
// describes them: shared by the round-trip tests in process (idl-roundtrip-test.cpp) and the
// ferry-test-peer process (tests/integration).
#pragma once

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <ferry/ferry.h>

#include "everything.ferry.h"

namespace everything_test {

using namespace idltest::iface;
using idltest::Color;
using ListenerRef = ferry::Ref<Everything_Listener>;

class GadgetImpl final : public ferry::Implements<Gadget> {
public:
  explicit GadgetImpl(int64_t start) : _count(start) {}
  std::string name() override { return "gadget"; }
  int64_t increment(int64_t by) override { return _count += by; }
  bool toggle() override { return _on = !_on; }
  void reset() override { _count = 0; _on = false; }
private:
  int64_t _count; bool _on = false;
};

class ListenerImpl final : public ferry::Implements<Everything_Listener> {
public:
  void onEvent(std::string_view e) override { events.emplace_back(e); }
  std::vector<std::string> events;
};

class SinkImpl final : public ferry::Implements<idltest::imported::iface::Sink> {
public:
  void put(std::string_view item) override { items.emplace_back(item); }
  std::vector<std::string> items;
};

class EverythingImpl final : public ferry::Implements<Everything> {
public:
  EchoScalarsResults echoScalars(bool b, int8_t i8, int16_t i16, int32_t i32, int64_t i64, uint8_t u8,
      uint16_t u16, uint32_t u32, uint64_t u64, float f32, double f64) override {
    return {b, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64};
  }
  // Wraps around, as the wire's 32-bit integers would: a peer's operands never overflow here.
  int32_t add(int32_t a, int32_t b) override {
    return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
  }
  DivmodResults divmod(int32_t a, int32_t b) override {
    if (b == 0) throw std::runtime_error("division by zero");
    if (a == INT32_MIN && b == -1) throw std::runtime_error("the quotient does not fit 32 bits");
    return {a / b, a % b};
  }
  Color echoColor(Color c) override { return c; }
  std::string echoText(std::string_view t) override { return std::string(t); }
  std::vector<uint8_t> echoData(std::span<const uint8_t> d) override { return {d.begin(), d.end()}; }
  EchoListsResults echoLists(const std::vector<bool>& bools, const std::vector<int8_t>& int8s,
      const std::vector<int16_t>& int16s, const std::vector<int32_t>& int32s,
      const std::vector<int64_t>& int64s, const std::vector<uint8_t>& uint8s,
      const std::vector<uint16_t>& uint16s, const std::vector<uint32_t>& uint32s,
      const std::vector<uint64_t>& uint64s, const std::vector<float>& float32s,
      const std::vector<double>& float64s, const std::vector<Color>& colors,
      const std::vector<std::string>& texts, const std::vector<std::vector<uint8_t>>& datas) override {
    return {bools, int8s, int16s, int32s, int64s, uint8s, uint16s, uint32s, uint64s, float32s, float64s, colors, texts, datas};
  }
  ferry::Owned<idltest::Point> movePoint(idltest::Point::Reader p, double dx, double dy) override {
    ferry::Owned<idltest::Point> out(p);
    out.builder().setX(p.getX() + dx);
    out.builder().setY(p.getY() + dy);
    return out;
  }
  std::string describePair(int32_t n, std::string_view t) override { return std::to_string(n) + ":" + std::string(t); }
  EchoPairResults echoPair(int32_t n, std::string_view t) override { return {n, std::string(t)}; }
  void doNothing() override { ++nothingCalls; }
  void notify(std::string_view e) override { last = e; }
  std::string lastNotification() override { return last; }
  ferry::Ref<Everything_Listener> echoListener(ferry::Ref<Everything_Listener> l) override { return l; }
  void callListener(ferry::Ref<Everything_Listener> l, std::string_view e) override { l->onEvent(e); }
  ferry::Ref<Gadget> makeGadget(int64_t start) override { return ferry::make<GadgetImpl>(start); }
  uint32_t drain(ferry::Ref<idltest::imported::iface::Sink> sink, const std::vector<std::string>& items) override {
    for (const auto& i : items) sink->put(i);
    return static_cast<uint32_t>(items.size());
  }
  std::vector<ferry::Owned<idltest::Point>> echoPoints(
      const std::vector<ferry::Owned<idltest::Point>>& points) override { return points; }
  EchoNestedResults echoNested(const std::vector<std::vector<int32_t>>& matrix,
      const std::vector<std::vector<std::string>>& words,
      const std::vector<std::vector<ferry::Owned<idltest::Point>>>& paths) override {
    return {matrix, words, paths};
  }
  std::vector<ListenerRef> echoListeners(const std::vector<ListenerRef>& listeners) override { return listeners; }
  uint32_t notifyAll(const std::vector<ListenerRef>& listeners, std::string_view event) override {
    uint32_t count = 0;
    for (const auto& l : listeners) {
      if (l) { l->onEvent(event); ++count; }
    }
    return count;
  }
  ferry::Owned<idltest::Holder> echoHolder(idltest::Holder::Reader h) override { return ferry::Owned<idltest::Holder>(h); }
  void keep(idltest::Holder::Reader h) override { kept.emplace_back(h); }
  uint32_t releaseKept() override {
    for (const auto& h : kept) {
      if (auto l = ferry::refOf<Everything_Listener>(h.reader().getListener())) l->onEvent("released");
      for (auto c : h.reader().getListeners()) {
        if (auto l = ferry::refOf<Everything_Listener>(c)) l->onEvent("released");
      }
    }
    auto count = static_cast<uint32_t>(kept.size());
    kept.clear();
    return count;
  }
  std::string describeShape(idltest::Shape::Reader s) override {
    char text[128];
    if (s.isCircle()) {
      std::snprintf(text, sizeof text, "circle %g %s", s.getCircle(), s.getLabel().cStr());
    } else {
      std::snprintf(text, sizeof text, "rectangle %gx%g %s", s.getRectangle().getWidth(),
                    s.getRectangle().getHeight(), s.getLabel().cStr());
    }
    return text;
  }
  ferry::Owned<idltest::Shape> scaleShape(idltest::Shape::Reader s, double factor) override {
    ferry::Owned<idltest::Shape> out(s);
    if (s.isCircle()) {
      out.builder().setCircle(s.getCircle() * factor);
    } else {
      out.builder().getRectangle().setWidth(s.getRectangle().getWidth() * factor);
      out.builder().getRectangle().setHeight(s.getRectangle().getHeight() * factor);
    }
    return out;
  }
  // Wraps around, as add does (a fuzzed peer sends any operands).
  int64_t step(int64_t value, int64_t by) override {
    return static_cast<int64_t>(static_cast<uint64_t>(value) + static_cast<uint64_t>(by));
  }
  std::string greet(std::string_view greeting, std::string_view name, uint8_t times, Color color) override {
    return std::string(greeting) + " " + std::string(name) + " x" + std::to_string(times) + " " +
           std::to_string(static_cast<int>(color));
  }
  ferry::Owned<idltest::Config> defaultConfig() override { return {}; }
  ferry::Owned<idltest::Config> echoConfig(idltest::Config::Reader c) override { return ferry::Owned<idltest::Config>(c); }
  int64_t checkedStep(int64_t value, int64_t limit) override {
    if (value < limit) return value + 1;
    throw idltest::iface::OutOfRange([&](idltest::OutOfRange::Builder f) {
      f.setValue(value);
      f.setLimit(limit);
      f.setReason(value == limit ? "at the limit" : "past the limit");
    });
  }

  int nothingCalls = 0;
  std::string last;
  std::vector<ferry::Owned<idltest::Holder>> kept;
};


}  // namespace everything_test
