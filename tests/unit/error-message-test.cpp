// What a user reads when ferry refuses: a sentence that says what failed, why, and the setting or
// call to change; never a source expression.
//
// The cases labelled `no_plugins` need a process without transport plugins; meson runs them
// apart, with FERRY_PLUGIN_PATH naming a directory that holds none (tests/unit/meson.build).
#define BOOST_TEST_MODULE error_messages
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <ferry/generated.h>

#include "objref.h"
#include "servants.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Probe;

namespace {

// The fragments that mark a source expression in a message: "(bytes.size() = 50)",
// "(2 * i = 0)", "manager->strongRefs > 0", "a && b".
const char* const kSourceMarks[] = {" = ", "()", "->", "==", "!=", "&&", "||", " * "};

// The message of the ferry::Error `fn` throws; fails the test if it throws none.
std::string messageOf(const std::function<void()>& fn, Errc expected) {
  try {
    fn();
  } catch (const Error& e) {
    BOOST_TEST_MESSAGE(e.what());
    BOOST_CHECK_MESSAGE(e.code() == expected, "code " << errcName(e.code()) << ", expected "
                                                      << errcName(expected) << ": " << e.what());
    return e.message();
  }
  BOOST_ERROR("no ferry::Error was thrown");
  return {};
}

void checkIsASentence(const std::string& message) {
  BOOST_CHECK_MESSAGE(!message.empty(), "the message is empty");
  for (const char* mark : kSourceMarks) {
    BOOST_CHECK_MESSAGE(message.find(mark) == std::string::npos,
                        "'" << message << "' contains '" << mark << "', a source expression");
  }
  BOOST_CHECK_MESSAGE(message.find(".cpp") == std::string::npos &&
                          message.find(".h:") == std::string::npos,
                      "'" << message << "' names a source file");
}

void checkNames(const std::string& message, const std::string& name) {
  BOOST_CHECK_MESSAGE(message.find(name) != std::string::npos,
                      "'" << message << "' does not name " << name);
}

// `packet` with another process id: what another process of this host would unmarshal.
ObjRefBytes asIfFromAnotherProcess(const ObjRefBytes& packet) {
  detail::ObjRefData data = detail::decodeObjRef(packet);
  data.processId ^= 0x5a5a5a5a;
  return detail::encodeObjRef(data);
}

// Marshals an object of one STA with `context` and unmarshals the packet in another, as if that
// STA were in another process of this host. Returns the message of the unavailable error that
// gives, checked to be a sentence; the object and its packet are released.
std::string messageInAnotherProcess(Runtime& runtime, MarshalContext context) {
  Sta server = runtime.newSta("server");
  Sta client = runtime.newSta("client");
  Ref<Probe> object;
  ObjRefBytes packet = server.invoke([&] {
    object = make<ProbeImpl>();
    return marshalInterface(object, context);
  });
  std::string message = client.invoke([&] {
    return messageOf([&] { unmarshalInterface<Probe>(asIfFromAnotherProcess(packet)); },
                     Errc::unavailable);
  });
  checkIsASentence(message);
  server.invoke([&] {
    releaseMarshalData(packet);
    object.reset();
  });
  return message;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(error_messages, RuntimeFixture)

BOOST_AUTO_TEST_CASE(sampled_errors_of_the_public_api_are_sentences_without_source_expressions) {
  Sta sta = rt().newSta("sampled");
  auto sample = [&](Errc code, const std::function<void()>& fn, std::string name = {}) {
    std::string message = messageOf(fn, code);
    checkIsASentence(message);
    if (!name.empty()) checkNames(message, name);
  };
  // Bytes and text that are no OBJREF.
  sample(Errc::invalidObjRef, [] { objRefFromText("abc"); });
  sample(Errc::invalidObjRef, [] { objRefFromText("zz00"); });
  sample(Errc::invalidObjRef, [] { detail::decodeObjRef(ObjRefBytes(50, 0)); }, "50 bytes");
  sample(Errc::invalidObjRef, [] { detail::decodeObjRef(ObjRefBytes{}); }, "ferry::marshalInterface");
  sample(Errc::invalidObjRef, [] { detail::decodeObjRef(ObjRefBytes(64, 0xff)); });
  // Settings and calls with bad values.
  sample(Errc::invalidArgument, [] {
    RuntimeOptions options;
    options.mtaThreads = 0;
    Runtime second(options);
  }, "RuntimeOptions::mtaThreads");
  sample(Errc::invalidArgument, [] {
    RuntimeOptions options;
    options.callTimeout = std::chrono::milliseconds(0);
    Runtime second(options);
  }, "RuntimeOptions::callTimeout");
  sample(Errc::invalidArgument, [] { Runtime second; }, "Runtime::current");
  sample(Errc::invalidArgument, [] { CallTimeout none(std::chrono::milliseconds(0)); },
         "CallTimeout");
  sample(Errc::invalidArgument, [&] { rt().git().revoke(12345); }, "GlobalInterfaceTable");
  sta.invoke([&] {
    sample(Errc::classNotRegistered,
           [&] { rt().createInstance<Probe>(Clsid{"no.such.Class"}); }, "Runtime::registerClass");
    sample(Errc::invalidArgument, [] { marshalInterface(Ref<Probe>()); });
    sample(Errc::invalidArgument, [] {
      marshalInterface(Ref<Probe>(make<ProbeImpl>()), MarshalContext::inproc,
                       MarshalFlags::tableStrong | MarshalFlags::tableWeak);
    }, "MarshalFlags::tableWeak");
  });
  {
    MtaScope mta = rt().joinMta();
    sample(Errc::invalidArgument, [] { setMessageFilter(nullptr); }, "STA");
  }
  // Outside any apartment.
  sample(Errc::notInitialized, [] { currentApartment(); }, "joinMta");
  sample(Errc::notInitialized, [] { marshalInterface(Ref<Probe>(make<ProbeImpl>())); },
         "Runtime::newSta");
}

BOOST_AUTO_TEST_CASE(a_refused_call_timeout_leaves_the_threads_timeout_as_it_was) {
  Sta sta = rt().newSta("elsewhere");
  FERRY_CHECK_ERRC(CallTimeout(std::chrono::milliseconds(0)), Errc::invalidArgument);
  // A call from this thread still has the default timeout, not 0 ms.
  BOOST_CHECK_EQUAL(sta.invoke([] { return 7; }), 7);
}

BOOST_AUTO_TEST_CASE(a_normal_packet_unmarshaled_twice_says_it_was_consumed_and_names_table_strong) {
  Sta server = rt().newSta("server");
  Sta client = rt().newSta("client");
  ObjRefBytes packet = server.invoke([] { return marshalInterface(Ref<Probe>(make<ProbeImpl>())); });
  client.invoke([&] {
    Ref<Probe> first = unmarshalInterface<Probe>(packet);
    std::string message = messageOf([&] { unmarshalInterface<Probe>(packet); },
                                    Errc::objectNotConnected);
    checkIsASentence(message);
    checkNames(message, "consumed");
    checkNames(message, "MarshalFlags::normal");
    checkNames(message, "MarshalFlags::tableStrong");
  });
}

BOOST_AUTO_TEST_CASE(an_inproc_objref_used_in_another_process_says_so_and_names_marshal_context_local) {
  BOOST_REQUIRE_MESSAGE(!rt().bindings().empty(),
                        "this case needs the transport plugins (FERRY_PLUGIN_PATH)");
  std::string message = messageInAnotherProcess(rt(), MarshalContext::inproc);
  checkNames(message, "MarshalContext::inproc");
  checkNames(message, "MarshalContext::local");
}

BOOST_AUTO_TEST_CASE(without_transport_plugins_reaching_another_process_says_where_the_loader_looked,
                     *boost::unit_test::label("no_plugins")) {
  bool anyTransport = false;
  for (const auto& p : Runtime::plugins()) anyTransport = anyTransport || p.kind == "transport";
  BOOST_REQUIRE_MESSAGE(!anyTransport,
                        "this case needs a process without transport plugins, but FERRY_PLUGIN_PATH "
                        "or the install directory holds some");
  const char* path = std::getenv("FERRY_PLUGIN_PATH");
  BOOST_REQUIRE_MESSAGE(path != nullptr, "meson sets FERRY_PLUGIN_PATH for this case");
  std::string message = messageInAnotherProcess(rt(), MarshalContext::local);
  checkNames(message, "FERRY_PLUGIN_PATH");
  checkNames(message, path);
  checkNames(message, "install directory /");
}

BOOST_AUTO_TEST_SUITE_END()
