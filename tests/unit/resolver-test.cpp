// The resolver's parts without sockets: the resolution codec, the client's cache and ferryd's
// registry of other processes' apartments.
#define BOOST_TEST_MODULE resolver
#include <boost/test/unit_test.hpp>

#include <cstdlib>

#include <capnp/message.h>

#include <ferry/error.h>

#include "resolver/cache.h"
#include "resolver/registration.h"
#include "resolver/registry.h"
#include "resolver/resolution.h"
#include "stats.h"

using namespace ferry;
using namespace ferry::detail;

namespace {

Resolution resolutionOf(uint64_t oxid, std::vector<StringBindingData> bindings = {}) {
  Resolution r;
  r.oxid = Oxid(oxid);
  r.remUnknown = Ipid(oxid, 1);
  r.bindings = bindings.empty() ? std::vector<StringBindingData>{{"tcp", "127.0.0.1", "5000"}}
                                : std::move(bindings);
  r.processId = 1234ull << 32;
  r.hostId.fill(7);
  return r;
}

const StringBindingData pipeA{"pipe", "/run/ferry", "a"};
const StringBindingData pipeB{"pipe", "/run/ferry", "b"};

}  // namespace

BOOST_AUTO_TEST_SUITE(codec)

BOOST_AUTO_TEST_CASE(a_resolution_round_trips_and_one_without_ids_is_refused) {
  capnp::MallocMessageBuilder message;
  Resolution r = resolutionOf(42, {pipeA, {"udp", "::1", "7000"}});
  writeResolution(message.initRoot<wire::Resolution>(), r);
  Resolution back = readResolution(message.getRoot<wire::Resolution>().asReader());
  BOOST_TEST(back.oxid.value == 42u);
  BOOST_TEST((back.remUnknown == r.remUnknown));
  BOOST_TEST((back.bindings == r.bindings));
  BOOST_TEST(back.processId == r.processId);
  BOOST_TEST((back.hostId == r.hostId));

  message.getRoot<wire::Resolution>().setHostId(kj::arrayPtr(r.hostId.data(), 8));
  BOOST_CHECK_EXCEPTION(readResolution(message.getRoot<wire::Resolution>().asReader()), Error,
                        [](const Error& e) { return e.code() == Errc::protocolError; });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(cache)

namespace {
ResolverCache::Origin originOf(uint64_t oxid, std::vector<StringBindingData> resolvers = {pipeA}) {
  ResolverCache::Origin o;
  o.oxid = Oxid(oxid);
  o.processId = 1234ull << 32;
  o.hostId.fill(7);
  o.resolvers = std::move(resolvers);
  return o;
}
}  // namespace

BOOST_AUTO_TEST_CASE(the_least_recently_used_resolution_goes_past_the_capacity) {
  ResolverCache cache(2);
  cache.store(originOf(1), resolutionOf(1));
  cache.store(originOf(2), resolutionOf(2));
  BOOST_TEST(cache.find(originOf(1)).has_value());  // 1 is now the most recent
  cache.store(originOf(3), resolutionOf(3));
  BOOST_TEST(cache.size() == 2u);
  BOOST_TEST(cache.find(originOf(1)).has_value());
  BOOST_TEST(!cache.find(originOf(2)).has_value());
  BOOST_TEST(cache.find(originOf(3)).has_value());
}

BOOST_AUTO_TEST_CASE(an_objref_naming_other_resolvers_or_another_process_does_not_share_an_entry) {
  ResolverCache cache;
  cache.store(originOf(1, {pipeA}), resolutionOf(1, {pipeA}));
  // A crafted OBJREF with the same OXID and resolvers of its own is resolved on its own.
  BOOST_TEST(!cache.find(originOf(1, {pipeB})).has_value());
  ResolverCache::Origin otherProcess = originOf(1);
  otherProcess.processId = 99;
  BOOST_TEST(!cache.find(otherProcess).has_value());
  cache.store(originOf(1, {pipeB}), resolutionOf(1, {pipeB}));
  BOOST_TEST((cache.find(originOf(1, {pipeA}))->bindings == std::vector<StringBindingData>{pipeA}),
             "the crafted entry changed nothing for the genuine OBJREF");
  cache.invalidate(Oxid(1));
  BOOST_TEST(cache.size() == 0u, "invalidating an exporter drops all its entries");
}

BOOST_AUTO_TEST_CASE(a_binding_that_failed_drops_every_resolution_that_lists_it) {
  ResolverCache cache;
  cache.store(originOf(1), resolutionOf(1, {pipeA, {"tcp", "127.0.0.1", "1"}}));
  cache.store(originOf(2), resolutionOf(2, {pipeA}));
  cache.store(originOf(3), resolutionOf(3, {pipeB}));
  BOOST_TEST(cache.invalidateBinding(pipeA) == 2u);
  BOOST_TEST(!cache.find(originOf(1)).has_value());
  BOOST_TEST(!cache.find(originOf(2)).has_value());
  BOOST_TEST(cache.find(originOf(3)).has_value());
}

BOOST_AUTO_TEST_CASE(a_stored_resolution_replaces_the_one_before) {
  ResolverCache cache;
  cache.store(originOf(1), resolutionOf(1, {pipeA}));
  cache.store(originOf(1), resolutionOf(1, {pipeB}));
  BOOST_TEST(cache.size() == 1u);
  BOOST_TEST((cache.find(originOf(1))->bindings == std::vector<StringBindingData>{pipeB}));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(registry)

BOOST_AUTO_TEST_CASE(only_the_registering_process_may_replace_or_withdraw_an_entry) {
  Registry registry;
  const orpc::LinkId first{0, 1}, second{0, 2}, intruder{0, 3};
  Registry::Registrant owner{first, true, 1000, 4321};
  Registry::Registrant sameProcessAgain{second, true, 1000, 4321};
  Registry::Registrant other{intruder, true, 1001, 999};
  int64_t refusedBefore = stats().registrationsRefused.load();

  BOOST_TEST(int(registry.add(resolutionOf(5, {pipeA}), owner)) == int(Registry::Outcome::added));
  BOOST_TEST(int(registry.add(resolutionOf(5, {pipeB}), other)) == int(Registry::Outcome::refused));
  BOOST_TEST(int(registry.withdraw(Oxid(5), other)) == int(Registry::Outcome::refused));
  BOOST_TEST(stats().registrationsRefused.load() - refusedBefore == 2);
  BOOST_TEST((registry.find(Oxid(5))->bindings == std::vector<StringBindingData>{pipeA}));

  // The same pid and uid over a new connection (it reconnected) may.
  BOOST_TEST(int(registry.add(resolutionOf(5, {pipeB}), sameProcessAgain)) ==
             int(Registry::Outcome::added));
  BOOST_TEST((registry.find(Oxid(5))->bindings == std::vector<StringBindingData>{pipeB}));
  // The old connection closing takes nothing the new one registered.
  BOOST_TEST(registry.forget(first) == 0u);
  BOOST_TEST(registry.find(Oxid(5)) != nullptr);
  BOOST_TEST(int(registry.withdraw(Oxid(5), sameProcessAgain)) == int(Registry::Outcome::withdrawn));
  BOOST_TEST(registry.find(Oxid(5)) == nullptr);
  BOOST_TEST(int(registry.withdraw(Oxid(5), owner)) == int(Registry::Outcome::unknown));
}

BOOST_AUTO_TEST_CASE(a_closed_connection_takes_its_entries_with_it) {
  Registry registry;
  const orpc::LinkId a{0, 1}, b{1, 1};
  registry.add(resolutionOf(1), {a, false, 0, 0});
  registry.add(resolutionOf(2), {a, false, 0, 0});
  registry.add(resolutionOf(3), {b, false, 0, 0});
  BOOST_TEST(registry.forget(a) == 2u);
  BOOST_TEST(registry.size() == 1u);
  BOOST_TEST(registry.find(Oxid(3)) != nullptr);
}

BOOST_AUTO_TEST_CASE(each_registering_connection_is_one_process_listed_with_its_admin_object_until_it_closes) {
  Registry registry;
  const orpc::LinkId a{0, 1}, b{0, 2}, c{0, 3};
  Registry::Registrant first{a, true, 1000, 1234};
  Registry::Registrant second{b, true, 1001, 77};
  Registry::Registrant third{c, true, 1000, 55};
  registry.add(resolutionOf(1), first);
  registry.add(resolutionOf(2), first);
  Resolution other = resolutionOf(3);
  other.processId = 77ull << 32;
  registry.add(other, second);
  // A process known by its admin object alone.
  registry.setAdmin({ObjRefBytes{1, 2, 3}, true, 55ull << 32, third});
  registry.setAdmin({ObjRefBytes{4, 5}, false, 1234ull << 32, first});

  std::vector<Registry::Process> all = registry.processes();
  BOOST_REQUIRE_EQUAL(all.size(), 3u);
  BOOST_TEST(all[0].processId == 55ull << 32);
  BOOST_REQUIRE(all[0].admin != nullptr);
  BOOST_TEST(all[0].admin->network);
  BOOST_TEST(all[1].processId == 77ull << 32);
  BOOST_TEST(all[1].registrant.uid == 1001u);
  BOOST_TEST(all[1].admin == nullptr);
  BOOST_TEST(all[2].processId == 1234ull << 32);
  BOOST_REQUIRE(all[2].admin != nullptr);
  BOOST_TEST((all[2].admin->objref == ObjRefBytes{4, 5}));

  // Withdrawn (an empty OBJREF), and gone with its connection.
  registry.setAdmin({ObjRefBytes{}, false, 0, first});
  BOOST_TEST(registry.processes()[2].admin == nullptr);
  BOOST_TEST(registry.forget(c) == 1u);
  BOOST_TEST(registry.processes().size() == 2u);
}

BOOST_AUTO_TEST_CASE(without_credentials_only_the_same_connection_may_change_an_entry) {
  Registry registry;
  const orpc::LinkId a{0, 1}, b{0, 2};
  registry.add(resolutionOf(1), {a, false, 0, 0});
  BOOST_TEST(int(registry.withdraw(Oxid(1), {b, false, 0, 0})) == int(Registry::Outcome::refused));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(registration)

BOOST_AUTO_TEST_CASE(retries_back_off_from_one_second_to_thirty_and_start_over_once_reached) {
  FerrydRegistration registration(pipeA);
  BOOST_TEST(registration.enabled());
  BOOST_TEST(registration.key() == "pipe:/run/ferry[a]");
  bool firstTime = false;
  std::vector<uint64_t> delays;
  for (int i = 0; i < 7; ++i) {
    delays.push_back(registration.lost(firstTime));
    BOOST_TEST(firstTime == (i == 0));
  }
  BOOST_TEST(delays == (std::vector<uint64_t>{1000, 2000, 4000, 8000, 16000, 30000, 30000}),
             boost::test_tools::per_element());
  BOOST_TEST(registration.reached(), "it was down: worth saying it is back");
  BOOST_TEST(!registration.reached());
  BOOST_TEST(registration.lost(firstTime) == 1000u);
  BOOST_TEST(firstTime);
}

BOOST_AUTO_TEST_CASE(the_ferryd_setting_takes_a_pipe_binding_auto_or_none) {
  unsetenv("FERRY_RESOLVER");
  RuntimeOptions options;
  options.resolver = "pipe:/tmp/x[ferryd]";
  BOOST_TEST((ferrydSetting(options) == StringBindingData{"pipe", "/tmp/x", "ferryd"}));
  options.resolver = "none";
  BOOST_TEST(ferrydSetting(options).protseq.empty());
  options.resolver = "tcp:127.0.0.1[5]";
  BOOST_CHECK_EXCEPTION(ferrydSetting(options), Error, [](const Error& e) {
    return e.code() == Errc::invalidArgument &&
           e.message().find("RuntimeOptions::resolver") != std::string::npos;
  });
  setenv("FERRY_RESOLVER", "none", 1);
  BOOST_TEST(ferrydSetting(options).protseq.empty(), "the environment wins");
  unsetenv("FERRY_RESOLVER");
}

BOOST_AUTO_TEST_SUITE_END()
