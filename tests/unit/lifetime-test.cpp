// Object lifetime across apartments: reference economics, proxies marshaled onward, identity,
// disconnect, external locks and their hook, the GIT, apartment teardown, the message filter.
#define BOOST_TEST_MODULE lifetime
#include <boost/test/unit_test.hpp>

#include <ferry/generated.h>

#include "everything.ferry.h"
#include "servants.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Callback;
using testing::iface::Holder;
using testing::iface::Probe;

namespace {

class GadgetImpl final : public Implements<idltest::iface::Gadget> {
public:
  std::string name() override { return "gadget"; }
  int64_t increment(int64_t by) override { return _count += by; }
  bool toggle() override { return _on = !_on; }
  void reset() override { _count = 0; }

private:
  int64_t _count = 0;
  bool _on = false;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(lifetime, RuntimeFixture)

// ---- reference economics -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(local_reference_counting_on_a_proxy_never_goes_on_the_wire) {
  Sta server = rt().newSta("server");
  Sta client = rt().newSta("client");
  auto log = std::make_shared<WatchedProbe::Log>();
  Ref<Probe> object;
  ObjRefBytes packet = server.invoke([&] {
    object = make<WatchedProbe>(log);
    return marshalInterface(object);
  });
  client.invoke([&] {
    Ref<Probe> proxy = unmarshalInterface<Probe>(packet);
    BOOST_CHECK(exportCounts(server, object.get()).first == 5u);
    {
      std::vector<Ref<Probe>> copies(100, proxy);  // 100 local addRefs, then 100 releases
    }
    // Nothing went to the exporter: it still holds the packet's five references.
    BOOST_CHECK(exportCounts(server, object.get()).first == 5u);
    proxy.reset();  // the last release: the five references go back, batched
  });
  BOOST_CHECK(eventually([&] { return exportCounts(server, object.get()).first == 0; }));
  BOOST_CHECK_EQUAL(log->connects.load(), 1);
  BOOST_CHECK_EQUAL(log->disconnects.load(), 1);
  server.invoke([&] { object.reset(); });
  BOOST_CHECK(!log->alive);
}

BOOST_AUTO_TEST_CASE(marshaling_a_proxy_onward_hands_on_half_its_references_and_names_the_original) {
  Sta server = rt().newSta("server");
  Sta a = rt().newSta("a");
  Sta b = rt().newSta("b");
  Ref<Probe> object;
  ObjRefBytes first = server.invoke([&] {
    object = make<ProbeImpl>();
    return marshalInterface(object);
  });
  Oxid serverOxid = server.oxid();
  a.invoke([&] {
    Ref<Probe> proxy = unmarshalInterface<Probe>(first);
    // a holds 5; marshaling hands on 2 (half), keeps 3; again: 1 handed on, 2 kept; again: 1.
    std::vector<ObjRefBytes> onward;
    std::vector<uint32_t> handed;
    for (int i = 0; i < 4; ++i) {
      onward.push_back(marshalInterface(proxy));
      detail::ObjRefData d = detail::decodeObjRef(onward.back());
      BOOST_CHECK(d.oxid == serverOxid);  // names the original exporter, not this apartment
      handed.push_back(d.publicRefs);
    }
    BOOST_CHECK((handed == std::vector<uint32_t>{2, 1, 1, 3}));  // the 4th topped up with +5 first
    // The exporter saw one top-up (5) beyond the first packet.
    BOOST_CHECK_EQUAL(exportCounts(server, object.get()).first, 10u);
    b.invoke([&] {
      for (auto& packet : onward) {
        Ref<Probe> p = unmarshalInterface<Probe>(packet);
        BOOST_CHECK_EQUAL(p->threadId(), server.invoke([] { return threadHash(); }));
      }
    });
  });
  // Every reference found its way home.
  BOOST_CHECK(eventually([&] { return exportCounts(server, object.get()).first == 0; }));
  server.invoke([&] { object.reset(); });
}

BOOST_AUTO_TEST_CASE(releasing_in_either_order_returns_every_reference) {
  for (int order = 0; order < 2; ++order) {
    Sta server = rt().newSta("server");
    Sta client = rt().newSta("client");
    Ref<Probe> object;
    auto packets = server.invoke([&] {
      object = make<ProbeImpl>();
      return std::make_pair(marshalInterface(object), marshalInterface(object));
    });
    client.invoke([&] {
      Ref<Probe> p1 = unmarshalInterface<Probe>(packets.first);
      Ref<Probe> p2 = unmarshalInterface<Probe>(packets.second);
      BOOST_CHECK(p1.get() == p2.get());  // one interface proxy holding 10
      BOOST_CHECK_EQUAL(exportCounts(server, object.get()).first, 10u);
      if (order == 0) {
        p1.reset();
        p2.reset();
      } else {
        p2.reset();
        p1.reset();
      }
    });
    BOOST_CHECK(eventually([&] { return exportCounts(server, object.get()).first == 0; }));
    server.invoke([&] { object.reset(); });
  }
}

// ---- every flag x importer x release order ----------------------------------------------------

namespace {

struct State {
  size_t stubs;     // stub managers in the exporter
  uint32_t strong;  // strong external references
  uint32_t weak;    // weak table entries
  bool alive;
  friend bool operator==(const State&, const State&) = default;
  friend std::ostream& operator<<(std::ostream& out, const State& s) {
    return out << "{stubs " << s.stubs << ", strong " << s.strong << ", weak " << s.weak
               << (s.alive ? ", alive}" : ", dead}");
  }
};

struct Scenario {
  const char* name;
  MarshalFlags flags;
  bool sameApartment;
  bool releasePacketFirst;
  State afterMarshal, afterUnmarshal, afterFirstStep, afterSecondStep;
  // releaseMarshalData fails (the packet was consumed) in this scenario.
  bool releaseFails;
};

// COM's semantics ([MS-DCOM] 3.2.4.x; Win32 MSHLFLAGS; Wine's marshal tests), the local reference
// dropped right after marshaling so the exporter alone decides whether the object lives.
const Scenario kScenarios[] = {
    {"normal/other/packet-first", MarshalFlags::normal, false, true,
     {1, 5, 0, true}, {1, 5, 0, true}, {1, 5, 0, true}, {0, 0, 0, false}, true},
    {"normal/other/proxy-first", MarshalFlags::normal, false, false,
     {1, 5, 0, true}, {1, 5, 0, true}, {0, 0, 0, false}, {0, 0, 0, false}, true},
    {"normal/same/packet-first", MarshalFlags::normal, true, true,
     {1, 5, 0, true}, {0, 0, 0, true}, {0, 0, 0, true}, {0, 0, 0, false}, true},
    {"normal/same/object-first", MarshalFlags::normal, true, false,
     {1, 5, 0, true}, {0, 0, 0, true}, {0, 0, 0, false}, {0, 0, 0, false}, true},
    {"tableStrong/other/packet-first", MarshalFlags::tableStrong, false, true,
     {1, 1, 0, true}, {1, 6, 0, true}, {1, 5, 0, true}, {0, 0, 0, false}, false},
    {"tableStrong/other/proxy-first", MarshalFlags::tableStrong, false, false,
     {1, 1, 0, true}, {1, 6, 0, true}, {1, 1, 0, true}, {0, 0, 0, false}, false},
    {"tableStrong/same/packet-first", MarshalFlags::tableStrong, true, true,
     {1, 1, 0, true}, {1, 1, 0, true}, {0, 0, 0, true}, {0, 0, 0, false}, false},
    {"tableStrong/same/object-first", MarshalFlags::tableStrong, true, false,
     {1, 1, 0, true}, {1, 1, 0, true}, {1, 1, 0, true}, {0, 0, 0, false}, false},
    {"tableWeak/other/packet-first", MarshalFlags::tableWeak, false, true,
     {1, 0, 1, true}, {1, 5, 1, true}, {1, 5, 0, true}, {0, 0, 0, false}, false},
    // WatchedProbe has the ExternalConnection hook: the weak entry keeps its stub manager.
    {"tableWeak/other/proxy-first", MarshalFlags::tableWeak, false, false,
     {1, 0, 1, true}, {1, 5, 1, true}, {1, 0, 1, true}, {0, 0, 0, false}, false},
    {"tableWeak/same/packet-first", MarshalFlags::tableWeak, true, true,
     {1, 0, 1, true}, {1, 0, 1, true}, {0, 0, 0, true}, {0, 0, 0, false}, false},
    {"tableWeak/same/object-first", MarshalFlags::tableWeak, true, false,
     {1, 0, 1, true}, {1, 0, 1, true}, {1, 0, 1, true}, {0, 0, 0, false}, false},
};

}  // namespace

BOOST_AUTO_TEST_CASE(every_flag_importer_and_release_order_keeps_com_reference_semantics) {
  for (const Scenario& sc : kScenarios) {
    BOOST_TEST_CONTEXT("scenario " << sc.name) {
      Sta server = rt().newSta("server");
      Sta other = rt().newSta("other");
      const Apartment& importer = sc.sameApartment ? static_cast<const Apartment&>(server) : other;
      auto log = std::make_shared<WatchedProbe::Log>();
      Oid oid;  // the object's, from its packet: the object itself may be gone
      auto state = [&] {
        return server.invoke([&] {
          auto counts = server.impl()->exports().refCounts(oid);
          return State{server.impl()->exports().size(), counts.first, counts.second,
                       log->alive.load()};
        });
      };
      // Releases travel asynchronously: a state is reached when it holds.
      auto reaches = [&](const State& want) {
        bool ok = eventually([&] { return state() == want; }, std::chrono::seconds(5));
        if (!ok) BOOST_TEST_MESSAGE("state is " << state() << ", expected " << want);
        return ok;
      };

      ObjRefBytes packet = server.invoke([&] {
        Ref<Probe> object = make<WatchedProbe>(log);
        return marshalInterface(object, MarshalContext::inproc, sc.flags);
      });  // the local reference is gone
      oid = detail::decodeObjRef(packet).oid;
      BOOST_CHECK(reaches(sc.afterMarshal));

      Ref<Probe> held = importer.invoke([&] { return unmarshalInterface<Probe>(packet); });
      BOOST_CHECK_EQUAL(isProxy(held.get()), !sc.sameApartment);
      BOOST_CHECK(reaches(sc.afterUnmarshal));

      auto releasePacket = [&] {
        importer.invoke([&] {
          if (sc.releaseFails) {
            FERRY_CHECK_ERRC(releaseMarshalData(packet), Errc::objectNotConnected);
          } else {
            BOOST_CHECK_NO_THROW(releaseMarshalData(packet));
          }
        });
      };
      auto dropHeld = [&] { importer.invoke([&] { held.reset(); }); };
      if (sc.releasePacketFirst) {
        releasePacket();
        BOOST_CHECK(reaches(sc.afterFirstStep));
        dropHeld();
      } else {
        dropHeld();
        BOOST_CHECK(reaches(sc.afterFirstStep));
        releasePacket();
      }
      BOOST_CHECK(reaches(sc.afterSecondStep));
    }
  }
}

// ---- identity --------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_identity_compares_equal_across_all_interfaces_of_one_object) {
  Sta server = rt().newSta("server");
  auto mta = rt().joinMta();
  Ref<idltest::iface::Gadget> gadget = exportFrom<idltest::iface::Gadget, GadgetImpl>(server);
  auto [counter, toggle, missing] =
      queryInterfaces<idltest::iface::Counter, idltest::iface::Switch, Probe>(gadget);
  BOOST_REQUIRE(counter && toggle);
  BOOST_CHECK(!missing);
  BOOST_CHECK(sameObject(counter, toggle));
  BOOST_CHECK(sameObject(counter, gadget));
  BOOST_CHECK(identityOf(counter.get()) == identityOf(gadget.get()));
  // Already held: answered locally, the same interface proxy again.
  Ref<idltest::iface::Counter> again = queryInterface<idltest::iface::Counter>(toggle);
  BOOST_CHECK(again.get() == counter.get());
  BOOST_CHECK_EQUAL(Runtime::stats().proxyManagers, 1);
  FERRY_CHECK_ERRC(queryInterface<Probe>(gadget), Errc::noInterface);
}

BOOST_AUTO_TEST_CASE(marshaling_a_proxy_as_an_interface_it_does_not_hold_asks_the_exporter_first) {
  Sta server = rt().newSta("server");
  Sta other = rt().newSta("other");
  auto mta = rt().joinMta();
  Ref<idltest::iface::Gadget> gadget = exportFrom<idltest::iface::Gadget, GadgetImpl>(server);
  BOOST_CHECK_EQUAL(Runtime::stats().interfaceProxies, 1);
  ObjRefBytes asNamed = marshalInterface(gadget.get(), idltest::iface::Named::iid);
  detail::ObjRefData d = detail::decodeObjRef(asNamed);
  BOOST_CHECK(d.iid == idltest::iface::Named::iid);
  BOOST_CHECK(d.oxid == server.oxid());
  BOOST_CHECK(d.ipid != detail::asProxy(gadget.get())->ipid());  // the exporter's Named stub
  other.invoke([&] {
    auto named = unmarshalInterface<idltest::iface::Named>(asNamed);
    BOOST_CHECK_EQUAL(named->name(), "gadget");
  });
  // The temporary Named proxy went once the packet had its references.
  BOOST_CHECK_EQUAL(Runtime::stats().interfaceProxies, 1);
}

// ---- disconnect and external locks -----------------------------------------------------------

BOOST_AUTO_TEST_CASE(disconnect_lets_running_calls_finish_and_fails_new_ones) {
  Sta server = rt().newSta("server");
  Sta caller = rt().newSta("caller");
  auto log = std::make_shared<WatchedProbe::Log>();
  Ref<Probe> object;
  ObjRefBytes packet = server.invoke([&] {
    object = make<WatchedProbe>(log);
    return marshalInterface(object);
  });
  auto mta = rt().joinMta();
  Ref<Probe> proxy = unmarshalInterface<Probe>(packet);
  auto slow = proxy->sleepMillisAsync(300);
  BOOST_REQUIRE(eventually([&] { return log->running.load() == 1; }));
  // The STA is busy in the call; the disconnect is queued behind it and runs right after.
  server.post([&] { disconnectObject(object.get()); });
  BOOST_CHECK_NO_THROW(slow.get());  // the running call finished normally
  BOOST_CHECK(eventually([&] { return exportedIn(server) == 0; }));
  FERRY_CHECK_ERRC(proxy->nothing(), Errc::disconnected);
  BOOST_CHECK_EQUAL(log->disconnects.load(), 0);  // disconnect does not tell the hook
  BOOST_CHECK(log->alive);                        // the server's own reference remains
  proxy.reset();
  server.invoke([&] { object.reset(); });
  BOOST_CHECK(!log->alive);
}

BOOST_AUTO_TEST_CASE(lock_object_external_keeps_a_strong_reference_and_tells_the_hook) {
  Sta server = rt().newSta("server");
  auto log = std::make_shared<WatchedProbe::Log>();
  ObjRefBytes weak;
  Ref<Probe> object;
  server.invoke([&] {
    object = make<WatchedProbe>(log);
    lockObjectExternal(object.get(), true);
    BOOST_CHECK_EQUAL(log->connects.load(), 1);
    weak = marshalInterface(object, MarshalContext::inproc, MarshalFlags::tableWeak);
    lockObjectExternal(object.get(), true);
    BOOST_CHECK_EQUAL(log->connects.load(), 1);  // only the first strong reference
    lockObjectExternal(object.get(), false);
    BOOST_CHECK_EQUAL(log->disconnects.load(), 0);
    lockObjectExternal(object.get(), false, false);
    BOOST_CHECK_EQUAL(log->disconnects.load(), 1);
    BOOST_CHECK(!log->lastCloses);  // passed through from the unlock
    // The weak table entry never counted, and kept the stub manager through the unlock.
    BOOST_CHECK_EQUAL(server.impl()->exports().size(), 1u);
  });
  server.invoke([&] {
    releaseMarshalData(weak);
    object.reset();
  });
  BOOST_CHECK(!log->alive);
}

BOOST_AUTO_TEST_CASE(the_last_unlock_without_closing_releases_the_stub_manager_when_nothing_else_holds_it) {
  Sta server = rt().newSta("server");
  auto log = std::make_shared<WatchedProbe::Log>();
  server.invoke([&] {
    Ref<Probe> object = make<WatchedProbe>(log);
    lockObjectExternal(object.get(), true);
    BOOST_CHECK(externalReferences(object.get()).stubManager);
    lockObjectExternal(object.get(), false, false);
    BOOST_CHECK_EQUAL(log->disconnects.load(), 1);
    BOOST_CHECK(!log->lastCloses);
    // COM's: with no other connection and no weak entry, the stub manager goes.
    ExternalReferences refs = externalReferences(object.get());
    BOOST_CHECK(!refs.stubManager);
    BOOST_CHECK_EQUAL(server.impl()->exports().size(), 0u);
    FERRY_CHECK_ERRC(lockObjectExternal(object.get(), false), Errc::invalidArgument);
  });
  BOOST_CHECK(!log->alive);
}

// ---- the Global Interface Table --------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_git_serves_three_apartments) {
  Sta home = rt().newSta("home");
  Sta other = rt().newSta("other");
  auto log = std::make_shared<WatchedProbe::Log>();
  GlobalInterfaceTable& git = rt().git();
  Ref<Probe> object;
  GlobalInterfaceTable::Cookie cookie = home.invoke([&] {
    object = make<WatchedProbe>(log);
    return git.registerInterface(object);
  });
  object.reset();  // only the GIT keeps it now (the Ref was released here, not in `home`: fine)
  uint64_t homeThread = home.invoke([] { return threadHash(); });
  home.invoke([&] {
    Ref<Probe> p = git.get<Probe>(cookie);
    BOOST_CHECK(detail::asProxy(p.get()) == nullptr);  // the real object at home
  });
  other.invoke([&] {
    for (int i = 0; i < 3; ++i) {
      Ref<Probe> p = git.get<Probe>(cookie);
      BOOST_CHECK(detail::asProxy(p.get()) != nullptr);
      BOOST_CHECK_EQUAL(p->threadId(), homeThread);
    }
  });
  {
    auto mta = rt().joinMta();
    BOOST_CHECK_EQUAL(git.get<Probe>(cookie)->threadId(), homeThread);
    FERRY_CHECK_ERRC(git.get<Callback>(cookie), Errc::noInterface);
    FERRY_CHECK_ERRC(git.get<Probe>(cookie + 1), Errc::invalidArgument);
  }
  BOOST_CHECK(log->alive);
  other.invoke([&] { git.revoke(cookie); });  // revoke from another apartment
  BOOST_CHECK(eventually([&] { return !log->alive; }));
  other.invoke([&] { FERRY_CHECK_ERRC(git.revoke(cookie), Errc::invalidArgument); });
  BOOST_CHECK_EQUAL(git.size(), 0u);
}

BOOST_AUTO_TEST_CASE(the_git_registers_proxies_too) {
  Sta server = rt().newSta("server");
  Sta registrar = rt().newSta("registrar");
  Sta user = rt().newSta("user");
  GlobalInterfaceTable& git = rt().git();
  uint64_t serverThread = server.invoke([] { return threadHash(); });
  GlobalInterfaceTable::Cookie cookie = registrar.invoke([&] {
    Ref<Probe> proxy = exportFrom<Probe, ProbeImpl>(server);
    return git.registerInterface(proxy);
  });
  user.invoke([&] { BOOST_CHECK_EQUAL(git.get<Probe>(cookie)->threadId(), serverThread); });
  server.invoke([&] { BOOST_CHECK(detail::asProxy(git.get<Probe>(cookie).get()) == nullptr); });
  registrar.invoke([&] { git.revoke(cookie); });
  BOOST_CHECK(eventually([&] { return exportedIn(server) == 0; }));
}

// ---- apartment teardown -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_server_apartment_teardown_releases_its_objects_and_fails_later_calls) {
  auto log = std::make_shared<WatchedProbe::Log>();
  auto mta = rt().joinMta();
  Ref<Probe> proxy;
  {
    Sta server = rt().newSta("server");
    proxy = exportFrom<Probe, WatchedProbe>(server, log);
    BOOST_CHECK(log->alive);
  }  // the STA stops: its exports are released
  BOOST_CHECK(!log->alive);
  FERRY_CHECK_ERRC(proxy->nothing(), Errc::disconnected);
}

BOOST_AUTO_TEST_CASE(a_client_apartment_teardown_returns_references_at_once) {
  Sta server = rt().newSta("server");
  auto log = std::make_shared<WatchedProbe::Log>();
  Ref<Probe> leftover;
  Ref<Probe> object;
  ObjRefBytes packet = server.invoke([&] {
    object = make<WatchedProbe>(log);
    return marshalInterface(object);
  });
  {
    Sta client = rt().newSta("client");
    leftover = client.invoke([&] { return unmarshalInterface<Probe>(packet); });
    BOOST_CHECK_EQUAL(exportCounts(server, object.get()).first, 5u);
  }  // the client STA is gone; its proxy is still referenced from here
  BOOST_CHECK(eventually([&] { return exportCounts(server, object.get()).first == 0; }));
  {
    auto mta = rt().joinMta();
    FERRY_CHECK_ERRC(leftover->nothing(), Errc::objectNotConnected);
  }
  FERRY_CHECK_ERRC(leftover->nothing(), Errc::objectNotConnected);  // from no apartment too
  leftover.reset();  // its final release sends nothing more
  server.invoke([&] { object.reset(); });
  BOOST_CHECK(!log->alive);
}

BOOST_AUTO_TEST_CASE(an_apartment_teardown_tells_the_hook_its_connections_went) {
  auto log = std::make_shared<WatchedProbe::Log>();
  auto quiet = std::make_shared<WatchedProbe::Log>();
  ObjRefBytes packet;
  {
    Sta server = rt().newSta("server");
    server.invoke([&] {
      packet = marshalInterface(Ref<Probe>(make<WatchedProbe>(log)), MarshalContext::inproc,
                                MarshalFlags::tableStrong);
      // Only a weak entry: no connection, so nothing to tell.
      marshalInterface(Ref<Probe>(make<WatchedProbe>(quiet)), MarshalContext::inproc,
                       MarshalFlags::tableWeak);
    });
    BOOST_CHECK_EQUAL(log->connects.load(), 1);
    BOOST_CHECK_EQUAL(log->disconnects.load(), 0);
  }  // torn down with the table entry outstanding
  BOOST_CHECK_EQUAL(log->disconnects.load(), 1);
  BOOST_CHECK(!log->lastCloses);  // told, not asked to close
  BOOST_CHECK(!log->alive);
  BOOST_CHECK_EQUAL(quiet->disconnects.load(), 0);
  BOOST_CHECK(!quiet->alive);
}

BOOST_AUTO_TEST_CASE(a_proxy_left_on_the_thread_that_was_its_sta_fails_with_object_not_connected) {
  Sta server = rt().newSta("server");
  ObjRefBytes packet = server.invoke([] { return marshalInterface(Ref<Probe>(make<ProbeImpl>())); });
  std::optional<Errc> call;
  std::optional<Errc> query;
  std::thread thread([&] {
    Ref<Probe> leftover;
    {
      CurrentSta sta = rt().enterSta("client");
      leftover = unmarshalInterface<Probe>(packet);
      leftover->nothing();
    }  // the STA is left: its proxies are disconnected
    try {
      leftover->nothing();
    } catch (const Error& e) {
      call = e.code();
    }
    try {
      tryQueryInterface<Callback>(leftover);
    } catch (const Error& e) {
      query = e.code();
    }
  });
  thread.join();
  BOOST_CHECK(call == Errc::objectNotConnected);
  BOOST_CHECK(query == Errc::objectNotConnected);
  BOOST_CHECK(eventually([&] { return exportedIn(server) == 0; }));
}

BOOST_AUTO_TEST_CASE(a_query_from_a_thread_in_no_apartment_fails_with_wrong_apartment_like_a_call) {
  Sta server = rt().newSta("server");
  Sta client = rt().newSta("client");
  Ref<Probe> proxy = client.invoke([&] { return exportFrom<Probe, ProbeImpl>(server); });
  // This thread is in no apartment.
  FERRY_CHECK_ERRC(proxy->nothing(), Errc::wrongApartment);
  FERRY_CHECK_ERRC(tryQueryInterface<Callback>(proxy), Errc::wrongApartment);
  // What the proxy already holds is answered locally, from anywhere (COM's).
  BOOST_CHECK(tryQueryInterface<Probe>(proxy).get() == proxy.get());
  BOOST_CHECK(identityOf(proxy.get()) != nullptr);
  BOOST_CHECK_NO_THROW(client.invoke([&] { proxy->nothing(); }));
  proxy.reset();
}

namespace {
// Calls the callback it holds from its destructor, and records how that went.
class CallingOnDestruction final : public Implements<Callback> {
public:
  CallingOnDestruction(Ref<Callback> target, std::shared_ptr<std::optional<Errc>> outcome)
      : _target(std::move(target)), _outcome(std::move(outcome)) {}
  ~CallingOnDestruction() override {
    try {
      _target->called(1);
      *_outcome = Errc::ok;
    } catch (const Error& e) {
      *_outcome = e.code();
    }
  }
  uint64_t called(int64_t) override { return 0; }

private:
  Ref<Callback> _target;
  std::shared_ptr<std::optional<Errc>> _outcome;
};
}  // namespace

BOOST_AUTO_TEST_CASE(proxies_left_in_a_torn_down_apartment_fail_with_object_not_connected) {
  Sta target = rt().newSta("target");
  auto outcome = std::make_shared<std::optional<Errc>>();
  {
    Sta dying = rt().newSta("dying");
    dying.invoke([&] {
      Ref<Callback> proxy = exportFrom<Callback, CallbackImpl>(target);
      // Exported, so the apartment's teardown releases it after disconnecting its proxies.
      marshalInterface(Ref<Callback>(make<CallingOnDestruction>(proxy, outcome)),
                       MarshalContext::inproc, MarshalFlags::tableStrong);
    });
  }
  BOOST_REQUIRE(outcome->has_value());
  BOOST_CHECK(**outcome == Errc::objectNotConnected);
  BOOST_CHECK(eventually([&] { return exportedIn(target) == 0; }));
}

BOOST_AUTO_TEST_CASE(an_mta_teardown_with_proxies_alive_releases_everything) {
  auto log = std::make_shared<WatchedProbe::Log>();
  Sta client = rt().newSta("client");
  Ref<Probe> inMta = client.invoke([&] { return exportFrom<Probe, WatchedProbe>(rt().mta(), log); });
  BOOST_CHECK(log->alive);
  client.invoke([&] { inMta.reset(); });
  BOOST_CHECK(eventually([&] { return !log->alive; }));
}

// ---- the message filter -----------------------------------------------------------------------

namespace {

class ScriptedFilter final : public MessageFilter {
public:
  FilterVerdict handleIncomingCall(const IncomingCallInfo& call) override {
    std::lock_guard lock(mutex);
    seen.push_back(call.type);
    if (rejectNext > 0) {
      --rejectNext;
      return verdict;
    }
    return FilterVerdict::handle;
  }
  std::optional<std::chrono::milliseconds> retryRejectedCall(FilterVerdict, int attempt) override {
    attempts = attempt;
    if (attempt > maxRetries) return std::nullopt;
    return std::chrono::milliseconds(5);
  }

  std::mutex mutex;
  std::vector<CallType> seen;
  int rejectNext = 0;
  FilterVerdict verdict = FilterVerdict::reject;
  int maxRetries = 0;
  int attempts = 0;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_filter_rejects_or_defers_and_the_caller_sees_why) {
  Sta server = rt().newSta("server");
  auto filter = std::make_shared<ScriptedFilter>();
  server.invoke([&] { BOOST_CHECK(setMessageFilter(filter) == nullptr); });
  auto mta = rt().joinMta();
  Ref<Probe> proxy = exportFrom<Probe, ProbeImpl>(server);
  filter->rejectNext = 1;
  FERRY_CHECK_ERRC(proxy->nothing(), Errc::callRejected);
  filter->rejectNext = 1;
  filter->verdict = FilterVerdict::retryLater;
  FERRY_CHECK_ERRC(proxy->nothing(), Errc::retryLater);
  BOOST_CHECK_NO_THROW(proxy->nothing());
  FERRY_CHECK_ERRC(setMessageFilter(filter), Errc::invalidArgument);  // not in the MTA
  server.invoke([&] { BOOST_CHECK(setMessageFilter(nullptr) == filter); });
}

BOOST_AUTO_TEST_CASE(a_callers_filter_retries_a_rejected_call_until_it_is_served) {
  Sta server = rt().newSta("server");
  Sta client = rt().newSta("client");
  auto serverFilter = std::make_shared<ScriptedFilter>();
  auto clientFilter = std::make_shared<ScriptedFilter>();
  server.invoke([&] { setMessageFilter(serverFilter); });
  serverFilter->rejectNext = 3;
  serverFilter->verdict = FilterVerdict::retryLater;
  client.invoke([&] {
    setMessageFilter(clientFilter);
    clientFilter->maxRetries = 5;
    Ref<Holder> holder = exportFrom<Holder, HolderImpl>(server);
    // The call carries an interface parameter: rejected three times, it is resent each time.
    Ref<Callback> cb = make<CallbackImpl>();
    BOOST_CHECK_NO_THROW(holder->set(cb));
    BOOST_CHECK_EQUAL(clientFilter->attempts, 3);
    BOOST_CHECK(holder->isSameAs(cb));
    holder->set(nullptr);
    // Giving up: the caps of the rejected call are released, nothing stays exported here.
    serverFilter->rejectNext = 10;
    clientFilter->maxRetries = 1;
    FERRY_CHECK_ERRC(holder->set(cb), Errc::retryLater);
    BOOST_CHECK_EQUAL(client.impl()->exports().size(), 0u);
    setMessageFilter(nullptr);
  });
  server.invoke([&] { setMessageFilter(nullptr); });
}

BOOST_AUTO_TEST_CASE(the_filter_tells_nested_calls_from_unrelated_ones) {
  Sta a = rt().newSta("a");
  Sta b = rt().newSta("b");
  auto filter = std::make_shared<ScriptedFilter>();
  a.invoke([&] {
    setMessageFilter(filter);
    // a calls b's holder, which calls back into a: a nested call.
    Ref<Holder> holder = exportFrom<Holder, HolderImpl>(b);
    Ref<Callback> cb = make<CallbackImpl>();
    holder->set(cb);
    holder->callBack(1);
    holder->set(nullptr);
    setMessageFilter(nullptr);
  });
  {
    std::lock_guard lock(filter->mutex);
    BOOST_CHECK(std::find(filter->seen.begin(), filter->seen.end(), CallType::nested) !=
                filter->seen.end());
    // A top-level call into a (no outgoing call pending) is classified as such.
    filter->seen.clear();
  }
  a.invoke([&] { setMessageFilter(filter); });
  {
    auto mta = rt().joinMta();
    Ref<Probe> p = exportFrom<Probe, ProbeImpl>(a);
    p->nothing();
  }
  a.invoke([&] { setMessageFilter(nullptr); });
  std::lock_guard lock(filter->mutex);
  BOOST_CHECK(std::find(filter->seen.begin(), filter->seen.end(), CallType::topLevel) !=
              filter->seen.end());
}

BOOST_AUTO_TEST_SUITE_END()
