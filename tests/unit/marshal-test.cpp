// Marshaling semantics (COM's MSHLFLAGS contract) and OBJREF validation.
#define BOOST_TEST_MODULE marshal
#include <boost/test/unit_test.hpp>

#include <random>

#include <ferry/generated.h>

#include "objref.h"
#include "servants.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Callback;
using testing::iface::Probe;

namespace {

struct World {
  explicit World(Runtime& rt) : server(rt.newSta("server")), client(rt.newSta("client")) {}
  // A watched object in `server`, marshaled with `flags`.
  ObjRefBytes exportWatched(Ref<Probe>& object, MarshalFlags flags = MarshalFlags::normal) {
    return server.invoke([&] {
      object = make<WatchedProbe>(log);
      return marshalInterface(object, MarshalContext::inproc, flags);
    });
  }
  bool alive() const { return log->alive; }

  Sta server;
  Sta client;
  std::shared_ptr<WatchedProbe::Log> log = std::make_shared<WatchedProbe::Log>();
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(marshal, RuntimeFixture)

BOOST_AUTO_TEST_CASE(a_normal_packet_unmarshals_once) {
  World w(rt());
  Ref<Probe> object;
  ObjRefBytes packet = w.exportWatched(object);
  BOOST_CHECK(exportCounts(w.server, object.get()) == std::make_pair(5u, 0u));
  w.client.invoke([&] {
    Ref<Probe> proxy = unmarshalInterface<Probe>(packet);
    BOOST_CHECK(detail::asProxy(proxy.get()) != nullptr);
    FERRY_CHECK_ERRC(unmarshalInterface<Probe>(packet), Errc::objectNotConnected);
    BOOST_CHECK_NO_THROW(proxy->nothing());
  });
  // The proxy's release travelled back: the stub manager retired, the object lives on locally.
  BOOST_CHECK(eventually([&] { return exportCounts(w.server, object.get()).first == 0; }));
  BOOST_CHECK(w.alive());
  w.server.invoke([&] { object.reset(); });
  BOOST_CHECK(!w.alive());
}

BOOST_AUTO_TEST_CASE(release_marshal_data_frees_a_normal_packet_never_unmarshaled) {
  World w(rt());
  Ref<Probe> object;
  ObjRefBytes packet = w.exportWatched(object);
  w.server.invoke([&] { object.reset(); });
  BOOST_CHECK(w.alive());  // the packet's references keep it
  w.client.invoke([&] { releaseMarshalData(packet); });
  BOOST_CHECK(eventually([&] { return !w.alive(); }));
  w.client.invoke([&] {
    FERRY_CHECK_ERRC(releaseMarshalData(packet), Errc::objectNotConnected);
    FERRY_CHECK_ERRC(unmarshalInterface<Probe>(packet), Errc::objectNotConnected);
  });
}

BOOST_AUTO_TEST_CASE(same_apartment_unmarshal_returns_the_object_and_consumes_the_packet) {
  World w(rt());
  w.server.invoke([&] {
    Ref<Probe> object = make<ProbeImpl>();
    ObjRefBytes packet = marshalInterface(object);
    Ref<Probe> back = unmarshalInterface<Probe>(packet);
    BOOST_CHECK(back.get() == object.get());
    FERRY_CHECK_ERRC(unmarshalInterface<Probe>(packet), Errc::objectNotConnected);
    BOOST_CHECK(w.server.impl()->exports().refCounts(object.get()).first == 0);

    // Asking for an interface the object lacks fails, and consumes the packet all the same.
    ObjRefBytes second = marshalInterface(object);
    FERRY_CHECK_ERRC(unmarshalInterface<Callback>(second), Errc::noInterface);
    FERRY_CHECK_ERRC(unmarshalInterface<Probe>(second), Errc::objectNotConnected);
    BOOST_CHECK_EQUAL(w.server.impl()->exports().size(), 0u);
  });
}

BOOST_AUTO_TEST_CASE(a_table_strong_packet_unmarshals_many_times_and_keeps_the_object) {
  World w(rt());
  Ref<Probe> object;
  ObjRefBytes packet = w.exportWatched(object, MarshalFlags::tableStrong);
  w.server.invoke([&] { object.reset(); });
  w.client.invoke([&] {
    for (int i = 0; i < 3; ++i) {
      Ref<Probe> proxy = unmarshalInterface<Probe>(packet);
      proxy->nothing();
    }
  });
  BOOST_CHECK(w.alive());
  w.server.invoke([&] {
    // The table's own reference is all that remains once the proxies' releases arrived.
    BOOST_CHECK(eventually([&] { return w.server.impl()->exports().size() == 1; }));
    Ref<Probe> local = unmarshalInterface<Probe>(packet);  // the real object, here
    BOOST_CHECK(detail::asProxy(local.get()) == nullptr);
  });
  w.client.invoke([&] { releaseMarshalData(packet); });
  BOOST_CHECK(eventually([&] { return !w.alive(); }));
  w.client.invoke([&] { FERRY_CHECK_ERRC(unmarshalInterface<Probe>(packet), Errc::objectNotConnected); });
}

BOOST_AUTO_TEST_CASE(a_table_weak_packet_does_not_keep_the_object_alive) {
  // An object without the ExternalConnection hook: the weak entry does not keep it.
  World w(rt());
  Ref<Probe> object;
  ObjRefBytes packet = w.server.invoke([&] {
    object = make<ProbeImpl>();
    return marshalInterface(object, MarshalContext::inproc, MarshalFlags::tableWeak);
  });
  BOOST_CHECK(exportCounts(w.server, object.get()) == std::make_pair(0u, 1u));
  w.client.invoke([&] {
    Ref<Probe> a = unmarshalInterface<Probe>(packet);
    Ref<Probe> b = unmarshalInterface<Probe>(packet);
    BOOST_CHECK(a.get() == b.get());
    a->nothing();
  });
  // The last proxy went: the stub manager retired although the weak entry remains.
  BOOST_CHECK(eventually([&] { return exportedIn(w.server) == 0; }));
  int64_t servants = Runtime::stats().servants;
  w.server.invoke([&] { object.reset(); });
  BOOST_CHECK_EQUAL(Runtime::stats().servants, servants - 1);
  w.client.invoke([&] {
    FERRY_CHECK_ERRC(unmarshalInterface<Probe>(packet), Errc::objectNotRegistered);
    BOOST_CHECK_NO_THROW(releaseMarshalData(packet));
  });
}

BOOST_AUTO_TEST_CASE(a_weak_entry_keeps_an_object_with_the_hook_until_its_marshal_data_is_released) {
  World w(rt());
  ObjRefBytes packet = w.server.invoke([&] {
    return marshalInterface(Ref<Probe>(make<WatchedProbe>(w.log)), MarshalContext::inproc,
                            MarshalFlags::tableWeak);
  });  // only the exporter holds the object now
  BOOST_CHECK_EQUAL(w.log->connects.load(), 0);  // a weak entry is no connection
  w.client.invoke([&] { unmarshalInterface<Probe>(packet)->nothing(); });
  BOOST_CHECK(eventually([&] { return w.log->disconnects.load() == 1; }));
  BOOST_CHECK_EQUAL(w.log->connects.load(), 1);
  BOOST_CHECK(w.log->lastCloses);
  // COM keeps the stub manager (and the object) of a hooked object while the weak entry exists.
  BOOST_CHECK(w.alive());
  BOOST_CHECK_EQUAL(exportedIn(w.server), 1u);
  w.client.invoke([&] { BOOST_CHECK_NO_THROW(unmarshalInterface<Probe>(packet)->nothing()); });
  w.server.invoke([&] { releaseMarshalData(packet); });
  BOOST_CHECK(eventually([&] { return !w.alive(); }));
  BOOST_CHECK_EQUAL(exportedIn(w.server), 0u);
}

BOOST_AUTO_TEST_CASE(a_released_weak_packet_still_unmarshals_while_its_object_lives) {
  World w(rt());
  Ref<Probe> object;
  ObjRefBytes packet = w.server.invoke([&] {
    object = make<ProbeImpl>();
    return marshalInterface(object, MarshalContext::inproc, MarshalFlags::tableWeak);
  });
  ObjRefBytes copy = packet;
  Ref<Probe> held = w.client.invoke([&] { return unmarshalInterface<Probe>(packet); });
  w.server.invoke([&] { releaseMarshalData(packet); });
  // The entry is gone, the object lives (the proxy holds it): a copy of the bytes still works.
  BOOST_CHECK(exportCounts(w.server, object.get()) == std::make_pair(5u, 0u));
  w.client.invoke([&] {
    Ref<Probe> again = unmarshalInterface<Probe>(copy);
    BOOST_CHECK(again.get() == held.get());
    BOOST_CHECK_NO_THROW(again->nothing());
    // The packet's own release was the only one it had.
    FERRY_CHECK_ERRC(releaseMarshalData(copy), Errc::objectNotConnected);
    held.reset();
  });
  BOOST_CHECK(eventually([&] { return exportedIn(w.server) == 0; }));
  // The object's stub manager went: the weak packet names an object no longer registered.
  w.client.invoke([&] { FERRY_CHECK_ERRC(unmarshalInterface<Probe>(copy), Errc::objectNotRegistered); });
  w.server.invoke([&] {
    FERRY_CHECK_ERRC(unmarshalInterface<Probe>(copy), Errc::objectNotRegistered);
    object.reset();
  });
}

BOOST_AUTO_TEST_CASE(a_weak_packet_of_an_object_that_died_fails_with_object_not_registered) {
  World w(rt());
  ObjRefBytes packet = w.server.invoke([&] {
    return marshalInterface(Ref<Probe>(make<ProbeImpl>()), MarshalContext::inproc,
                            MarshalFlags::tableWeak);
  });
  w.client.invoke([&] { unmarshalInterface<Probe>(packet)->nothing(); });
  BOOST_CHECK(eventually([&] { return exportedIn(w.server) == 0; }));  // the object died
  w.server.invoke([&] { releaseMarshalData(packet); });
  w.client.invoke([&] { FERRY_CHECK_ERRC(unmarshalInterface<Probe>(packet), Errc::objectNotRegistered); });
  // Its apartment gone as well: still objectNotRegistered.
  ObjRefBytes orphan;
  {
    Sta gone = rt().newSta("gone");
    Ref<Probe> object = make<ProbeImpl>();
    orphan = gone.invoke([&] {
      return marshalInterface(object, MarshalContext::inproc, MarshalFlags::tableWeak);
    });
    gone.invoke([&] { object.reset(); });
  }
  w.client.invoke([&] { FERRY_CHECK_ERRC(unmarshalInterface<Probe>(orphan), Errc::objectNotRegistered); });
}

BOOST_AUTO_TEST_CASE(unmarshaling_a_normal_packet_in_its_own_apartment_ends_the_connection_without_closing) {
  World w(rt());
  Ref<Probe> object;
  ObjRefBytes packet = w.exportWatched(object);
  BOOST_CHECK_EQUAL(w.log->connects.load(), 1);
  w.server.invoke([&] {
    Ref<Probe> same = unmarshalInterface<Probe>(packet);
    BOOST_CHECK(same.get() == object.get());
    ExternalReferences refs = externalReferences(object.get());
    BOOST_CHECK_EQUAL(refs.strong, 0u);
    BOOST_CHECK(!refs.stubManager);
  });
  BOOST_CHECK_EQUAL(w.log->disconnects.load(), 1);
  BOOST_CHECK(!w.log->lastCloses);  // COM's: the packet's connection ends, nobody asked to close
  w.server.invoke([&] { object.reset(); });
  BOOST_CHECK(!w.alive());
}

// ---- the identity ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(an_unmarshaled_identity_holds_a_reference_like_any_interface_proxy) {
  World w(rt());
  Ref<Probe> object;
  ObjRefBytes packet = w.exportWatched(object);
  Ref<Interface> identity = w.client.invoke([&] { return unmarshalInterface<Interface>(packet); });
  BOOST_CHECK(isProxy(identity));
  // The packet's five references stay with the identity after its Probe proxy went.
  BOOST_CHECK(eventually([&] { return exportCounts(w.server, object.get()).first == 5u; }));
  w.server.invoke([&] { object.reset(); });
  BOOST_CHECK(w.alive());  // the identity keeps the object
  w.client.invoke([&] {
    // Querying through the identity asks the exporter; marshaling it works as well.
    Ref<Probe> probe = queryInterface<Probe>(identity);
    BOOST_CHECK_NO_THROW(probe->nothing());
    BOOST_CHECK(sameObject(probe, identity));
    probe.reset();
    ObjRefBytes onward = marshalInterface(identity.get(), Interface::iid);
    ObjRefInfo info = decodeObjRef(onward);
    BOOST_CHECK(info.iid == Interface::iid);
    BOOST_CHECK(info.oxid == w.server.oxid());
    BOOST_CHECK(info.oid == decodeObjRef(packet).oid);  // names the original object
    BOOST_CHECK_GT(info.publicRefs, 0u);
    releaseMarshalData(onward);
  });
  BOOST_CHECK(w.alive());
  w.client.invoke([&] { identity.reset(); });
  BOOST_CHECK(eventually([&] { return !w.alive(); }));
  BOOST_CHECK_EQUAL(exportedIn(w.server), 0u);
}

BOOST_AUTO_TEST_CASE(an_objects_identity_marshals_like_any_interface_and_names_the_object) {
  World w(rt());
  Sta third = rt().newSta("third");
  Ref<Probe> object;
  ObjRefBytes packet = w.server.invoke([&] {
    object = make<ProbeImpl>();
    return marshalInterface(object.get(), Interface::iid);
  });
  ObjRefInfo info = decodeObjRef(packet);
  BOOST_CHECK(info.kind == ObjRefInfo::Kind::standard);
  BOOST_CHECK(info.iid == Interface::iid);
  BOOST_CHECK_EQUAL(info.publicRefs, 5u);
  BOOST_CHECK_EQUAL(exportCounts(w.server, object.get()).first, 5u);
  uint64_t serverThread = w.server.invoke([] { return threadHash(); });
  ObjRefBytes onward = w.client.invoke([&] {
    Ref<Interface> identity = unmarshalInterface<Interface>(packet);
    BOOST_CHECK(isProxy(identity));
    BOOST_CHECK_EQUAL(queryInterface<Probe>(identity)->threadId(), serverThread);
    // The identity of a proxy goes onward naming the original object.
    ObjRefBytes out = marshalInterface(identity.get(), Interface::iid);
    BOOST_CHECK(decodeObjRef(out).oid == info.oid);
    BOOST_CHECK(decodeObjRef(out).oxid == info.oxid);
    return out;
  });
  third.invoke([&] {
    Ref<Probe> probe = unmarshalInterface<Probe>(onward);  // an identity packet, asked as Probe
    BOOST_CHECK_EQUAL(probe->threadId(), serverThread);
  });
  // In the object's own apartment an identity packet gives the object itself.
  w.server.invoke([&] {
    ObjRefBytes home = marshalInterface(object.get(), Interface::iid);
    Ref<Interface> same = unmarshalInterface<Interface>(home);
    BOOST_CHECK(same.get() == identityOf(object.get()).get());
    BOOST_CHECK(!isProxy(same));
  });
  BOOST_CHECK(eventually([&] { return exportedIn(w.server) == 0; }));
  w.server.invoke([&] { object.reset(); });
}

BOOST_AUTO_TEST_CASE(external_references_and_decode_objref_report_what_the_exporter_holds) {
  World w(rt());
  Ref<Probe> object;
  ObjRefBytes weak;
  ObjRefBytes strong = w.server.invoke([&] {
    object = make<ProbeImpl>();
    ExternalReferences none = externalReferences(object.get());
    BOOST_CHECK(!none.stubManager && none.strong == 0 && none.weak == 0);
    weak = marshalInterface(object, MarshalContext::inproc, MarshalFlags::tableWeak);
    return marshalInterface(object, MarshalContext::local,
                            MarshalFlags::tableStrong | MarshalFlags::noPing);
  });
  w.server.invoke([&] {
    ExternalReferences refs = externalReferences(object.get());
    BOOST_CHECK(refs.stubManager);
    BOOST_CHECK_EQUAL(refs.strong, 1u);
    BOOST_CHECK_EQUAL(refs.weak, 1u);
  });
  ObjRefInfo info = decodeObjRef(strong);
  BOOST_CHECK(info.iid == Probe::iid);
  BOOST_CHECK(info.oxid == w.server.oxid());
  BOOST_CHECK(info.flags == (MarshalFlags::tableStrong | MarshalFlags::noPing));
  BOOST_CHECK_EQUAL(toString(info.flags), "tableStrong noPing");
  BOOST_CHECK_EQUAL(info.publicRefs, 0u);
  BOOST_CHECK_NE(info.packetId, 0u);
  BOOST_CHECK_EQUAL(info.processId, detail::decodeObjRef(strong).processId);
  BOOST_CHECK(decodeObjRef(weak).oid == info.oid);
  FERRY_CHECK_ERRC(decodeObjRef(std::span<const uint8_t>(strong.data(), 8)), Errc::invalidObjRef);
  w.client.invoke([&] {
    Ref<Probe> proxy = unmarshalInterface<Probe>(strong);
    BOOST_CHECK(isProxy(proxy));
    BOOST_CHECK(isProxy(identityOf(proxy.get())));
    FERRY_CHECK_ERRC(externalReferences(proxy.get()), Errc::invalidArgument);
  });
  BOOST_CHECK(!isProxy(object));
  w.server.invoke([&] {
    releaseMarshalData(strong);
    releaseMarshalData(weak);
  });
  // The proxy's references travel back asynchronously.
  BOOST_CHECK(eventually([&] {
    return !w.server.invoke([&] { return externalReferences(object.get()).stubManager; });
  }));
  w.server.invoke([&] { object.reset(); });
}

BOOST_AUTO_TEST_CASE(marshaling_an_interface_the_object_lacks_fails_with_no_interface) {
  World w(rt());
  w.server.invoke([&] {
    Ref<Probe> object = make<ProbeImpl>();
    FERRY_CHECK_ERRC(marshalInterface(object.get(), Callback::iid), Errc::noInterface);
    FERRY_CHECK_ERRC(marshalInterface(object.get(), Iid(0x8000000000000001ull)), Errc::noInterface);
    FERRY_CHECK_ERRC(marshalInterface(object.get(), Probe::iid, MarshalContext::inproc,
                                      MarshalFlags::tableStrong | MarshalFlags::tableWeak),
                     Errc::invalidArgument);
    BOOST_CHECK_EQUAL(w.server.impl()->exports().size(), 0u);
  });
}

namespace {

// Marshals by value: the importer gets its own Callback holding the same recorded values.
class ValueCallback final : public Implements<Callback>, public CustomMarshaler {
public:
  explicit ValueCallback(std::vector<int64_t> values) : values(std::move(values)) {}
  uint64_t called(int64_t value) override {
    values.push_back(value);
    return threadHash();
  }
  std::optional<Packet> marshalCustom(Iid, MarshalContext, MarshalFlags) override {
    Packet packet{"test.ValueCallback", {}, true};
    for (int64_t v : values) packet.data.push_back(static_cast<uint8_t>(v));
    return packet;
  }
  static Ref<Interface> unmarshal(std::span<const uint8_t> data) {
    return Ref<Interface>(make<ValueCallback>(std::vector<int64_t>(data.begin(), data.end())));
  }
  std::vector<int64_t> values;
};

// A custom reference: the packet names an entry of a process-wide directory.
class DirectoryEntry final : public Implements<Callback>, public CustomMarshaler {
public:
  uint64_t called(int64_t) override { return 0; }
  std::optional<Packet> marshalCustom(Iid, MarshalContext, MarshalFlags) override {
    return Packet{"test.Directory", {7}, false};
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(an_object_may_marshal_itself_by_value_or_by_a_custom_reference) {
  World w(rt());
  rt().registerUnmarshaler("test.ValueCallback", &ValueCallback::unmarshal);
  auto directory = std::make_shared<std::vector<Ref<Interface>>>();
  auto released = std::make_shared<int>(0);
  rt().registerUnmarshaler(
      "test.Directory",
      [directory](std::span<const uint8_t> data) { return directory->at(data[0] - 7); },
      [released](std::span<const uint8_t>) { ++*released; });

  ObjRefBytes byValue = w.server.invoke([] {
    return marshalInterface(Ref<Callback>(make<ValueCallback>(std::vector<int64_t>{1, 2, 3})));
  });
  BOOST_CHECK(detail::decodeObjRef(byValue).kind == detail::ObjRefData::Kind::byValue);
  BOOST_CHECK_EQUAL(exportedIn(w.server), 0u);  // nothing exported: no reference remains
  w.client.invoke([&] {
    Ref<Callback> copy = unmarshalInterface<Callback>(byValue);
    BOOST_CHECK(!isProxy(copy.get()));
    BOOST_CHECK_EQUAL(copy->called(4), threadHash());  // a local object of the client
    auto* local = dynamic_cast<ValueCallback*>(copy.get());
    BOOST_REQUIRE(local != nullptr);
    BOOST_CHECK((local->values == std::vector<int64_t>{1, 2, 3, 4}));
    FERRY_CHECK_ERRC(unmarshalInterface<Probe>(byValue), Errc::noInterface);
  });

  directory->push_back(Ref<Interface>(make<DirectoryEntry>()));
  ObjRefBytes custom = w.server.invoke([&] {
    return marshalInterface(Ref<Callback>(make<DirectoryEntry>()));
  });
  w.client.invoke([&] {
    Ref<Callback> entry = unmarshalInterface<Callback>(custom);
    BOOST_CHECK(static_cast<Interface*>(entry.get()) == directory->front().get());
    releaseMarshalData(custom);
    BOOST_CHECK_EQUAL(*released, 1);
    // A class nobody registered: a clear error.
    detail::ObjRefData unknown = detail::decodeObjRef(custom);
    unknown.unmarshalerClass = "test.Nobody";
    FERRY_CHECK_ERRC(unmarshalInterface<Callback>(detail::encodeObjRef(unknown)),
                     Errc::classNotRegistered);
  });
  directory->clear();
}

BOOST_AUTO_TEST_CASE(objref_text_round_trips_and_refuses_what_is_not_hex) {
  ObjRefBytes bytes{0x00, 0x7f, 0x80, 0xff, 0x1a};
  BOOST_CHECK_EQUAL(objRefToText(bytes), "007f80ff1a");
  BOOST_CHECK(objRefFromText("007F80ff1A") == bytes);
  FERRY_CHECK_ERRC(objRefFromText("abc"), Errc::invalidObjRef);
  FERRY_CHECK_ERRC(objRefFromText("zz"), Errc::invalidObjRef);
  BOOST_CHECK(objRefFromText("").empty());
}

BOOST_AUTO_TEST_CASE(objref_bytes_round_trip) {
  detail::ObjRefData data;
  data.iid = Probe::iid;
  data.kind = detail::ObjRefData::Kind::standard;
  data.oxid = newOxid();
  data.oid = newOid();
  data.ipid = newIpid();
  data.publicRefs = 5;
  data.packetId = 77;
  data.processId = 1234;
  data.hostId[3] = 9;
  data.noPing = true;
  data.bindings.push_back({"tcp", "192.0.2.7", "7135"});
  data.securityBindings.push_back({"psk", "server"});
  detail::ObjRefData back = detail::decodeObjRef(detail::encodeObjRef(data));
  BOOST_CHECK(back.iid == data.iid);
  BOOST_CHECK(back.oxid == data.oxid && back.oid == data.oid && back.ipid == data.ipid);
  BOOST_CHECK_EQUAL(back.publicRefs, 5u);
  BOOST_CHECK_EQUAL(back.packetId, 77u);
  BOOST_CHECK(back.noPing);
  BOOST_CHECK(back.hostId == data.hostId);
  BOOST_CHECK(back.bindings == data.bindings);
  BOOST_CHECK(back.securityBindings == data.securityBindings);
}

BOOST_AUTO_TEST_CASE(malformed_objrefs_fail_with_invalid_objref_and_change_nothing) {
  World w(rt());
  Ref<Probe> object;
  ObjRefBytes packet = w.exportWatched(object);
  auto before = exportCounts(w.server, object.get());
  const detail::ObjRefData original = detail::decodeObjRef(packet);
  std::mt19937 random(20261121);
  int rejected = 0;
  w.client.invoke([&] {
    // Every truncation of a valid packet.
    for (size_t n = 0; n < packet.size(); ++n) {
      std::span<const uint8_t> cut(packet.data(), n);
      try {
        unmarshalInterface<Probe>(cut);
        BOOST_ERROR("a truncated OBJREF of " << n << " bytes was accepted");
      } catch (const Error& e) {
        BOOST_CHECK(e.code() == Errc::invalidObjRef);
        ++rejected;
      }
    }
    // Random bytes, and random corruption of the valid packet.
    for (int i = 0; i < 2000; ++i) {
      std::vector<uint8_t> bytes;
      if (i % 2 == 0) {
        bytes.resize(8 * (1 + random() % 40));
        for (auto& b : bytes) b = static_cast<uint8_t>(random());
      } else {
        bytes = packet;
        for (int flips = 0; flips < 3; ++flips) bytes[random() % bytes.size()] ^= 1u << (random() % 8);
        // Flips in padding leave the same OBJREF: that is the packet itself, not a corruption.
        try {
          if (detail::decodeObjRef(bytes) == original) continue;
        } catch (const Error&) {
        }
      }
      try {
        Ref<Probe> p = unmarshalInterface<Probe>(bytes);
        BOOST_ERROR("a corrupted OBJREF was accepted at iteration " << i);
      } catch (const Error& e) {
        BOOST_CHECK(e.code() == Errc::invalidObjRef || e.code() == Errc::objectNotConnected ||
                    e.code() == Errc::unavailable || e.code() == Errc::disconnected ||
                    e.code() == Errc::noInterface || e.code() == Errc::objectNotRegistered);
      }
    }
  });
  BOOST_CHECK_EQUAL(rejected, static_cast<int>(packet.size()));
  // The exporter's counts are exactly as before, and the real packet still works once.
  BOOST_CHECK(exportCounts(w.server, object.get()) == before);
  w.client.invoke([&] { BOOST_CHECK_NO_THROW(unmarshalInterface<Probe>(packet)->nothing()); });
  w.server.invoke([&] { object.reset(); });
}

BOOST_AUTO_TEST_SUITE_END()
