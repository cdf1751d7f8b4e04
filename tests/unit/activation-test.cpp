// In-process activation: createInstance honours the class's threading model (COM's table).
#define BOOST_TEST_MODULE activation
#include <boost/test/unit_test.hpp>

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

BOOST_AUTO_TEST_SUITE_END()
