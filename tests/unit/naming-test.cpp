// ferry:// references and named objects within one process (ferry/naming.h). Across processes,
// with and without ferryd: tests/integration/process-test.cpp.
#define BOOST_TEST_MODULE naming
#include <boost/test/unit_test.hpp>

#include <ferry/ferry.h>

#include "fixture.h"
#include "servants.h"
#include "testing.ferry.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Probe;

BOOST_AUTO_TEST_SUITE(references)

BOOST_AUTO_TEST_CASE(a_reference_names_a_host_a_port_and_a_name_or_a_class_and_prints_back) {
  struct Case {
    const char* text;
    ObjectUri uri;
  };
  const Case cases[] = {
      {"ferry://192.0.2.7/name/inventory", {"192.0.2.7", "", ObjectUri::Kind::name, "inventory"}},
      {"ferry://192.0.2.7:7000/name/a/b.c_d~e-f", {"192.0.2.7", "7000", ObjectUri::Kind::name, "a/b.c_d~e-f"}},
      {"ferry://[::1]:7135/class/demo.Calculator", {"::1", "7135", ObjectUri::Kind::klass, "demo.Calculator"}},
      {"ferry://[2001:db8::7]/name/x", {"2001:db8::7", "", ObjectUri::Kind::name, "x"}},
      {"ferry://server-1.example/name/x", {"server-1.example", "", ObjectUri::Kind::name, "x"}},
      {"ferry:///name/local", {"", "", ObjectUri::Kind::name, "local"}},
  };
  for (const Case& c : cases) {
    ObjectUri parsed = ObjectUri::parse(c.text);
    BOOST_TEST_CONTEXT(c.text) {
      BOOST_CHECK(parsed == c.uri);
      BOOST_CHECK_EQUAL(parsed.toString(), c.text);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_malformed_reference_is_refused_with_what_is_wrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"http://192.0.2.7/name/x", "not a ferry:// reference"},
      {"ferry://192.0.2.7", "names no object"},
      {"ferry://192.0.2.7/thing/x", "neither a name nor a class"},
      {"ferry://192.0.2.7:0/name/x", "a port is a number from 1 to 65535"},
      {"ferry://192.0.2.7:99999/name/x", "a port is a number from 1 to 65535"},
      {"ferry://192.0.2.7:/name/x", "a port is a number"},
      {"ferry://:7135/name/x", "a port without a host"},
      {"ferry://[::1/name/x", "does not close it"},
      {"ferry://[192.0.2.7]/name/x", "not an IPv6 address"},
      {"ferry://host_name/name/x", "neither an address nor a host name"},
      {"ferry://192.0.2.7/name/", "it is empty"},
      {"ferry://192.0.2.7/name/a//b", "empty segment"},
      {"ferry://192.0.2.7/name/a/", "begins or ends with '/'"},
      {"ferry://192.0.2.7/name/a b", "a character other than"},
      {"ferry://192.0.2.7/name/a?b=c", "a character other than"},
  };
  for (const auto& [text, why] : cases) {
    BOOST_TEST_CONTEXT(text) {
      BOOST_CHECK_EXCEPTION(ObjectUri::parse(text), Error, [&](const Error& e) {
        BOOST_TEST_MESSAGE(e.what());
        return e.code() == Errc::invalidArgument &&
               e.message().find(text) != std::string::npos &&
               e.message().find(why) != std::string::npos;
      });
    }
  }
  std::string tooLong = "ferry:///name/" + std::string(129, 'a');
  FERRY_CHECK_ERRC(ObjectUri::parse(tooLong), Errc::invalidArgument);
  BOOST_CHECK_NO_THROW(ObjectUri::parse("ferry:///name/" + std::string(128, 'a')));
}

BOOST_AUTO_TEST_SUITE_END()

namespace {
RuntimeOptions withoutFerryd() {
  RuntimeOptions options;
  options.resolver = "none";
  // Without the admin object, RuntimeStats::servants counts the tests' own objects only.
  options.admin = RuntimeOptions::Admin::off;
  return options;
}

// A lookup at a port where nothing listens tries udp after tcp's refusal, and udp, which cannot
// tell a closed port from lost packets, waits out its connect timeout (5 s): these tests ask
// over tcp only.
RuntimeOptions tcpOnly() {
  RuntimeOptions options = withoutFerryd();
  options.preferredTransport = "tcp";
  return options;
}
}  // namespace

struct NoFerryd : RuntimeFixture {
  NoFerryd() : RuntimeFixture(withoutFerryd()) {}
};

struct TcpOnly : RuntimeFixture {
  TcpOnly() : RuntimeFixture(tcpOnly()) {}
};

BOOST_FIXTURE_TEST_SUITE(names, NoFerryd)

BOOST_AUTO_TEST_CASE(a_published_object_is_found_by_name_and_lives_until_the_name_is_revoked) {
  auto mta = rt().joinMta();
  Ref<ProbeImpl> made = make<ProbeImpl>();
  ProbeImpl* servant = made.get();
  Ref<Probe> object(std::move(made));
  Publication publication = publish("calc", object);
  BOOST_CHECK(publication);
  BOOST_CHECK_EQUAL(publication.name(), "calc");

  // This host, without a ferryd: the process's own names.
  Ref<Probe> bound = ferry::bind<Probe>("ferry:///name/calc");
  BOOST_CHECK(sameObject(bound, object));
  BOOST_CHECK(!isProxy(bound));
  std::vector<PublishedName> names = listNames();
  BOOST_REQUIRE_EQUAL(names.size(), 1u);
  BOOST_CHECK_EQUAL(names[0].name, "calc");
  BOOST_CHECK_EQUAL(names[0].processId >> 32, static_cast<uint64_t>(getpid()));

  // Over the network, at this process's own tcp port: the same answer.
  std::string port;
  for (const std::string& b : rt().bindings()) {
    if (b.rfind("tcp:127.0.0.1[", 0) == 0) port = b.substr(14, b.size() - 15);
  }
  BOOST_REQUIRE(!port.empty());
  BOOST_CHECK(sameObject(ferry::bind<Probe>("ferry://127.0.0.1:" + port + "/name/calc"), object));
  BOOST_CHECK_EQUAL(listNames("127.0.0.1:" + port).size(), 1u);

  // The publication holds the object: with every other reference gone it is still called.
  bound = nullptr;
  object = nullptr;
  BOOST_CHECK_EQUAL(Runtime::stats().servants, 1);
  ferry::bind<Probe>("ferry:///name/calc")->threadId();
  BOOST_CHECK_EQUAL(servant->calls.load(), 1);

  publication.revoke();
  BOOST_CHECK(!publication);
  BOOST_CHECK(eventually([] { return Runtime::stats().servants == 0; }));
  FERRY_CHECK_ERRC(ferry::bind<Probe>("ferry:///name/calc"), Errc::objectNotRegistered);
  BOOST_CHECK(listNames().empty());
  publication.revoke();  // idempotent
}

BOOST_AUTO_TEST_CASE(a_name_is_published_once_until_revoked) {
  auto mta = rt().joinMta();
  Ref<Probe> first = make<ProbeImpl>();
  Ref<Probe> second = make<ProbeImpl>();
  {
    Publication publication = publish("calc", first);
    FERRY_CHECK_ERRC(publish("calc", second), Errc::nameInUse);
    BOOST_CHECK(sameObject(ferry::bind<Probe>("ferry:///name/calc"), first));
  }  // revoked by its destructor
  Publication again = publish("calc", second);
  BOOST_CHECK(sameObject(ferry::bind<Probe>("ferry:///name/calc"), second));
  // Moving a publication moves the name; the moved-from one revokes nothing.
  Publication moved = std::move(again);
  BOOST_CHECK(!again);  // NOLINT(bugprone-use-after-move): a moved-from publication is empty
  BOOST_CHECK(sameObject(ferry::bind<Probe>("ferry:///name/calc"), second));
}

BOOST_FIXTURE_TEST_CASE(bad_names_class_references_and_unknown_hosts_are_clear_errors, TcpOnly) {
  auto mta = rt().joinMta();
  Ref<Probe> object = make<ProbeImpl>();
  FERRY_CHECK_ERRC(publish("", object), Errc::invalidArgument);
  FERRY_CHECK_ERRC(publish("a b", object), Errc::invalidArgument);
  FERRY_CHECK_ERRC(publish("ok", Ref<Probe>()), Errc::invalidArgument);
  FERRY_CHECK_ERRC(ferry::bind<Probe>("ferry:///class/demo.Calculator"), Errc::classNotRegistered);
  FERRY_CHECK_ERRC(ferry::bind<Probe>("ferry:///name/nobody"), Errc::objectNotRegistered);
  // Nothing listens at this port of this host's loopback (tcp port 1 is never ours).
  FERRY_CHECK_ERRC(ferry::bind<Probe>("ferry://127.0.0.1:1/name/x"), Errc::unavailable);
  // A name is looked up within the call timeout; "localhost" resolves from /etc/hosts.
  FERRY_CHECK_ERRC(ferry::bind<Probe>("ferry://localhost:1/name/x"), Errc::unavailable);
  FERRY_CHECK_ERRC(listNames("a/b"), Errc::invalidArgument);
}

BOOST_AUTO_TEST_SUITE_END()
