// The admin object (core/src/admin): its file, what describe() reports of exported objects,
// proxies and served calls, health, reflection, object(), who may call it, and the per-method
// statistics.
#define BOOST_TEST_MODULE admin
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <capnp/schema-loader.h>
#include <capnp/serialize.h>

#include <ferry/ferry.h>

#include "admin.ferry.h"
#include "admin/admin.h"
#include "admin/method-stats.h"
#include "export-table.h"
#include "fixture.h"
#include "servants.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Probe;
using AdminRef = Ref<wire::iface::Admin>;

namespace {

std::string adminFilePath() {
  return detail::admin::directory() + "/" + std::to_string(::getpid());
}

// This process's admin object, as a tool finds it: through its file.
AdminRef ownAdmin() {
  std::ifstream in(adminFilePath());
  std::string text;
  std::getline(in, text);
  BOOST_REQUIRE_MESSAGE(!text.empty(), "no admin file at " << adminFilePath());
  return unmarshalInterface<wire::iface::Admin>(objRefFromText(text));
}

template <typename List, typename Pred>
auto findIn(List list, Pred pred) -> std::optional<decltype(list[0])> {
  for (auto item : list) {
    if (pred(item)) return item;
  }
  return std::nullopt;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(admin, RuntimeFixture)

BOOST_AUTO_TEST_CASE(a_process_with_transports_publishes_its_admin_object_until_the_runtime_goes) {
  BOOST_CHECK(std::ifstream(adminFilePath()).good());
  struct stat st {};
  BOOST_REQUIRE_EQUAL(::stat(adminFilePath().c_str(), &st), 0);
  BOOST_CHECK_EQUAL(st.st_mode & 0777, 0600u);
  runtime.reset();
  BOOST_CHECK(!std::ifstream(adminFilePath()).good());
  // Off: no file.
  RuntimeOptions options;
  options.admin = RuntimeOptions::Admin::off;
  runtime.emplace(options);
  BOOST_CHECK(!std::ifstream(adminFilePath()).good());
}

BOOST_AUTO_TEST_CASE(a_starting_process_removes_the_admin_files_of_processes_that_are_gone) {
  // A pid above any pid_max: no such process.
  std::string stale = detail::admin::directory() + "/999999999";
  std::string other = detail::admin::directory() + "/not-a-pid";
  std::ofstream(stale) << "00\n";
  std::ofstream(other) << "00\n";
  runtime.reset();
  runtime.emplace();
  BOOST_CHECK(!std::ifstream(stale).good());
  BOOST_CHECK(std::ifstream(other).good());
  ::unlink(other.c_str());
}

BOOST_AUTO_TEST_CASE(describe_reports_an_exported_object_its_references_and_the_proxy_holding_it) {
  Sta sta = rt().newSta("server");
  auto probeImpl = sta.invoke([] { return make<ProbeImpl>(); });
  ObjRefBytes packet = sta.invoke([&] { return marshalInterface<Probe>(probeImpl); });
  ObjRefInfo info = decodeObjRef(packet);
  auto mta = rt().joinMta();
  Ref<Probe> proxy = unmarshalInterface<Probe>(packet);
  proxy->count();
  proxy->count();

  AdminRef admin = ownAdmin();
  Owned<wire::Process> process = admin->describe();
  auto p = process.reader();
  BOOST_CHECK_EQUAL(p.getPid(), static_cast<uint32_t>(::getpid()));
  BOOST_CHECK(p.getServing());
  BOOST_CHECK_EQUAL(p.getBindings().size(), rt().bindings().size());

  auto server = findIn(p.getApartments(), [&](auto a) { return a.getOxid() == sta.oxid().value; });
  BOOST_REQUIRE(server);
  BOOST_CHECK_EQUAL(std::string(server->getKind().cStr()), "sta");
  BOOST_CHECK_EQUAL(std::string(server->getName().cStr()), "server");
  BOOST_CHECK_EQUAL(server->getThreads(), 1u);
  auto object = findIn(server->getObjects(), [&](auto o) { return o.getOid() == info.oid.value; });
  BOOST_REQUIRE(object);
  BOOST_CHECK(std::string(object->getClassName().cStr()).find("ProbeImpl") != std::string::npos);
  // The counts the export table itself holds.
  auto [strong, weak] = sta.invoke([&] {
    return sta.impl()->exports().refCounts(info.oid);
  });
  BOOST_CHECK_EQUAL(object->getStrongRefs(), strong);
  BOOST_CHECK_EQUAL(object->getWeakEntries(), weak);
  BOOST_CHECK(strong > 0);
  auto probeInterface = findIn(object->getInterfaces(),
                               [](auto i) { return i.getIid() == Probe::iid.value; });
  BOOST_REQUIRE(probeInterface);
  BOOST_CHECK_EQUAL(std::string(probeInterface->getName().cStr()), Probe::interfaceName);

  // The MTA holds the proxy.
  auto client = findIn(p.getApartments(), [&](auto a) { return a.getOxid() == rt().mta().oxid().value; });
  BOOST_REQUIRE(client);
  BOOST_CHECK(findIn(client->getProxies(), [&](auto x) {
    return x.getOid() == info.oid.value && x.getOxid() == sta.oxid().value;
  }));
  // The MTA exports the admin object itself.
  BOOST_CHECK(findIn(client->getObjects(), [](auto o) {
    return findIn(o.getInterfaces(), [](auto i) { return i.getIid() == wire::iface::Admin::iid.value; })
        .has_value();
  }));

  // The two calls went through the STA's dispatch: counted for Probe.count.
  auto count = findIn(p.getMethods(), [](auto m) {
    return m.getIface().getIid() == Probe::iid.value && m.getMethod() == 6;
  });
  BOOST_REQUIRE(count);
  BOOST_CHECK_GE(count->getCalls(), 2u);
  BOOST_CHECK_EQUAL(std::string(count->getMethodName().cStr()), "count");
  uint64_t histogram = 0;
  for (uint64_t n : count->getLatency()) histogram += n;
  BOOST_CHECK_EQUAL(histogram, count->getCalls());
  BOOST_CHECK_EQUAL(p.getLatencyBoundsMicros().size() + 1, count->getLatency().size());

  auto counter = findIn(p.getCounters(), [](auto c) { return c.getName() == "exportedObjects"; });
  BOOST_REQUIRE(counter);
  BOOST_CHECK_EQUAL(counter->getValue(), Runtime::stats().exportedObjects);
}

BOOST_AUTO_TEST_CASE(a_failed_call_counts_as_an_error_of_its_method) {
  Sta sta = rt().newSta("server");
  ObjRefBytes packet = sta.invoke([] { return marshalInterface<Probe>(make<ProbeImpl>()); });
  auto mta = rt().joinMta();
  Ref<Probe> proxy = unmarshalInterface<Probe>(packet);
  auto errorsOfFail = [] {
    for (const auto& row : detail::admin::MethodStats::instance().snapshot()) {
      if (row.iid == Probe::iid && row.method == 3) return row.errors;
    }
    return uint64_t{0};
  };
  uint64_t before = errorsOfFail();
  FERRY_CHECK_ERRC(proxy->fail("no"), Errc::serverFault);
  BOOST_CHECK_EQUAL(errorsOfFail(), before + 1);
}

BOOST_AUTO_TEST_CASE(health_answers_what_the_process_set) {
  auto mta = rt().joinMta();
  AdminRef admin = ownAdmin();
  BOOST_CHECK(admin->health().serving);
  rt().setServing(false, "draining for an upgrade");
  auto health = admin->health();
  BOOST_CHECK(!health.serving);
  BOOST_CHECK_EQUAL(health.reason, "draining for an upgrade");
  BOOST_CHECK(!admin->describe().reader().getServing());
  rt().setServing(true);
  BOOST_CHECK(admin->health().serving);
}

BOOST_AUTO_TEST_CASE(reflection_answers_the_schema_nodes_of_an_interface_and_its_types) {
  auto mta = rt().joinMta();
  AdminRef admin = ownAdmin();
  capnp::SchemaLoader loader;
  for (const auto& bytes : admin->schema(Probe::iid.value)) {
    auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), bytes.data(), words.size() * sizeof(capnp::word));
    capnp::FlatArrayMessageReader reader(words);
    loader.load(reader.getRoot<capnp::schema::Node>());
  }
  capnp::InterfaceSchema probe = loader.get(Probe::iid.value).asInterface();
  auto methods = probe.getMethods();
  BOOST_REQUIRE_EQUAL(methods.size(), 9u);
  BOOST_CHECK_EQUAL(std::string(methods[1].getProto().getName().cStr()), "echo");
  // The params and results structs came with it.
  BOOST_CHECK(methods[1].getParamType().findFieldByName("data") != nullptr);
  BOOST_CHECK(methods[6].getResultType().findFieldByName("total") != nullptr);

  FERRY_CHECK_ERRC(admin->schema(0x1234), Errc::noInterface);
}

BOOST_AUTO_TEST_CASE(object_hands_out_an_exported_object_by_its_oid) {
  Sta sta = rt().newSta("server");
  auto probeImpl = sta.invoke([] { return make<ProbeImpl>(); });
  ObjRefBytes packet = sta.invoke([&] { return marshalInterface<Probe>(probeImpl); });
  Oid oid = decodeObjRef(packet).oid;
  auto mta = rt().joinMta();
  Ref<Probe> first = unmarshalInterface<Probe>(packet);
  AdminRef admin = ownAdmin();
  Ref<Probe> again = unmarshalInterface<Probe>(admin->object(oid.value, 0));
  BOOST_CHECK(sameObject(first, again));
  again->count();
  BOOST_CHECK_EQUAL(probeImpl->counted.load(), 1u);
  FERRY_CHECK_ERRC(admin->object(oid.value ^ 1, 0), Errc::objectNotRegistered);
  FERRY_CHECK_ERRC(admin->object(oid.value, testing::iface::Callback::iid.value), Errc::noInterface);
}

BOOST_AUTO_TEST_CASE(an_admin_call_from_another_host_is_refused_unless_the_process_serves_the_network) {
  RuntimeOptions options;
  ClientBlanket anonymous;
  ClientBlanket authenticated{"psk", "client", SecurityLevel::integrity};
  Iid admin = wire::iface::Admin::iid;
  int64_t denied = Runtime::stats().callsDenied;
  // Over the pipe: this host.
  BOOST_CHECK_NO_THROW(detail::admin::checkCaller(options, anonymous, MarshalContext::local, admin));
  FERRY_CHECK_ERRC(detail::admin::checkCaller(options, authenticated,
                                              MarshalContext::differentMachine, admin),
                   Errc::accessDenied);
  options.admin = RuntimeOptions::Admin::network;
  FERRY_CHECK_ERRC(detail::admin::checkCaller(options, anonymous,
                                              MarshalContext::differentMachine, admin),
                   Errc::accessDenied);
  BOOST_CHECK_NO_THROW(detail::admin::checkCaller(options, authenticated,
                                                  MarshalContext::differentMachine, admin));
  // Other interfaces are not its business.
  options.admin = RuntimeOptions::Admin::local;
  BOOST_CHECK_NO_THROW(detail::admin::checkCaller(options, anonymous,
                                                  MarshalContext::differentMachine, Probe::iid));
  BOOST_CHECK_EQUAL(Runtime::stats().callsDenied, denied + 2);
}

BOOST_AUTO_TEST_CASE(method_statistics_bucket_latencies_by_their_upper_bounds) {
  auto& stats = detail::admin::MethodStats::instance();
  const uint64_t iid = 0x7e57ab1e00000001ull;
  using std::chrono::microseconds;
  stats.record(iid, 1, false, microseconds(0));
  stats.record(iid, 1, false, microseconds(10));
  stats.record(iid, 1, true, microseconds(11));
  stats.record(iid, 1, false, std::chrono::seconds(5));
  stats.record(iid, 2, false, microseconds(10));
  std::optional<detail::admin::MethodStats::Row> one;
  for (const auto& row : stats.snapshot()) {
    if (row.iid == Iid(iid) && row.method == 1) one = row;
  }
  BOOST_REQUIRE(one);
  BOOST_CHECK_EQUAL(one->calls, 4u);
  BOOST_CHECK_EQUAL(one->errors, 1u);
  BOOST_CHECK_EQUAL(one->latency[0], 2u);  // <= 10 us
  BOOST_CHECK_EQUAL(one->latency[1], 1u);  // <= 25 us
  BOOST_CHECK_EQUAL(one->latency[detail::admin::kLatencyBuckets - 1], 1u);  // beyond 1 s
}

BOOST_AUTO_TEST_SUITE_END()
