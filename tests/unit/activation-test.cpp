// In-process activation: createInstance honours the class's threading model (COM's table).
// Class objects of this process activated without a ferryd (the process answers for its own),
// the class contexts, and ferryd's class files (core/src/activation/class-file.h). Activation
// through ferryd, across processes: tests/integration/activation-test.cpp.
#define BOOST_TEST_MODULE activation
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <ferry/activation.h>
#include <ferry/generated.h>
#include <ferry/naming.h>

#include "activation/class-file.h"

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

BOOST_AUTO_TEST_CASE(a_class_object_of_this_process_is_activated_in_its_apartment_without_a_ferryd) {
  Sta server = rt().newSta("class-object");
  uint64_t serverThread = server.invoke([] { return threadHash(); });
  ClassObjectRegistration registration = server.invoke([] {
    return registerClassObject({"unit.Probe"}, [] { return Ref<Interface>(make<ProbeImpl>()); },
                               ClassUse::multipleUse);
  });
  BOOST_CHECK(registration);
  auto mta = rt().joinMta();
  // Not an in-process class (Runtime::registerClass): the class object's apartment makes it.
  auto probe = createInstance<Probe>({"unit.Probe"});
  BOOST_CHECK(detail::asProxy(probe.get()) != nullptr);
  BOOST_CHECK_EQUAL(probe->threadId(), serverThread);
  // A ferry:// reference without a host names this host: this process answers for its own.
  auto again = ferry::bind<Probe>("ferry:///class/unit.Probe");
  BOOST_CHECK_EQUAL(again->threadId(), serverThread);
  // A second registration of the class in this process is refused; revoked, it is gone.
  FERRY_CHECK_ERRC(server.invoke([] {
                     return registerClassObject(
                         {"unit.Probe"}, [] { return Ref<Interface>(make<ProbeImpl>()); },
                         ClassUse::multipleUse);
                   }),
                   Errc::nameInUse);
  registration.revoke();
  FERRY_CHECK_ERRC(createInstance<Probe>({"unit.Probe"}), Errc::classNotRegistered);
}

BOOST_AUTO_TEST_CASE(a_single_use_class_object_serves_one_activation) {
  Sta server = rt().newSta("class-object");
  ClassObjectRegistration registration = server.invoke([] {
    return registerClassObject({"unit.Once"}, [] { return Ref<Interface>(make<ProbeImpl>()); },
                               ClassUse::singleUse);
  });
  auto mta = rt().joinMta();
  auto probe = createInstance<Probe>({"unit.Once"});
  BOOST_CHECK_NO_THROW(probe->nothing());
  FERRY_CHECK_ERRC(createInstance<Probe>({"unit.Once"}), Errc::classNotRegistered);
}

BOOST_AUTO_TEST_CASE(the_class_context_decides_where_an_instance_may_come_from) {
  rt().registerClass({"unit.InProc"}, ThreadingModel::both,
                     [] { return Ref<Interface>(make<ProbeImpl>()); });
  auto mta = rt().joinMta();
  // In-process first: the object itself.
  auto direct = createInstance<Probe>({"unit.InProc"});
  BOOST_CHECK(detail::asProxy(direct.get()) == nullptr);
  // Without inProcess, only a server process is asked, and none registered the class.
  FERRY_CHECK_ERRC(createInstance<Probe>({"unit.InProc"}, {.context = ClassContext::localServer}),
                   Errc::classNotRegistered);
  // A host needs remoteServer; a malformed class name is refused before anything is asked.
  FERRY_CHECK_ERRC(createInstance<Probe>({"unit.InProc"},
                                         {.host = "127.0.0.1", .context = ClassContext::inProcess}),
                   Errc::classNotRegistered);
  FERRY_CHECK_ERRC(createInstance<Probe>({"bad name"}), Errc::invalidArgument);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// A class file in a scratch directory, removed at the end.
struct ClassFiles {
  ClassFiles() {
    char path[] = "/tmp/ferry-classes-XXXXXX";
    BOOST_REQUIRE(mkdtemp(path) != nullptr);
    dir = path;
  }
  ~ClassFiles() { std::filesystem::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir;
};

// Reading `text` as a class file fails with invalidArgument mentioning `fragment`.
void checkRefused(const std::string& text, const std::string& fragment) {
  ClassFiles files;
  std::string path = files.write("x.Bad.class", text);
  try {
    detail::activation::readClassFile(path);
    BOOST_ERROR("accepted: " << text);
  } catch (const Error& e) {
    BOOST_CHECK(e.code() == Errc::invalidArgument);
    BOOST_CHECK_MESSAGE(e.message().find(fragment) != std::string::npos,
                        "'" << fragment << "' is not in: " << e.message());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_class_file_names_the_server_its_arguments_environment_and_timeouts) {
  ClassFiles files;
  files.write("demo.Calculator.class",
              "# the calculator\n"
              "executable = /bin/true   # no shell\n"
              "argument = --serve\n"
              "argument = two words\n"
              "environment = DEMO=1\n"
              "idle_timeout_ms = 60000\n"
              "start_timeout_ms = 2500\n"
              "allow = uid:1000\n"
              "allow = alice\n");
  files.write("ignored.txt", "not a class file");
  auto classes = detail::activation::readClassDirectory(files.dir);
  BOOST_REQUIRE_EQUAL(classes.size(), 1u);
  const auto& file = classes.at("demo.Calculator");
  BOOST_CHECK_EQUAL(file.clsid, "demo.Calculator");
  BOOST_CHECK_EQUAL(file.executable, "/bin/true");
  BOOST_CHECK((file.arguments == std::vector<std::string>{"--serve", "two words"}));
  BOOST_CHECK((file.environment == std::vector<std::string>{"DEMO=1"}));
  BOOST_CHECK(!file.user.has_value());
  BOOST_CHECK_EQUAL(file.idleTimeout.count(), 60000);
  BOOST_CHECK_EQUAL(file.startTimeout.count(), 2500);
  BOOST_CHECK((file.allow == std::vector<std::string>{"uid:1000", "alice"}));
}

BOOST_AUTO_TEST_CASE(a_bad_class_file_is_refused_naming_its_file_and_line) {
  checkRefused("executable = /bin/true\ncolour = blue\n", "x.Bad.class:2: unknown key 'colour'");
  checkRefused("executable = true\n", "x.Bad.class:1: the executable 'true' is not an absolute");
  checkRefused("argument = x\n", "names no executable");
  checkRefused("executable = /bin/true\nexecutable = /bin/true\n", ":2: executable is given a second");
  checkRefused("executable = /bin/true\nidle_timeout_ms = soon\n", ":2: idle_timeout_ms is 'soon'");
  checkRefused("executable = /bin/true\nenvironment = NOEQUALS\n", ":2: environment is 'NOEQUALS'");
  checkRefused("executable = /bin/true\nuser = no-such-user-here\n",
               ":2: user 'no-such-user-here' does not exist");
  checkRefused("executable /bin/true\n", ":1: expected `key = value`");
  ClassFiles files;
  files.write("bad name.class", "executable = /bin/true\n");
  FERRY_CHECK_ERRC(detail::activation::readClassDirectory(files.dir), Errc::invalidArgument);
}

