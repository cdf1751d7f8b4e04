// What every test of tests/idl/everything.capnp checks through an Everything: a real object, a
// proxy to another apartment (idl-roundtrip-test.cpp) or to another process (process-test.cpp).
#pragma once

#include <boost/test/unit_test.hpp>

#include <climits>
#include <cstdint>

#include "everything-servants.h"

namespace everything_test {

inline ferry::Owned<idltest::Point> point(double x, double y, const char* label) {
  ferry::Owned<idltest::Point> p;
  p.builder().setX(x);
  p.builder().setY(y);
  p.builder().setLabel(label);
  return p;
}

inline bool samePoint(const ferry::Owned<idltest::Point>& p, double x, double y, const char* label) {
  return p.reader().getX() == x && p.reader().getY() == y && p.reader().getLabel() == label;
}

inline ferry::Owned<idltest::Shape> circle(double radius, const char* label) {
  ferry::Owned<idltest::Shape> s;
  s.builder().setCircle(radius);
  s.builder().setLabel(label);
  return s;
}

inline ferry::Owned<idltest::Shape> rectangle(double width, double height, const char* label) {
  ferry::Owned<idltest::Shape> s;
  s.builder().initRectangle().setWidth(width);
  s.builder().getRectangle().setHeight(height);
  s.builder().setLabel(label);
  return s;
}

// Lists of structs, lists of lists, lists of interfaces, unions and groups, interfaces inside a
// struct, default values and constants, on `e` (a real object or a proxy). The listeners live in
// the calling apartment, so what comes back is the listener itself even through a proxy.
inline void exerciseSchemaConstructs(Everything& e) {
  std::vector<ferry::Owned<idltest::Point>> points;
  points.push_back(point(1, 2, "a"));
  points.push_back(point(-3.5, 0, ""));
  auto echoedPoints = e.echoPoints(points);
  BOOST_REQUIRE_EQUAL(echoedPoints.size(), 2u);
  BOOST_CHECK(samePoint(echoedPoints[0], 1, 2, "a") && samePoint(echoedPoints[1], -3.5, 0, ""));
  BOOST_CHECK(e.echoPoints({}).empty());
  BOOST_CHECK_EQUAL(e.echoPointsAsync(points).get().size(), 2u);

  std::vector<std::vector<ferry::Owned<idltest::Point>>> paths(3);
  paths[0].push_back(point(0, 0, "start"));
  paths[0].push_back(point(1, 1, "end"));
  paths[2].push_back(point(9, 9, "alone"));
  auto nested = e.echoNested({{1, 2, 3}, {}, {-4}}, {{"x", "y"}, {""}}, paths);
  BOOST_CHECK((nested.matrix == std::vector<std::vector<int32_t>>{{1, 2, 3}, {}, {-4}}));
  BOOST_CHECK((nested.words == std::vector<std::vector<std::string>>{{"x", "y"}, {""}}));
  BOOST_REQUIRE_EQUAL(nested.paths.size(), 3u);
  BOOST_REQUIRE_EQUAL(nested.paths[0].size(), 2u);
  BOOST_CHECK(nested.paths[1].empty());
  BOOST_CHECK(samePoint(nested.paths[0][1], 1, 1, "end") && samePoint(nested.paths[2][0], 9, 9, "alone"));

  auto a = ferry::make<ListenerImpl>();
  auto b = ferry::make<ListenerImpl>();
  auto listeners = e.echoListeners({a, nullptr, b, a});
  BOOST_REQUIRE_EQUAL(listeners.size(), 4u);
  BOOST_CHECK(listeners[0].get() == a.get() && !listeners[1] && listeners[2].get() == b.get() &&
              listeners[3].get() == a.get());
  BOOST_CHECK_EQUAL(e.notifyAll({a, nullptr, b, a}, "all"), 3u);
  BOOST_CHECK((a->events == std::vector<std::string>{"all", "all"}) && b->events == std::vector<std::string>{"all"});

  ferry::Owned<idltest::Holder> holder;
  holder.builder().setName("h");
  holder.builder().setListener(ferry::capability(ListenerRef(a)));
  auto list = holder.builder().initListeners(2);
  list.set(0, ferry::capability(ListenerRef(b)));
  list.set(1, nullptr);
  auto echoedHolder = e.echoHolder(holder.reader());
  BOOST_CHECK(echoedHolder.reader().getName() == "h");
  BOOST_CHECK(ferry::refOf<Everything_Listener>(echoedHolder.reader().getListener()).get() == a.get());
  BOOST_REQUIRE_EQUAL(echoedHolder.reader().getListeners().size(), 2u);
  BOOST_CHECK(ferry::refOf<Everything_Listener>(echoedHolder.reader().getListeners()[0]).get() == b.get());
  BOOST_CHECK(!ferry::refOf<Everything_Listener>(echoedHolder.reader().getListeners()[1]));

  auto c = circle(1.5, "round");
  BOOST_CHECK_EQUAL(e.describeShape(c.reader()), "circle 1.5 round");
  auto r = rectangle(2, 3, "box");
  BOOST_CHECK_EQUAL(e.describeShape(r.reader()), "rectangle 2x3 box");
  auto bigCircle = e.scaleShape(c.reader(), 2);
  BOOST_CHECK(bigCircle.reader().isCircle() && bigCircle.reader().getCircle() == 3 && bigCircle.reader().getLabel() == "round");
  auto bigBox = e.scaleShapeAsync(r.reader(), 10).get();
  BOOST_CHECK(bigBox.reader().isRectangle() && bigBox.reader().getRectangle().getWidth() == 20 &&
              bigBox.reader().getRectangle().getHeight() == 30 && bigBox.reader().getLabel() == "box");

  // Default arguments come from the schema's defaults, one of them a constant.
  BOOST_CHECK_EQUAL(e.step(10), 10 + idltest::DEFAULT_STEP);
  BOOST_CHECK_EQUAL(e.step(10, -1), 9);
  BOOST_CHECK_EQUAL(e.stepAsync(1).get(), 6);
  BOOST_CHECK_EQUAL(e.greet("hello"), "hello world x1 1");
  BOOST_CHECK_EQUAL(e.greet("hi", "you", 3, Color::BLUE), "hi you x3 2");
  auto config = e.defaultConfig();
  BOOST_CHECK(config.reader().getRetries() == 3 && config.reader().getName() == "default" &&
              config.reader().getRatio() == 0.5 && config.reader().getColor() == Color::BLUE);
  ferry::Owned<idltest::Config> zeroes;
  zeroes.builder().setRetries(0);
  zeroes.builder().setRatio(0);
  zeroes.builder().setName("");
  zeroes.builder().setColor(Color::RED);
  auto echoedConfig = e.echoConfig(zeroes.reader());
  BOOST_CHECK(echoedConfig.reader().getRetries() == 0 && echoedConfig.reader().getName() == "" &&
              echoedConfig.reader().getRatio() == 0 && echoedConfig.reader().getColor() == Color::RED);

  // A typed error declared in the schema ($Ferry.exception): caught as its generated class with
  // its fields, through a plain and an asynchronous call, and as a ferry::Error of its own code.
  BOOST_CHECK_EQUAL(e.checkedStep(1, 10), 2);
  bool caughtTyped = false;
  try {
    e.checkedStep(10, 10);
  } catch (const idltest::iface::OutOfRange& err) {
    caughtTyped = err.fields().getValue() == 10 && err.fields().getLimit() == 10 &&
                  err.fields().getReason() == "at the limit" &&
                  err.code() == ferry::Errc::applicationError &&
                  err.typeId() == capnp::typeId<idltest::OutOfRange>();
  }
  BOOST_CHECK(caughtTyped);
  bool caughtAsync = false;
  try {
    e.checkedStepAsync(12, 10).get();
  } catch (const idltest::iface::OutOfRange& err) {
    caughtAsync = err.fields().getValue() == 12 && err.fields().getReason() == "past the limit";
  }
  BOOST_CHECK(caughtAsync);
  std::string whatSaid;
  try {
    e.checkedStep(10, 3);
  } catch (const ferry::Error& err) {
    if (err.code() == ferry::Errc::applicationError) whatSaid = err.what();
  }
  BOOST_CHECK_MESSAGE(whatSaid.find("OutOfRange(value = 10, limit = 3") != std::string::npos, whatSaid);
}

// Every method of everything.capnp, with checkable results; `remote` when `e` is a proxy.
inline void exercise(Everything& e, bool remote) {
  auto s = e.echoScalars(true, -8, -16, -32, -64, 8, 16, 32, 64, 1.5f, 2.25);
  BOOST_CHECK(s.b && s.i8 == -8 && s.i16 == -16 && s.i32 == -32 && s.i64 == -64 && s.u8 == 8 && s.u16 == 16 &&
        s.u32 == 32 && s.u64 == 64 && s.f32 == 1.5f && s.f64 == 2.25);
  auto s2 = e.echoScalars(false, 127, 32767, INT32_MIN, INT64_MAX, 255, 65535, UINT32_MAX, UINT64_MAX, -0.5f, 1e300);
  BOOST_CHECK(!s2.b && s2.i8 == 127 && s2.i32 == INT32_MIN && s2.i64 == INT64_MAX && s2.u64 == UINT64_MAX && s2.f64 == 1e300);
  BOOST_CHECK(e.add(2, 3) == 5);
  auto d = e.divmod(17, 5);
  BOOST_CHECK(d.quot == 3 && d.rem == 2);
  bool threw = false;
  try { e.divmod(1, 0); } catch (const ferry::Error& err) { threw = remote && err.code() == ferry::Errc::serverFault; } catch (const std::runtime_error&) { threw = !remote; }
  BOOST_CHECK(threw);
  BOOST_CHECK(e.echoColor(Color::BLUE) == Color::BLUE);
  BOOST_CHECK(e.echoText("hello") == "hello");
  BOOST_CHECK(e.echoText("") == "");
  std::string withNul("a\0b", 3);
  BOOST_CHECK(e.echoText(withNul) == withNul);
  std::string_view unterminated = std::string_view("abcdef").substr(0, 3);
  BOOST_CHECK(e.echoText(unterminated) == "abc");
  std::vector<uint8_t> bytes{0, 1, 2, 255};
  BOOST_CHECK(e.echoData(bytes) == bytes);
  BOOST_CHECK(e.echoData({}).empty());
  auto l = e.echoLists({true, false, true}, {-1, 2}, {-3}, {4, 5, 6}, {-7}, {8}, {9}, {10}, {11}, {1.25f}, {2.5},
                       {Color::GREEN, Color::RED}, {"x", "", std::string("n\0l", 3)}, {{1, 2}, {}, {3}});
  BOOST_CHECK((l.bools == std::vector<bool>{true, false, true}));
  BOOST_CHECK((l.int8s == std::vector<int8_t>{-1, 2}) && l.int16s == std::vector<int16_t>{-3});
  BOOST_CHECK((l.int32s == std::vector<int32_t>{4, 5, 6}) && l.int64s == std::vector<int64_t>{-7});
  BOOST_CHECK(l.uint8s == std::vector<uint8_t>{8} && l.uint16s == std::vector<uint16_t>{9} && l.uint32s == std::vector<uint32_t>{10} && l.uint64s == std::vector<uint64_t>{11});
  BOOST_CHECK(l.float32s == std::vector<float>{1.25f} && l.float64s == std::vector<double>{2.5});
  BOOST_CHECK((l.colors == std::vector<Color>{Color::GREEN, Color::RED}));
  BOOST_CHECK((l.texts == std::vector<std::string>{"x", "", std::string("n\0l", 3)}));
  BOOST_CHECK((l.datas == std::vector<std::vector<uint8_t>>{{1, 2}, {}, {3}}));
  ferry::Owned<idltest::Point> p;
  p.builder().setX(1); p.builder().setY(2); p.builder().setLabel("pt");
  auto moved = e.movePoint(p.reader(), 0.5, -1);
  BOOST_CHECK(moved.reader().getX() == 1.5 && moved.reader().getY() == 1 && moved.reader().getLabel() == "pt");
  BOOST_CHECK(e.describePair(7, "seven") == "7:seven");
  auto pair = e.echoPair(-4, "four");
  BOOST_CHECK(pair.number == -4 && pair.text == "four");
  e.doNothing();
  e.notify("ping");
  BOOST_CHECK(e.lastNotification() == "ping");
  auto listener = ferry::make<ListenerImpl>();
  auto echoed = e.echoListener(listener);
  BOOST_CHECK(echoed);
  echoed->onEvent("via echo");
  BOOST_CHECK(listener->events.size() == 1 && listener->events[0] == "via echo");
  BOOST_CHECK(!e.echoListener(nullptr));
  e.callListener(listener, "called");
  BOOST_CHECK(listener->events.size() == 2 && listener->events[1] == "called");
  echoed.reset();
  auto gadget = e.makeGadget(10);
  BOOST_CHECK(gadget->increment(5) == 15);
  BOOST_CHECK(gadget->toggle() == true);
  BOOST_CHECK(gadget->name() == "gadget");
  gadget->reset();
  BOOST_CHECK(gadget->increment(1) == 1);
  auto counter = ferry::queryInterface<Counter>(gadget);
  BOOST_CHECK(counter->increment(1) == 2);
  auto named = ferry::queryInterface<Named>(gadget);
  BOOST_CHECK(named->name() == "gadget");
  // The diamond: Named reached through Counter and through Switch is one identity.
  auto viaSwitch = ferry::queryInterface<Named>(ferry::queryInterface<Switch>(gadget));
  BOOST_CHECK(ferry::sameObject(viaSwitch, counter));
  BOOST_CHECK(ferry::sameObject(named, gadget));
  BOOST_CHECK(counter->nameAsync().get() == "gadget");
  BOOST_CHECK(gadget->incrementAsync(3).get() == 5);
  auto sink = ferry::make<SinkImpl>();
  BOOST_CHECK(e.drain(sink, {"a", "b", "c"}) == 3);
  BOOST_CHECK((sink->items == std::vector<std::string>{"a", "b", "c"}));
  // async companions
  BOOST_CHECK(e.addAsync(40, 2).get() == 42);
  BOOST_CHECK(e.divmodAsync(9, 4).get().rem == 1);
  bool asyncThrew = false;
  try { e.divmodAsync(1, 0).get(); } catch (const ferry::Error&) { asyncThrew = true; }
  BOOST_CHECK(asyncThrew);
  BOOST_CHECK(e.echoTextAsync("async").get() == "async");
}


}  // namespace everything_test
