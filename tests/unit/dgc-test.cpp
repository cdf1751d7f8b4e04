// Distributed GC without processes: references per client in the export table, the exporter's
// ping server and the importer's ping sets, driven with a clock of the test's own.
#define BOOST_TEST_MODULE dgc
#include <boost/test/unit_test.hpp>

#include <capnp/serialize.h>

#include "orpc/endpoint.h"
#include "dgc/ping-client.h"
#include "dgc/ping-server.h"
#include "export-table.h"
#include "orpc/frame.h"
#include "ping.capnp.h"
#include "stats.h"

#include "fixture.h"
#include "servants.h"

using namespace ferry;
using namespace ferry::detail;
using namespace ferry::test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::milliseconds kPeriod{100};
const ClientKey alice{0x1111'0000'0000'0001, 0xa11ce};
const ClientKey bob{0x2222'0000'0000'0002, 0xb0b};
// Bob's process id with a token that is not his.
const ClientKey mallory{bob.process, 0xbad};

struct Exported {
  std::shared_ptr<WatchedProbe::Log> log = std::make_shared<WatchedProbe::Log>();
  Ref<testing::iface::Probe> object{make<WatchedProbe>(log)};
  ExportTable table;
  // Five references for the recipient of a call's results.
  ExportedInterface give(const ClientKey& to) {
    return table.exportInterface(object.get(), testing::iface::Probe::iid, PacketKind::normal, 5,
                                 false, false, &to);
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(distributed_gc, RuntimeFixture)

BOOST_AUTO_TEST_CASE(on_authenticated_links_references_belong_to_the_principal_as_well) {
  // Bob and Mallory are both authenticated; Mallory read Bob's process and token off the wire
  // (they travel readable at integrity) and names them on her own link.
  ClientBlanket bobs{"psk", "bob", SecurityLevel::integrity};
  ClientBlanket mallorys{"psk", "mallory", SecurityLevel::integrity};
  ClientKey bobKey = orpc::callerKeyOf(bob.process, bob.token, &bobs);
  ClientKey malloryKey = orpc::callerKeyOf(bob.process, bob.token, &mallorys);
  BOOST_TEST((bobKey == orpc::callerKeyOf(bob.process, bob.token, &bobs)));
  BOOST_TEST((malloryKey != bobKey));
  BOOST_TEST(malloryKey.process == bob.process);
  // Another provider with the same principal's name is another caller too.
  ClientBlanket tlsBob{"tls", "bob", SecurityLevel::integrity};
  BOOST_TEST((orpc::callerKeyOf(bob.process, bob.token, &tlsBob) != bobKey));
  // Anonymous or unauthenticated links keep the key as named.
  ClientBlanket anonymous{"tls", "", SecurityLevel::integrity};
  BOOST_TEST((orpc::callerKeyOf(bob.process, bob.token, &anonymous) == bob));
  BOOST_TEST((orpc::callerKeyOf(bob.process, bob.token, nullptr) == bob));

  Exported e;
  Ipid ipid = e.give(bobKey).ipid;
  Retired retired;
  BOOST_TEST((e.table.releaseRefs(ipid, 1, malloryKey, retired) ==
              ExportTable::ReleaseOutcome::notHeld));
  BOOST_TEST(e.table.clientRefs(e.object.get(), bobKey) == 5u);
  BOOST_TEST((e.table.releaseRefs(ipid, 5, bobKey, retired) ==
              ExportTable::ReleaseOutcome::released));
}

BOOST_AUTO_TEST_CASE(a_client_returns_only_the_references_it_holds) {
  Exported e;
  Ipid ipid = e.give(alice).ipid;
  e.give(bob);
  BOOST_TEST(e.table.refCounts(e.object.get()).first == 10u);
  int64_t refusedBefore = stats().releasesRefused.load();
  Retired retired;
  // Mallory names Bob's process but not his token: she holds nothing.
  BOOST_TEST((e.table.releaseRefs(ipid, 1, mallory, retired) ==
              ExportTable::ReleaseOutcome::notHeld));
  // Alice may return her five, not a sixth.
  BOOST_TEST((e.table.releaseRefs(ipid, 6, alice, retired) ==
              ExportTable::ReleaseOutcome::notHeld));
  BOOST_TEST((e.table.releaseRefs(ipid, 5, alice, retired) ==
              ExportTable::ReleaseOutcome::released));
  BOOST_TEST((e.table.releaseRefs(ipid, 1, alice, retired) ==
              ExportTable::ReleaseOutcome::notHeld));
  BOOST_TEST(stats().releasesRefused.load() - refusedBefore == 3);
  BOOST_TEST(e.table.clientRefs(e.object.get(), bob) == 5u);
  BOOST_TEST(e.table.refCounts(e.object.get()).first == 5u);
  BOOST_TEST(retired.empty());
  BOOST_TEST((e.table.releaseRefs(ipid, 5, bob, retired) ==
              ExportTable::ReleaseOutcome::released));
  BOOST_TEST(retired.size() == 1u, "Bob's were the last: the stub manager retired");
  BOOST_TEST(e.log->disconnects.load() == 1);
}

BOOST_AUTO_TEST_CASE(references_in_transit_become_the_first_returner_s_and_hand_on_moves_them) {
  Exported e;
  // A parameter of an outgoing call: nobody known receives it.
  Ipid ipid = e.table.exportInterface(e.object.get(), testing::iface::Probe::iid,
                                      PacketKind::normal, 5, false, false)
                  .ipid;
  e.give(alice);
  Retired retired;
  // Bob unmarshaled the transit OBJREF: he returns its five, and no more.
  BOOST_TEST((e.table.releaseRefs(ipid, 5, bob, retired) ==
              ExportTable::ReleaseOutcome::released));
  BOOST_TEST((e.table.releaseRefs(ipid, 1, bob, retired) ==
              ExportTable::ReleaseOutcome::notHeld));
  // Alice hands two of hers on to a third process, which returns them.
  BOOST_TEST(e.table.handOn(ipid, 2, alice));
  BOOST_TEST(!e.table.handOn(ipid, 4, alice), "she holds three more, not four");
  BOOST_TEST(e.table.clientRefs(e.object.get(), alice) == 3u);
  BOOST_TEST((e.table.releaseRefs(ipid, 2, mallory, retired) ==
              ExportTable::ReleaseOutcome::released));
  BOOST_TEST(e.table.refCounts(e.object.get()).first == 3u);
  Retired gone = e.table.clear();
}

BOOST_AUTO_TEST_CASE(collecting_a_client_releases_its_references_but_not_no_ping_or_table_ones) {
  Exported e;
  e.give(alice);
  e.give(bob);
  Exported unpinged;
  unpinged.table.exportInterface(unpinged.object.get(), testing::iface::Probe::iid,
                                 PacketKind::normal, 5, /*noPing=*/true, false, &alice);
  auto packet = e.table.exportInterface(e.object.get(), testing::iface::Probe::iid,
                                        PacketKind::tableStrong, 0, false);
  (void)packet;
  Retired retired;
  auto nobodyElse = [](Oid) { return false; };
  BOOST_TEST(e.table.collectClient(alice, nobodyElse, retired) == 5u);
  BOOST_TEST(unpinged.table.collectClient(alice, nobodyElse, retired) == 0u);
  BOOST_TEST(unpinged.table.refCounts(unpinged.object.get()).first == 5u);
  // Bob's five and the table's one remain.
  BOOST_TEST(e.table.refCounts(e.object.get()).first == 6u);
  BOOST_TEST(e.table.collectClient(bob, nobodyElse, retired) == 5u);
  BOOST_TEST(e.table.refCounts(e.object.get()).first == 1u);
  BOOST_TEST(retired.empty(), "the table entry keeps the object");
  Retired gone = e.table.clear();
  Retired gone2 = unpinged.table.clear();
}

BOOST_AUTO_TEST_CASE(a_collected_client_s_references_on_an_object_another_set_names_go_to_transit) {
  Exported e;
  Oid oid = e.give(alice).oid;
  Ipid ipid = e.give(alice).ipid;
  Retired retired;
  BOOST_TEST(e.table.collectClient(alice, [&](Oid o) { return o == oid; }, retired) == 0u);
  BOOST_TEST(e.table.refCounts(e.object.get()).first == 10u);
  // Bob got them from Alice: he returns them.
  BOOST_TEST((e.table.releaseRefs(ipid, 4, bob, retired) ==
              ExportTable::ReleaseOutcome::released));
  BOOST_TEST(e.table.dropTransit(oid, retired) == 6u);
  BOOST_TEST(retired.size() == 1u);
}

BOOST_AUTO_TEST_CASE(the_ping_server_collects_a_client_silent_for_three_periods_only) {
  detail::dgc::PingServer server(kPeriod);
  auto t0 = Clock::now();
  std::vector<uint64_t> oids{7, 8};
  auto reply = server.ping(alice, 0, 1, oids, {}, t0);
  BOOST_TEST(reply.code == 0);
  BOOST_TEST(reply.setId != 0u);
  BOOST_TEST(server.pinged(Oid(7)));
  // A call counts as liveness.
  server.heard(bob, t0 + 2 * kPeriod);
  BOOST_TEST(server.expire(t0 + 3 * kPeriod).empty());
  // Unchanged set: empty lists. Then 8 leaves.
  BOOST_TEST(server.ping(alice, reply.setId, 2, {}, {}, t0 + kPeriod).code == 0);
  std::vector<uint64_t> eight{8};
  BOOST_TEST(server.ping(alice, reply.setId, 3, {}, eight, t0 + 2 * kPeriod).code == 0);
  BOOST_TEST(!server.pinged(Oid(8)));
  // An older copy of ping 2 changes nothing.
  BOOST_TEST(server.ping(alice, reply.setId, 2, eight, {}, t0 + 2 * kPeriod).code == 0);
  BOOST_TEST(!server.pinged(Oid(8)));
  auto expired = server.expire(t0 + 5 * kPeriod + std::chrono::milliseconds(1));
  BOOST_REQUIRE(expired.size() == 2u);
  BOOST_TEST(!server.pinged(Oid(7)));
  BOOST_TEST(server.clients() == 0u);
  // A late ping of the collected set: the client learns it.
  auto late = server.ping(alice, reply.setId, 4, {}, {}, t0 + 6 * kPeriod);
  BOOST_TEST(late.code == static_cast<uint16_t>(Errc::objectNotConnected));
}

BOOST_AUTO_TEST_CASE(a_ping_set_sends_its_changes_until_acknowledged_then_only_its_name) {
  detail::dgc::PingClient client(kPeriod, alice.process, alice.token);
  StringBindingData binding;
  binding.protseq = "pipe";
  binding.address = "/nowhere";
  auto set = client.join(bob.process, binding, Oid(7));
  client.join(bob.process, binding, Oid(8));
  auto t0 = Clock::now();
  auto read = [](const std::vector<uint8_t>& frame) {
    orpc::Frame decoded = orpc::decodeFrame(frame.data(), frame.size());
    BOOST_REQUIRE((decoded.header.kind == orpc::FrameKind::ping));
    auto ping = decoded.message->root<wire::Ping>();
    return std::make_tuple(decoded.header.callId, ping.getSetId(), ping.getSequence(),
                           ping.getAdded().size(), ping.getRemoved().size(), frame.size());
  };
  auto first = client.due(t0);
  BOOST_REQUIRE(first.size() == 1u);
  auto [name, setId, sequence, added, removed, bytes] = read(first[0].frame);
  BOOST_TEST(setId == 0u);
  BOOST_TEST(added == 2u);
  BOOST_TEST(client.due(t0 + kPeriod / 2).empty(), "one ping per period");
  // Unanswered: the next period says it all again.
  auto again = client.due(t0 + kPeriod);
  BOOST_REQUIRE(again.size() == 1u);
  BOOST_TEST(std::get<3>(read(again[0].frame)) == 2u);
  client.answered(name, 0, 42, std::get<2>(read(again[0].frame)));
  // Acknowledged: only the set's name, whatever it holds.
  auto quiet = client.due(t0 + 2 * kPeriod);
  BOOST_REQUIRE(quiet.size() == 1u);
  auto q = read(quiet[0].frame);
  BOOST_TEST(std::get<1>(q) == 42u);
  BOOST_TEST(std::get<3>(q) == 0u);
  BOOST_TEST(std::get<4>(q) == 0u);
  set->leave(Oid(8));
  auto change = client.due(t0 + 3 * kPeriod);
  BOOST_TEST(std::get<4>(read(change[0].frame)) == 1u);
  // The exporter collected the set: its members' proxies fail; a new member starts a new set.
  client.answered(name, static_cast<uint16_t>(Errc::objectNotConnected), 42, 0);
  BOOST_TEST(set->collected());
  auto fresh = client.join(bob.process, binding, Oid(9));
  BOOST_TEST(fresh != set);
  BOOST_TEST(!fresh->collected());
  set->leave(Oid(7));
  fresh->leave(Oid(9));
  BOOST_TEST(client.due(t0 + 5 * kPeriod).empty(), "nothing held: no pings");
  BOOST_TEST(client.sets() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
