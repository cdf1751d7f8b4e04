// Every supported Cap'n Proto type category through capnpc-ferry's generated code, both on a real
// object and round-tripped through a proxy and stub (tests/idl/everything.capnp).
#define BOOST_TEST_MODULE idl_roundtrip
#include <boost/test/unit_test.hpp>

#include <ferry/generated.h>

#include "everything-exercise.h"
#include "fixture.h"

using namespace everything_test;
using ferry::test::RuntimeFixture;

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
