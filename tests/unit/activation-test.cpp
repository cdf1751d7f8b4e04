// In-process activation: createInstance honours the class's threading model (COM's table).
#define BOOST_TEST_MODULE activation
#include <boost/test/unit_test.hpp>

#include <thread>

#include <ferry/generated.h>

#include "servants.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Probe;

namespace {

struct Expectation {
  ThreadingModel model;
  ApartmentKind caller;
  bool direct;
  // Where calls run when it is a proxy.
  enum class RunsIn { caller, mtaPool, hostSta } runsIn;
};

// The table of ThreadingModel in ferry/runtime.h (COM's InprocServer32 table).
const Expectation kMatrix[] = {
    {ThreadingModel::apartment, ApartmentKind::sta, true, Expectation::RunsIn::caller},
    {ThreadingModel::free, ApartmentKind::sta, false, Expectation::RunsIn::mtaPool},
    {ThreadingModel::both, ApartmentKind::sta, true, Expectation::RunsIn::caller},
    {ThreadingModel::apartment, ApartmentKind::mta, false, Expectation::RunsIn::hostSta},
    {ThreadingModel::free, ApartmentKind::mta, true, Expectation::RunsIn::caller},
    {ThreadingModel::both, ApartmentKind::mta, true, Expectation::RunsIn::caller},
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(activation, RuntimeFixture)

BOOST_AUTO_TEST_CASE(create_instance_follows_the_threading_model_table) {
  rt().registerClass({"test.Apartment"}, ThreadingModel::apartment,
                     [] { return Ref<Interface>(make<ProbeImpl>()); });
  rt().registerClass({"test.Free"}, ThreadingModel::free,
                     [] { return Ref<Interface>(make<ProbeImpl>()); });
  rt().registerClass({"test.Both"}, ThreadingModel::both,
                     [] { return Ref<Interface>(make<ProbeImpl>()); });
  auto clsidOf = [](ThreadingModel model) {
    return Clsid{model == ThreadingModel::apartment ? "test.Apartment"
                 : model == ThreadingModel::free    ? "test.Free"
                                                    : "test.Both"};
  };

  Sta sta = rt().newSta("caller");
  std::optional<uint64_t> hostThread;
  for (const Expectation& e : kMatrix) {
    BOOST_TEST_CONTEXT("model " << toString(e.model) << ", caller " << toString(e.caller)) {
      auto check = [&] {
        Ref<Probe> probe = rt().createInstance<Probe>(clsidOf(e.model));
        BOOST_CHECK_EQUAL(!isProxy(probe.get()), e.direct);
        uint64_t ranOn = probe->threadId();
        switch (e.runsIn) {
          case Expectation::RunsIn::caller:
            BOOST_CHECK_EQUAL(ranOn, threadHash());
            break;
          case Expectation::RunsIn::mtaPool:
            BOOST_CHECK_NE(ranOn, threadHash());
            BOOST_CHECK(rt().mta().invoke([] { return threadHash(); }) != threadHash());
            break;
          case Expectation::RunsIn::hostSta:
            BOOST_CHECK_NE(ranOn, threadHash());
            // Every apartment-model object activated from the MTA lives in the one host STA.
            if (hostThread) BOOST_CHECK_EQUAL(ranOn, *hostThread);
            hostThread = ranOn;
            BOOST_CHECK_EQUAL(probe->threadId(), ranOn);
            break;
        }
      };
      if (e.caller == ApartmentKind::sta) {
        sta.invoke(check);
      } else {
        rt().mta().invoke(check);
      }
    }
  }
  BOOST_CHECK(hostThread.has_value());
}

BOOST_AUTO_TEST_CASE(create_instance_of_an_unknown_class_fails_clearly) {
  auto mta = rt().joinMta();
  BOOST_CHECK_EXCEPTION(rt().createInstance<Probe>({"no.such.Class"}), Error, [](const Error& e) {
    return e.code() == Errc::classNotRegistered &&
           std::string(e.what()).find("no.such.Class") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(create_instance_for_an_interface_the_class_lacks_fails_with_no_interface) {
  rt().registerClass({"test.Callback"}, ThreadingModel::free,
                     [] { return Ref<Interface>(make<CallbackImpl>()); });
  Sta sta = rt().newSta("caller");
  // Cross-apartment: the object is created in the MTA, then the interface is missing.
  sta.invoke([&] {
    FERRY_CHECK_ERRC(rt().createInstance<Probe>({"test.Callback"}), Errc::noInterface);
  });
  // Direct.
  auto mta = rt().joinMta();
  FERRY_CHECK_ERRC(rt().createInstance<Probe>({"test.Callback"}), Errc::noInterface);
  rt().revokeClass({"test.Callback"});
  FERRY_CHECK_ERRC(rt().createInstance<Probe>({"test.Callback"}), Errc::classNotRegistered);
}

// ---- entering apartments (COM's CoInitializeEx counting) -------------------------------------

BOOST_AUTO_TEST_CASE(entering_an_sta_again_is_counted_and_balanced_by_its_own_handle) {
  std::thread thread([&] {
    CurrentSta outer = rt().enterSta("main");
    BOOST_CHECK(!outer.nested());
    {
      CurrentSta inner = rt().enterSta("ignored");  // COM's S_FALSE
      BOOST_CHECK(inner.nested());
      BOOST_CHECK(inner == outer);
      BOOST_CHECK(currentApartment() == outer);
      FERRY_CHECK_ERRC(inner.run(), Errc::invalidArgument);  // the outer owner runs the loop
      CurrentSta third = rt().enterSta("again");
      BOOST_CHECK(third.nested());
    }
    // The nested handles went: the thread still is the same STA, and it still works.
    BOOST_CHECK(currentApartment() == outer);
    Ref<Probe> object = make<ProbeImpl>();
    Ref<Probe> same = unmarshalInterface<Probe>(marshalInterface(object));
    BOOST_CHECK(same.get() == object.get());
  });
  thread.join();
  BOOST_CHECK_EQUAL(Runtime::stats().apartments, 1);  // the MTA only: the STA was left
  // A spawned STA's thread may enter as well.
  Sta sta = rt().newSta("spawned");
  bool nested = sta.invoke([&] {
    CurrentSta again = rt().enterSta("x");
    return again.nested() && again == currentApartment();
  });
  BOOST_CHECK(nested);
  BOOST_CHECK_NO_THROW(sta.invoke([] {}));
}

BOOST_AUTO_TEST_CASE(entering_the_other_kind_of_apartment_fails_with_changed_mode) {
  {
    auto mta = rt().joinMta();
    FERRY_CHECK_ERRC(rt().enterSta("no"), Errc::changedMode);
    BOOST_CHECK(currentApartment().kind() == ApartmentKind::mta);
  }
  FERRY_CHECK_ERRC(rt().mta().invoke([&] { rt().enterSta("pool"); }), Errc::changedMode);
  Sta sta = rt().newSta("sta");
  sta.invoke([&] {
    FERRY_CHECK_ERRC(rt().joinMta(), Errc::changedMode);
    BOOST_CHECK(currentApartment().kind() == ApartmentKind::sta);
  });
  BOOST_CHECK_EQUAL(errcName(Errc::changedMode), "changedMode");
  BOOST_CHECK(isKnownErrc(21));
}

BOOST_AUTO_TEST_SUITE_END()
