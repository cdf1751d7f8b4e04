// Every supported Cap'n Proto type category through capnpc-ferry's generated code, both on a real
// object and round-tripped through a proxy and stub (tests/idl/everything.capnp).
#define BOOST_TEST_MODULE idl_roundtrip
#include <boost/test/unit_test.hpp>

#include <cstdio>

#include <ferry/generated.h>

#include "everything.ferry.h"
#include "fixture.h"

using namespace idltest::iface;
using idltest::Color;
using ferry::test::RuntimeFixture;
using ListenerRef = ferry::Ref<Everything_Listener>;

namespace {

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
  int32_t add(int32_t a, int32_t b) override { return a + b; }
  DivmodResults divmod(int32_t a, int32_t b) override {
    if (b == 0) throw std::runtime_error("division by zero");
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
  int64_t step(int64_t value, int64_t by) override { return value + by; }
  std::string greet(std::string_view greeting, std::string_view name, uint8_t times, Color color) override {
    return std::string(greeting) + " " + std::string(name) + " x" + std::to_string(times) + " " +
           std::to_string(static_cast<int>(color));
  }
  ferry::Owned<idltest::Config> defaultConfig() override { return {}; }
  ferry::Owned<idltest::Config> echoConfig(idltest::Config::Reader c) override { return ferry::Owned<idltest::Config>(c); }

  int nothingCalls = 0;
  std::string last;
  std::vector<ferry::Owned<idltest::Holder>> kept;
};

ferry::Owned<idltest::Point> point(double x, double y, const char* label) {
  ferry::Owned<idltest::Point> p;
  p.builder().setX(x);
  p.builder().setY(y);
  p.builder().setLabel(label);
  return p;
}

bool samePoint(const ferry::Owned<idltest::Point>& p, double x, double y, const char* label) {
  return p.reader().getX() == x && p.reader().getY() == y && p.reader().getLabel() == label;
}

ferry::Owned<idltest::Shape> circle(double radius, const char* label) {
  ferry::Owned<idltest::Shape> s;
  s.builder().setCircle(radius);
  s.builder().setLabel(label);
  return s;
}

ferry::Owned<idltest::Shape> rectangle(double width, double height, const char* label) {
  ferry::Owned<idltest::Shape> s;
  s.builder().initRectangle().setWidth(width);
  s.builder().getRectangle().setHeight(height);
  s.builder().setLabel(label);
  return s;
}

// Lists of structs, lists of lists, lists of interfaces, unions and groups, interfaces inside a
// struct, default values and constants, on `e` (a real object or a proxy). The listeners live in
// the calling apartment, so what comes back is the listener itself even through a proxy.
void exerciseSchemaConstructs(Everything& e) {
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
}

// Every method of everything.capnp, with checkable results; `remote` when `e` is a proxy.
void exercise(Everything& e, bool remote) {
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

}  // namespace

BOOST_FIXTURE_TEST_SUITE(idl_roundtrip, RuntimeFixture)

BOOST_AUTO_TEST_CASE(every_type_category_works_on_a_real_object) {
  auto mta = rt().joinMta();
  auto servant = ferry::make<EverythingImpl>();
  exercise(*servant, false);
  exerciseSchemaConstructs(*servant);
}

BOOST_AUTO_TEST_CASE(constants_declared_in_an_interface_are_members_of_its_class) {
  static_assert(std::is_same_v<Everything::CapnpInterface, idltest::Everything>);
  BOOST_CHECK_EQUAL(Everything::MAX_ITEMS, 100u);
  BOOST_CHECK_EQUAL(&Everything::MAX_ITEMS, &idltest::Everything::MAX_ITEMS);
}

BOOST_AUTO_TEST_CASE(every_type_category_round_trips_through_proxy_and_stub) {
  auto mta = rt().joinMta();
  ferry::Sta sta = rt().newSta("server");
  ferry::ObjRefBytes packet = sta.invoke([] {
    ferry::Ref<Everything> object = ferry::make<EverythingImpl>();
    return ferry::marshalInterface(object);
  });
  auto proxy = ferry::unmarshalInterface<Everything>(packet);
  BOOST_REQUIRE(ferry::detail::asProxy(proxy.get()) != nullptr);
  exercise(*proxy, true);
  exerciseSchemaConstructs(*proxy);

  // Oneway: returns at once; the effect shows up later.
  proxy->notifyAsync("oneway async").get();
  BOOST_CHECK(ferry::test::eventually([&] { return proxy->lastNotification() == "oneway async"; }));
  proxy->doNothingAsync().get();
}

// A servant in an STA and the listeners in the test's MTA: every interface pointer in a value
// crosses apartments as a marshaled reference.
struct CrossApartment {
  // In the MTA.
  explicit CrossApartment(ferry::Runtime& rt) : sta(rt.newSta("server")) {
    ferry::ObjRefBytes packet = sta.invoke([this] {
      servant = ferry::make<EverythingImpl>();
      return ferry::marshalInterface(ferry::Ref<Everything>(servant.get()));
    });
    proxy = ferry::unmarshalInterface<Everything>(packet);
  }
  ~CrossApartment() {
    proxy.reset();
    sta.invoke([this] { servant.reset(); });
  }

  ferry::Sta sta;
  ferry::Ref<EverythingImpl> servant;  // only touched in `sta`
  ferry::Ref<Everything> proxy;
};

BOOST_AUTO_TEST_CASE(interfaces_kept_from_a_struct_hold_references_until_the_servant_drops_them) {
  auto mta = rt().joinMta();
  CrossApartment world(rt());
  auto listener = ferry::make<ListenerImpl>();
  auto other = ferry::make<ListenerImpl>();
  BOOST_REQUIRE_EQUAL(listener->refCount(), 1u);
  {
    ferry::Owned<idltest::Holder> holder;
    holder.builder().setListener(ferry::capability(ListenerRef(listener)));
    holder.builder().initListeners(2).set(0, ferry::capability(ListenerRef(other)));
    // The value's wrapper holds a reference of its own, shared by copies of the value.
    BOOST_CHECK_EQUAL(listener->refCount(), 2u);
    ferry::Owned<idltest::Holder> copy(holder);
    BOOST_CHECK_EQUAL(listener->refCount(), 2u);
    world.proxy->keep(holder.reader());
  }
  // The servant keeps proxies: the exported listeners stay referenced from the server apartment.
  BOOST_CHECK_GE(listener->refCount(), 2u);
  BOOST_CHECK_GE(other->refCount(), 2u);
  BOOST_CHECK(world.sta.invoke([&] {
    auto kept = world.servant->kept.at(0).reader();
    return ferry::isProxy(ferry::refOf<Everything_Listener>(kept.getListener())) &&
           ferry::isProxy(ferry::refOf<Everything_Listener>(kept.getListeners()[0])) &&
           !ferry::refOf<Everything_Listener>(kept.getListeners()[1]);
  }));
  BOOST_CHECK_EQUAL(world.proxy->releaseKept(), 1u);
  BOOST_CHECK((listener->events == std::vector<std::string>{"released"}));
  BOOST_CHECK((other->events == std::vector<std::string>{"released"}));
  // Dropped by the servant: the remote releases bring both back to the test's one reference.
  BOOST_CHECK(ferry::test::eventually([&] { return listener->refCount() == 1 && other->refCount() == 1; }));
}

BOOST_AUTO_TEST_CASE(interfaces_passed_inside_values_are_released_when_the_call_ends) {
  auto mta = rt().joinMta();
  CrossApartment world(rt());
  auto listener = ferry::make<ListenerImpl>();
  BOOST_CHECK_EQUAL(world.proxy->notifyAll({listener, listener}, "twice"), 2u);
  BOOST_CHECK_EQUAL(listener->events.size(), 2u);
  {
    ferry::Owned<idltest::Holder> holder;
    holder.builder().setListener(ferry::capability(ListenerRef(listener)));
    auto back = world.proxy->echoHolder(holder.reader());
    // Back in its own apartment a marshaled pointer is the object itself.
    auto same = ferry::refOf<Everything_Listener>(back.reader().getListener());
    BOOST_CHECK(same.get() == listener.get() && !ferry::isProxy(same));
  }
  BOOST_CHECK(ferry::test::eventually([&] { return listener->refCount() == 1; }));
  BOOST_CHECK(ferry::test::eventually([&] { return ferry::Runtime::stats().exportedObjects == 1; }));
}

BOOST_AUTO_TEST_CASE(a_capability_ferry_did_not_make_is_refused_before_the_call_is_sent) {
  auto mta = rt().joinMta();
  CrossApartment world(rt());
  ferry::Owned<idltest::Holder> holder;
  holder.builder().setListener(
      capnp::Capability::Client(capnp::newBrokenCap("not ferry's")).castAs<idltest::Everything::Listener>());
  FERRY_CHECK_ERRC(world.proxy->keep(holder.reader()), ferry::Errc::invalidArgument);
  BOOST_CHECK(world.sta.invoke([&] { return world.servant->kept.empty(); }));
  // Read back, a capability outside the message's list is the peer's error.
  FERRY_CHECK_ERRC(ferry::refOf<Everything_Listener>(holder.reader().getListener()), ferry::Errc::protocolError);
}

BOOST_AUTO_TEST_SUITE_END()
