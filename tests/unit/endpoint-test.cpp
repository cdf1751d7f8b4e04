// The ORPC endpoint over an in-memory network (orpc/network.h): two endpoints of one runtime,
// a client's and a server's, joined by links whose frames the test can drop and which it can
// lose, with a clock of the test's own. No socket is involved: what is asserted is the
// protocol's behaviour — calls answered on their links, acknowledgements, a call whose response
// was lost run once and answered from the reply cache, expiry — seen through the reference
// counts a RemUnknown.addRefs changes. With a security level, the endpoints talk through bind
// layers (orpc/bind.h) with the test-only testkey provider, whose plugin path is the argument:
//   endpoint-test -- <ferry-security-testkey.so>
#define BOOST_TEST_MODULE endpoint
#include <boost/test/unit_test.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include <ferry/ferry.h>

#include "fixture.h"
#include "import-table.h"
#include "objref.h"
#include "orpc/bind.h"
#include "orpc/endpoint.h"
#include "orpc/frame.h"
#include "plugin-loader.h"
#include "runtime-impl.h"
#include "servants.h"
#include "stats.h"

using namespace ferry;
using namespace ferry::detail;
using namespace ferry::test;
using testing::iface::Probe;
using orpc::LinkEnd;
using orpc::LinkId;

namespace {

// The network thread both networks share: runs posted events in order, as the hub's loop does.
class Wire {
public:
  Wire() : _thread([this] { run(); }) {}
  ~Wire() { stop(); }

  void post(std::function<void()> task) {
    std::lock_guard lock(_mutex);
    FERRY_REQUIRE(!_stopping, Errc::shuttingDown, "the in-memory network stopped");
    _tasks.push_back(std::move(task));
    _cv.notify_one();
  }
  // Runs `task` on the network thread and waits for it.
  void run(std::function<void()> task) {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    post([&] {
      task();
      std::lock_guard lock(m);
      done = true;
      cv.notify_one();
    });
    std::unique_lock lock(m);
    BOOST_REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; }));
  }
  bool stopping() const {
    std::lock_guard lock(_mutex);
    return _stopping;
  }
  void stop() {
    {
      std::lock_guard lock(_mutex);
      if (_stopping) return;
      _stopping = true;
      _cv.notify_one();
    }
    _thread.join();
  }

private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(_mutex);
        _cv.wait(lock, [&] { return _stopping || !_tasks.empty(); });
        if (_tasks.empty()) return;
        task = std::move(_tasks.front());
        _tasks.pop_front();
      }
      task();
    }
  }

  mutable std::mutex _mutex;
  std::condition_variable _cv;
  std::deque<std::function<void()>> _tasks;
  bool _stopping = false;
  std::thread _thread;
};

// One side's view of the in-memory network. Links are made in pairs, one id on each side; a
// frame sent on one is received on the other unless the test's filter drops it.
class MemoryNetwork final : public orpc::Network {
public:
  MemoryNetwork(Wire& wire, std::string name) : _wire(wire), _name(std::move(name)) {}

  void join(MemoryNetwork& peer, orpc::LinkEvents& mine) {
    _peer = &peer;
    _events = &mine;
  }

  // Network thread: drops frames for which it returns true.
  std::function<bool(const std::vector<uint8_t>&)> dropIf;
  int linksMade = 0;

  // Network thread: the link ends with an error on both sides (a lost connection).
  void lose(LinkId link) {
    auto it = _links.find(link.conn);
    if (it == _links.end()) return;
    LinkId peerLink = it->second.peer;
    endHere(link, LinkEnd::lost, "the in-memory link was lost");
    _peer->endHere(peerLink, LinkEnd::lost, "the in-memory link was lost");
  }
  // Network thread: this side's link went silent (a udp session's idle timeout); the peer's
  // side is lost.
  void silence(LinkId link) {
    auto it = _links.find(link.conn);
    if (it == _links.end()) return;
    LinkId peerLink = it->second.peer;
    endHere(link, LinkEnd::silent, "the in-memory link went silent");
    _peer->endHere(peerLink, LinkEnd::lost, "the in-memory link was lost");
  }
  std::optional<LinkId> anyLink() const {
    if (_links.empty()) return std::nullopt;
    return LinkId{0, _links.begin()->first};
  }

  void post(std::function<void()> task) override { _wire.post(std::move(task)); }
  bool stopping() const noexcept override { return _wire.stopping(); }

  std::optional<LinkId> linkTo(const StringBindingData& binding, std::string* why) override {
    if (binding.protseq != "mem" || binding.endpoint != _peer->_name) {
      if (why != nullptr) *why = "no such in-memory peer";
      return std::nullopt;
    }
    std::string key = bindingText(binding);
    if (auto open = openLink(key)) return open;
    ++linksMade;
    LinkId mine{0, _nextId++};
    LinkId theirs{0, _peer->_nextId++};
    orpc::LinkInfo out;
    out.outbound = true;
    out.binding = binding;
    out.distance = MarshalContext::local;
    orpc::LinkInfo in;
    in.distance = MarshalContext::local;
    _links[mine.conn] = Link{theirs, out, key};
    _peer->_links[theirs.conn] = Link{mine, in, ""};
    {
      std::lock_guard lock(_openMutex);
      _open[key] = mine;
    }
    // Opened on both sides before any frame arrives: the wire runs tasks in order.
    _wire.post([this, mine, out] { _events->opened(mine, out); });
    _wire.post([peer = _peer, theirs, in] { peer->_events->opened(theirs, in); });
    return mine;
  }

  void send(LinkId link, std::vector<uint8_t> frame) override {
    auto it = _links.find(link.conn);
    if (it == _links.end()) return;
    if (dropIf && dropIf(frame)) return;
    LinkId to = it->second.peer;
    _wire.post([peer = _peer, to, frame = std::move(frame)] {
      if (peer->_links.count(to.conn) != 0) peer->_events->received(to, frame.data(), frame.size());
    });
  }

  void reject(LinkId link, const std::string& why) override {
    ++rejected;
    auto it = _links.find(link.conn);
    if (it == _links.end()) return;
    LinkId peerLink = it->second.peer;
    // As the hub's: lost on this side (its peer did not go away), closed on the peer's.
    endHere(link, LinkEnd::lost, why);
    _peer->endHere(peerLink, LinkEnd::closed, "the peer closed the link");
  }

  std::optional<LinkId> openLink(const std::string& key) override {
    std::lock_guard lock(_openMutex);
    auto it = _open.find(key);
    if (it == _open.end()) return std::nullopt;
    return it->second;
  }

  // Every frame goes through the network thread, where the filter sees it. A test may run
  // something first, on the sender's thread, as if it happened while the sender tried to write.
  std::function<void(LinkId)> whileSendingNow;
  bool sendNow(LinkId link, std::span<const uint8_t>) override {
    if (auto hook = std::exchange(whileSendingNow, nullptr)) hook(link);
    return false;
  }
  LoopWake loopWake() const noexcept override { return {}; }
  std::vector<StringBindingData> bindings() const override { return {{"mem", "", _name}}; }

  int rejected = 0;

private:
  struct Link {
    LinkId peer;
    orpc::LinkInfo info;
    std::string key;
  };
  void endHere(LinkId link, LinkEnd how, const std::string& why) {
    auto it = _links.find(link.conn);
    if (it == _links.end()) return;
    Link gone = it->second;
    _links.erase(it);
    if (!gone.key.empty()) {
      std::lock_guard lock(_openMutex);
      _open.erase(gone.key);
    }
    _events->ended(link, gone.info, how, why);
  }

  Wire& _wire;
  const std::string _name;
  MemoryNetwork* _peer = nullptr;
  orpc::LinkEvents* _events = nullptr;
  uint64_t _nextId = 1;
  std::map<uint64_t, Link> _links;  // network thread
  std::mutex _openMutex;
  std::map<std::string, LinkId> _open;
};

// The security providers of both ends at `level` (the testkey provider), or none at level none.
std::unique_ptr<security::Providers> providersAt(SecurityLevel level) {
  if (level == SecurityLevel::none) return nullptr;
  auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_REQUIRE_MESSAGE(suite.argc >= 2, "usage: endpoint-test -- <ferry-security-testkey.so>");
  std::string refused = PluginRegistry::instance().tryLoad(suite.argv[1]);
  BOOST_REQUIRE_MESSAGE(refused.empty() || refused.rfind("shadowed", 0) == 0, refused);
  RuntimeOptions options;
  options.outOfProcess = false;
  options.security = {{"testkey", ""}};
  options.minimumLevel = level;
  return std::make_unique<security::Providers>(options);
}

// A client endpoint and a server endpoint of one runtime over the in-memory network (through
// bind layers at `level` above none), an object exported from a server STA, and a client STA's
// link to that STA's RemUnknown through the client endpoint.
struct Pair {
  explicit Pair(Runtime& rt, SecurityLevel level = SecurityLevel::none)
      : runtime(rt.impl()),
        server(rt.newSta("server")),
        client(rt.newSta("client")),
        clientNet(wire, "client"),
        serverNet(wire, "server"),
        providers(providersAt(level)),
        clientBind(providers ? std::make_unique<orpc::BindLayer>(*providers, clientNet) : nullptr),
        serverBind(providers ? std::make_unique<orpc::BindLayer>(*providers, serverNet) : nullptr),
        clientEndpoint(runtime, clientBind ? static_cast<orpc::Network&>(*clientBind) : clientNet),
        serverEndpoint(runtime, serverBind ? static_cast<orpc::Network&>(*serverBind) : serverNet) {
    if (providers) {
      clientBind->attach(clientEndpoint);
      serverBind->attach(serverEndpoint);
      clientNet.join(serverNet, *clientBind);
      serverNet.join(clientNet, *serverBind);
    } else {
      clientNet.join(serverNet, clientEndpoint);
      serverNet.join(clientNet, serverEndpoint);
    }
    packet = server.invoke([&] {
      object = make<ProbeImpl>();
      return marshalInterface(object, MarshalContext::local);
    });
    ipid = detail::decodeObjRef(packet).ipid;
    ApartmentImpl& exporter = *server.impl();
    link = std::make_shared<ExporterLink>(
        *client.impl(), exporter.oxid(), ExporterLink::Address{},
        clientEndpoint.channel({"mem", "", "server"}, exporter.oxid(), MarshalContext::local),
        exporter.remUnknownIpid());
  }
  ~Pair() {
    client.invoke([&] { link.reset(); });
    // Nothing of the endpoints runs once the wire stopped.
    wire.stop();
    server.invoke([&] {
      releaseMarshalData(packet);
      object.reset();
    });
  }

  uint32_t strongRefs() {
    return server.invoke([&] { return externalReferences(object.get()).strong; });
  }
  void addRefs(uint32_t refs) { client.invoke([&] { link->addRefs(ipid, refs); }); }

  RuntimeImpl& runtime;
  Sta server;
  Sta client;
  Wire wire;
  MemoryNetwork clientNet;
  MemoryNetwork serverNet;
  std::unique_ptr<security::Providers> providers;
  std::unique_ptr<orpc::BindLayer> clientBind;
  std::unique_ptr<orpc::BindLayer> serverBind;
  orpc::Endpoint clientEndpoint;
  orpc::Endpoint serverEndpoint;
  Ref<Probe> object;
  ObjRefBytes packet;
  Ipid ipid;
  std::shared_ptr<ExporterLink> link;
};

// The runtime runs no transport of its own: the test's network is the only one.
struct InProcessRuntime : RuntimeFixture {
  InProcessRuntime() : RuntimeFixture(options()) {}
  static RuntimeOptions options() {
    RuntimeOptions o;
    o.outOfProcess = false;
    return o;
  }
};

orpc::FrameKind kindOf(const std::vector<uint8_t>& frame) {
  return static_cast<orpc::FrameKind>(frame[4]);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(endpoint, InProcessRuntime)

BOOST_AUTO_TEST_CASE(a_call_travels_over_a_link_and_its_response_is_acknowledged_by_the_next) {
  Pair p(rt());
  // Every request names this process and its secret token (Request.callerToken).
  std::vector<std::pair<uint64_t, uint64_t>> callers;  // network thread until the calls return
  p.clientNet.dropIf = [&](const std::vector<uint8_t>& frame) {
    if (kindOf(frame) == orpc::FrameKind::request) {
      orpc::Frame decoded = orpc::decodeFrame(frame.data(), frame.size());
      auto request = decoded.message->root<wire::Request>();
      callers.emplace_back(request.getCaller(), request.getCallerToken());
    }
    return false;
  };
  uint32_t before = p.strongRefs();
  p.addRefs(2);
  BOOST_TEST(p.strongRefs() == before + 2);
  BOOST_TEST(p.clientEndpoint.callsInFlight() == 0u);
  BOOST_TEST(p.clientNet.linksMade == 1);
  // The server keeps the response until the caller acknowledges it in its next request.
  p.wire.run([] {});
  BOOST_TEST(p.serverEndpoint.servedCallsKept() == 1u);
  p.addRefs(1);
  p.wire.run([] {});
  BOOST_TEST(p.serverEndpoint.servedCallsKept() == 1u, "the first went, the second is kept");
  BOOST_TEST(p.strongRefs() == before + 3);
  BOOST_TEST(p.clientNet.linksMade == 1, "one link carries every call");
  p.wire.run([] {});
  BOOST_REQUIRE(callers.size() == 2u);
  BOOST_TEST(callers[0].first == p.runtime.processId);
  BOOST_TEST(callers[0].second != 0u);
  BOOST_TEST((callers[1] == callers[0]));
}

BOOST_AUTO_TEST_CASE(a_probe_hears_the_same_for_an_unknown_oxid_and_a_known_one_with_a_wrong_ipid) {
  Pair p(rt());
  Oxid known = p.server.impl()->oxid();
  Oxid unknown(known.value ^ 0x5a5a5a5a5a5aull);
  Ipid wrong(0x1234, 0x5678);
  auto probe = [&](Oxid oxid) {
    return p.client.invoke([&]() -> std::pair<Errc, std::string> {
      auto link = std::make_shared<ExporterLink>(
          *p.client.impl(), oxid, ExporterLink::Address{},
          p.clientEndpoint.channel({"mem", "", "server"}, oxid, MarshalContext::local), wrong);
      try {
        link->addRefs(wrong, 1);
      } catch (const Error& e) {
        return {e.code(), e.message()};
      }
      return {Errc::ok, ""};
    });
  };
  auto toUnknown = probe(unknown);
  auto toKnown = probe(known);
  BOOST_TEST(int(toUnknown.first) == int(Errc::disconnected));
  BOOST_TEST((toUnknown == toKnown), toUnknown.second << " / " << toKnown.second);
}

BOOST_AUTO_TEST_CASE(a_call_whose_response_was_lost_with_its_link_runs_once_and_is_answered_again) {
  Pair p(rt());
  uint32_t before = p.strongRefs();
  int64_t duplicatesBefore = stats().duplicateRequests.load();
  int64_t resentBefore = stats().callsResent.load();
  // The first response never arrives; the link is lost once it was dropped.
  p.serverNet.dropIf = [&](const std::vector<uint8_t>& frame) {
    if (kindOf(frame) != orpc::FrameKind::response) return false;
    p.serverNet.dropIf = nullptr;
    p.wire.post([&] {
      if (auto link = p.clientNet.anyLink()) p.clientNet.lose(*link);
    });
    return true;
  };
  p.addRefs(2);
  BOOST_TEST(p.strongRefs() == before + 2, "the servant ran once, not once per copy");
  BOOST_TEST(stats().callsResent.load() - resentBefore == 1);
  BOOST_TEST(stats().duplicateRequests.load() - duplicatesBefore == 1);
  BOOST_TEST(p.clientNet.linksMade == 2, "the copy went over a new link");
  BOOST_TEST(p.clientEndpoint.callsInFlight() == 0u);
}

BOOST_AUTO_TEST_CASE(a_call_whose_link_is_lost_while_its_caller_writes_it_goes_out_once) {
  Pair p(rt());
  uint32_t before = p.strongRefs();
  p.addRefs(1);  // opens the link: the next call finds it open and its caller writes it
  int requests = 0;  // network thread
  p.clientNet.dropIf = [&](const std::vector<uint8_t>& frame) {
    if (kindOf(frame) == orpc::FrameKind::request) ++requests;
    return false;
  };
  int64_t duplicatesBefore = stats().duplicateRequests.load();
  int64_t resentBefore = stats().callsResent.load();
  // The link is lost after the call was entered on it and before the caller's write is refused:
  // the loss sends the call again on a new link, and the caller must not send it a second time.
  p.clientNet.whileSendingNow = [&](LinkId link) { p.wire.run([&] { p.clientNet.lose(link); }); };
  p.addRefs(2);
  p.wire.run([] {});
  BOOST_TEST(p.strongRefs() == before + 3);
  BOOST_TEST(stats().callsResent.load() - resentBefore == 1, "the loss sent it again");
  BOOST_TEST(requests == 1, "one copy of the call went out");
  BOOST_TEST(stats().duplicateRequests.load() - duplicatesBefore == 0);
  BOOST_TEST(p.clientNet.linksMade == 2);
  BOOST_TEST(p.clientEndpoint.callsInFlight() == 0u);
}

BOOST_AUTO_TEST_CASE(a_silent_link_fails_its_call_where_it_is_and_new_calls_at_once_until_a_link_opens_again) {
  Pair p(rt());
  uint32_t before = p.strongRefs();
  int64_t resentBefore = stats().callsResent.load();
  // The response never comes: the link goes silent instead.
  p.serverNet.dropIf = [&](const std::vector<uint8_t>& frame) {
    if (kindOf(frame) != orpc::FrameKind::response) return false;
    p.serverNet.dropIf = nullptr;
    p.wire.post([&] {
      if (auto link = p.clientNet.anyLink()) p.clientNet.silence(*link);
    });
    return true;
  };
  auto failure = [&](uint32_t refs) -> std::pair<Errc, std::string> {
    try {
      p.addRefs(refs);
    } catch (const Error& e) {
      return {e.code(), e.message()};
    }
    return {Errc::ok, ""};
  };
  auto inFlight = failure(2);
  BOOST_TEST(int(inFlight.first) == int(Errc::outcomeUnknown), inFlight.second);
  BOOST_TEST(inFlight.second.find("went silent") != std::string::npos, inFlight.second);
  BOOST_TEST(stats().callsResent.load() - resentBefore == 0, "no copy went out on a new link");
  BOOST_TEST(p.strongRefs() == before + 2, "it ran, as outcomeUnknown allows");
  BOOST_TEST(p.clientNet.linksMade == 1);
  // The next call fails at once, naming the binding, and starts one connection attempt.
  auto next = failure(1);
  BOOST_TEST(int(next.first) == int(Errc::unavailable), next.second);
  BOOST_TEST(next.second.find("mem:") != std::string::npos, next.second);
  BOOST_TEST(next.second.find("went silent") != std::string::npos, next.second);
  BOOST_TEST(p.strongRefs() == before + 2);
  BOOST_TEST(p.clientNet.linksMade == 2);
  // The attempt's link opened: calls go through again.
  p.wire.run([] {});
  p.addRefs(1);
  BOOST_TEST(p.strongRefs() == before + 3);
  BOOST_TEST(p.clientNet.linksMade == 2, "the call took the link the attempt opened");
}

BOOST_AUTO_TEST_CASE(a_kept_response_goes_after_the_retention_on_the_network_clock) {
  Pair p(rt());
  p.addRefs(1);
  p.wire.run([] {});
  BOOST_TEST(p.serverEndpoint.servedCallsKept() == 1u);
  auto now = std::chrono::steady_clock::now();
  p.wire.run([&] { p.serverEndpoint.tick(now + p.runtime.options.replyRetention / 2); });
  BOOST_TEST(p.serverEndpoint.servedCallsKept() == 1u);
  p.wire.run([&] {
    p.serverEndpoint.tick(now + p.runtime.options.replyRetention + std::chrono::seconds(1));
  });
  BOOST_TEST(p.serverEndpoint.servedCallsKept() == 0u);
}

BOOST_AUTO_TEST_CASE(a_malformed_frame_closes_its_link_and_the_call_on_it_fails_cleanly) {
  Pair p(rt());
  uint32_t before = p.strongRefs();
  // The request reaches the server garbled: the server rejects the link, and the client's call,
  // which may or may not have run, is sent again on a new link and answered.
  bool garbled = false;
  p.clientNet.dropIf = [&](const std::vector<uint8_t>& frame) {
    if (garbled || kindOf(frame) != orpc::FrameKind::request) return false;
    garbled = true;
    std::vector<uint8_t> bad = frame;
    bad[0] = 'X';
    p.clientNet.dropIf = nullptr;
    auto link = p.clientNet.anyLink();
    p.clientNet.send(*link, std::move(bad));
    return true;
  };
  p.addRefs(1);
  BOOST_TEST(p.serverNet.rejected == 1);
  BOOST_TEST(p.strongRefs() == before + 1);
  BOOST_TEST(p.clientNet.linksMade == 2);
}

bool contains(const std::vector<uint8_t>& bytes, const std::vector<uint8_t>& part) {
  return std::search(bytes.begin(), bytes.end(), part.begin(), part.end()) != bytes.end();
}

// The IPID as a request's message carries it (two little-endian words).
std::vector<uint8_t> ipidBytes(Ipid ipid) {
  std::vector<uint8_t> out;
  for (uint64_t word : {ipid.hi, ipid.lo}) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(word >> (8 * i)));
  }
  return out;
}

BOOST_AUTO_TEST_CASE(through_bind_layers_every_frame_after_the_exchange_is_sealed_and_an_argument_shows_at_integrity_only) {
  for (SecurityLevel level : {SecurityLevel::integrity, SecurityLevel::privacy}) {
    BOOST_TEST_CONTEXT("at " << toString(level)) {
      Pair p(rt(), level);
      std::mutex mutex;
      std::vector<std::vector<uint8_t>> onWire;  // both directions, as the network carried them
      auto capture = [&](const std::vector<uint8_t>& frame) {
        std::lock_guard lock(mutex);
        onWire.push_back(frame);
        return false;
      };
      p.clientNet.dropIf = capture;
      p.serverNet.dropIf = capture;
      int64_t droppedBefore = stats().sealedFramesDropped.load();
      uint32_t before = p.strongRefs();
      p.addRefs(2);
      BOOST_TEST(p.strongRefs() == before + 2);
      p.wire.run([] {});
      std::lock_guard lock(mutex);
      size_t bind = 0, sealed = 0, clear = 0;
      bool argumentSeen = false;
      for (const auto& frame : onWire) {
        if (frame[4] == static_cast<uint8_t>(orpc::FrameKind::bind)) {
          ++bind;
        } else if (frame[4] == orpc::kSealedFrameKind) {
          ++sealed;
        } else {
          ++clear;
        }
        argumentSeen = argumentSeen || contains(frame, ipidBytes(p.ipid));
      }
      // offer, choice, three tokens, accept; then the request and its response, sealed.
      BOOST_TEST(bind == 6u);
      BOOST_TEST(sealed == 2u);
      BOOST_TEST(clear == 0u);
      BOOST_TEST(argumentSeen == (level == SecurityLevel::integrity));
      BOOST_TEST(stats().sealedFramesDropped.load() - droppedBefore == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_offer_altered_in_flight_keys_the_two_ends_differently_and_nothing_runs) {
  Pair p(rt(), SecurityLevel::integrity);
  // The attacker raises the offer's level byte: the server agrees to privacy, the client accepts
  // a level above its own, and each end hashed another negotiation into its keys.
  p.clientNet.dropIf = [&](const std::vector<uint8_t>& frame) {
    if (frame[4] != static_cast<uint8_t>(orpc::FrameKind::bind)) return false;
    p.clientNet.dropIf = nullptr;
    orpc::Frame decoded = orpc::decodeFrame(frame.data(), frame.size());
    capnp::MallocMessageBuilder altered;
    altered.setRoot(decoded.message->root<wire::Bind>());
    altered.getRoot<wire::Bind>().getOffer().setLevel(3);
    auto link = p.clientNet.anyLink();
    p.clientNet.send(*link, orpc::encodeFrame(orpc::FrameKind::bind, 0, Oxid(), altered));
    return true;
  };
  int64_t droppedBefore = stats().sealedFramesDropped.load();
  uint32_t before = p.strongRefs();
  Errc code = p.client.invoke([&] {
    CallTimeout timeout(std::chrono::milliseconds(300));
    try {
      p.link->addRefs(p.ipid, 1);
    } catch (const Error& e) {
      return e.code();
    }
    return Errc::ok;
  });
  BOOST_TEST((code == Errc::deadlineExceeded));
  BOOST_TEST(p.strongRefs() == before, "nothing was dispatched");
  BOOST_TEST(stats().sealedFramesDropped.load() - droppedBefore >= 1);
}

// Adds one reference through the link and returns the sealed request as the client sent it.
std::vector<uint8_t> sealedRequestOfOneCall(Pair& p) {
  std::vector<uint8_t> request;  // network thread, then the test's once the call returned
  p.clientNet.dropIf = [&](const std::vector<uint8_t>& frame) {
    if (frame[4] == orpc::kSealedFrameKind && request.empty()) request = frame;
    return false;
  };
  p.addRefs(1);
  p.wire.run([&] { p.clientNet.dropIf = nullptr; });
  BOOST_REQUIRE(!request.empty());
  return request;
}

BOOST_AUTO_TEST_CASE(a_sealed_request_replayed_on_its_link_is_dropped_and_never_runs_again) {
  Pair p(rt(), SecurityLevel::privacy);
  uint32_t before = p.strongRefs();
  std::vector<uint8_t> request = sealedRequestOfOneCall(p);
  BOOST_TEST(p.strongRefs() == before + 1);
  int64_t replaysBefore = stats().replaysDropped.load();
  int64_t duplicatesBefore = stats().duplicateRequests.load();
  p.wire.run([&] { p.clientNet.send(*p.clientNet.anyLink(), request); });
  p.wire.run([] {});
  BOOST_TEST(stats().replaysDropped.load() - replaysBefore == 1);
  // Dropped by the record layer: not even the reply cache saw it.
  BOOST_TEST(stats().duplicateRequests.load() - duplicatesBefore == 0);
  BOOST_TEST(p.strongRefs() == before + 1);
  // The link goes on: the next call runs.
  p.addRefs(1);
  BOOST_TEST(p.strongRefs() == before + 2);
}

BOOST_AUTO_TEST_CASE(a_link_whose_peer_sends_frames_that_fail_their_tag_is_closed_at_the_limit_and_replays_do_not_count) {
  Pair p(rt(), SecurityLevel::privacy);
  uint32_t before = p.strongRefs();
  std::vector<uint8_t> request = sealedRequestOfOneCall(p);
  int64_t closedBefore = stats().linksClosedForForgeries.load();
  int64_t droppedBefore = stats().sealedFramesDropped.load();
  // Replays, however many, are dropped without closing the link.
  p.wire.run([&] {
    for (int i = 0; i < 2 * orpc::BindLayer::kForgeryLimit; ++i) {
      p.clientNet.send(*p.clientNet.anyLink(), request);
    }
  });
  p.wire.run([] {});
  BOOST_TEST(p.serverNet.rejected == 0);
  // Frames whose tag fails (the request renumbered to numbers not seen yet, which its tag does
  // not cover): one short of the limit keeps the link, the limit closes it.
  auto forged = [&](int i) {
    std::vector<uint8_t> frame = request;
    frame[9] = static_cast<uint8_t>(1 + i);  // number bits 8-15
    return frame;
  };
  p.wire.run([&] {
    for (int i = 0; i < orpc::BindLayer::kForgeryLimit - 1; ++i) {
      p.clientNet.send(*p.clientNet.anyLink(), forged(i));
    }
  });
  p.wire.run([] {});
  BOOST_TEST(p.serverNet.rejected == 0);
  BOOST_TEST(stats().linksClosedForForgeries.load() - closedBefore == 0);
  p.wire.run([&] { p.clientNet.send(*p.clientNet.anyLink(), forged(100)); });
  p.wire.run([] {});
  BOOST_TEST(p.serverNet.rejected == 1);
  BOOST_TEST(stats().linksClosedForForgeries.load() - closedBefore == 1);
  BOOST_TEST(stats().sealedFramesDropped.load() - droppedBefore == orpc::BindLayer::kForgeryLimit);
  BOOST_TEST(p.strongRefs() == before + 1, "no forged or replayed frame ran");
  // The client connects again and its next call runs.
  p.addRefs(1);
  BOOST_TEST(p.strongRefs() == before + 2);
  BOOST_TEST(p.clientNet.linksMade == 2);
}

BOOST_AUTO_TEST_SUITE_END()
