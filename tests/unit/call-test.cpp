// Cross-apartment calls in one process: which thread runs them, re-entrancy, identity, errors,
// the asynchronous form and deadlines.
#define BOOST_TEST_MODULE calls
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <condition_variable>
#include <set>

#include <ferry/generated.h>

#include "servants.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Callback;
using testing::iface::Chain;
using testing::iface::Holder;
using testing::iface::Probe;

namespace {

class ChainImpl final : public Implements<Chain> {
public:
  ChainImpl(std::shared_ptr<std::vector<CausalityId>> seen, std::shared_ptr<std::mutex> mutex)
      : _seen(std::move(seen)), _mutex(std::move(mutex)) {}

  uint32_t bounce(uint32_t depth, Ref<Chain> peer) override {
    {
      std::lock_guard lock(*_mutex);
      _seen->push_back(currentCausalityId());
    }
    if (depth == 0) return 0;
    return 1 + peer->bounce(depth - 1, Ref<Chain>(this));
  }

private:
  std::shared_ptr<std::vector<CausalityId>> _seen;
  std::shared_ptr<std::mutex> _mutex;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(calls, RuntimeFixture)

BOOST_AUTO_TEST_CASE(calls_into_an_sta_run_on_its_thread) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  uint64_t staThread = sta.invoke([] { return threadHash(); });
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  BOOST_CHECK(isProxy(probe.get()));
  BOOST_CHECK_EQUAL(probe->threadId(), staThread);
  BOOST_CHECK_EQUAL(probe->threadId(), staThread);
  BOOST_CHECK_NE(staThread, threadHash());
}

BOOST_AUTO_TEST_CASE(calls_into_the_mta_run_on_pool_threads) {
  Sta client = rt().newSta("client");
  Ref<Probe> inMta;
  client.invoke([&] {
    inMta = exportFrom<Probe, ProbeImpl>(rt().mta());
    BOOST_CHECK(isProxy(inMta.get()));
    std::set<uint64_t> threads;
    for (int i = 0; i < 8; ++i) threads.insert(inMta->threadId());
    BOOST_CHECK(threads.count(threadHash()) == 0);  // never the calling STA thread
    BOOST_CHECK(threads.count(0) == 0);
    inMta.reset();
  });
}

BOOST_AUTO_TEST_CASE(sync_calls_carry_data_both_ways) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  std::vector<uint8_t> payload(1024);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7);
  BOOST_CHECK(probe->echo(payload) == payload);
  BOOST_CHECK(probe->echo({}).empty());
  probe->nothing();
}

BOOST_AUTO_TEST_CASE(unmarshaling_one_object_twice_gives_one_proxy_identity) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  auto packets = sta.invoke([] {
    Ref<Probe> object = make<ProbeImpl>();
    return std::make_pair(marshalInterface(object), marshalInterface(object));
  });
  Ref<Probe> a = unmarshalInterface<Probe>(packets.first);
  Ref<Probe> b = unmarshalInterface<Probe>(packets.second);
  BOOST_CHECK(sameObject(a, b));
  BOOST_CHECK(a.get() == b.get());  // the same interface proxy, too
  BOOST_CHECK_EQUAL(Runtime::stats().proxyManagers, 1);
  BOOST_CHECK_EQUAL(Runtime::stats().interfaceProxies, 1);
  BOOST_CHECK_EQUAL(Runtime::stats().exportedObjects, 1);
}

BOOST_AUTO_TEST_CASE(a_fifty_deep_callback_chain_between_two_stas_completes) {
  auto mta = rt().joinMta();
  Sta left = rt().newSta("left");
  Sta right = rt().newSta("right");
  auto seen = std::make_shared<std::vector<CausalityId>>();
  auto mutex = std::make_shared<std::mutex>();
  Ref<Chain> a = exportFrom<Chain, ChainImpl>(left, seen, mutex);
  // b is created in `right` and handed to `left` as a parameter of the first hop.
  Ref<Chain> b = exportFrom<Chain, ChainImpl>(right, seen, mutex);
  BOOST_CHECK_EQUAL(a->bounce(50, b), 50u);
  std::lock_guard lock(*mutex);
  BOOST_REQUIRE_EQUAL(seen->size(), 51u);
  BOOST_CHECK(static_cast<bool>(seen->front()));
  for (const CausalityId& id : *seen) BOOST_CHECK(id == seen->front());
}

BOOST_AUTO_TEST_CASE(each_top_level_call_carries_a_causality_id_of_its_own) {
  auto mta = rt().joinMta();
  Sta server = rt().newSta("server");
  auto seen = std::make_shared<std::vector<CausalityId>>();
  auto mutex = std::make_shared<std::mutex>();
  Ref<Chain> chain = exportFrom<Chain, ChainImpl>(server, seen, mutex);
  for (int i = 0; i < 100; ++i) chain->bounce(0, nullptr);
  std::lock_guard lock(*mutex);
  BOOST_REQUIRE_EQUAL(seen->size(), 100u);
  std::set<std::pair<uint64_t, uint64_t>> distinct;
  for (const CausalityId& id : *seen) {
    BOOST_CHECK(id.hi != 0 && id.lo != 0);
    distinct.insert({id.hi, id.lo});
  }
  BOOST_CHECK_EQUAL(distinct.size(), 100u);
}

BOOST_AUTO_TEST_CASE(a_forked_child_draws_causality_ids_its_parent_never_draws) {
  CausalityId parent = newCausalityId();
  int fds[2];
  BOOST_REQUIRE(::pipe(fds) == 0);
  pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    CausalityId id = newCausalityId();
    uint64_t out[2] = {id.hi, id.lo};
    ssize_t n = ::write(fds[1], out, sizeof out);
    ::_exit(n == static_cast<ssize_t>(sizeof out) ? 0 : 1);
  }
  ::close(fds[1]);
  uint64_t in[2] = {};
  ssize_t n = ::read(fds[0], in, sizeof in);
  ::close(fds[0]);
  int status = 0;
  BOOST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  BOOST_REQUIRE_EQUAL(n, static_cast<ssize_t>(sizeof in));
  CausalityId next = newCausalityId();
  // The parent's next id follows its own; the child's has another prefix, so no id of the
  // parent's, earlier or later, equals it.
  BOOST_CHECK_EQUAL(next.hi, parent.hi);
  BOOST_CHECK(in[0] != parent.hi);
  BOOST_CHECK(in[1] != 0);
}

BOOST_AUTO_TEST_CASE(a_chain_deeper_than_the_mta_pool_does_not_deadlock) {
  // One pool thread: every MTA hop blocks it, so the pool has to grow for the chain to finish.
  runtime.reset();
  RuntimeOptions options;
  options.mtaThreads = 1;
  options.mtaMaxThreads = 32;
  runtime.emplace(options);
  Sta sta = rt().newSta("sta");
  auto seen = std::make_shared<std::vector<CausalityId>>();
  auto mutex = std::make_shared<std::mutex>();
  sta.invoke([&] {
    Ref<Chain> inMta = exportFrom<Chain, ChainImpl>(rt().mta(), seen, mutex);
    Ref<Chain> local = make<ChainImpl>(seen, mutex);
    BOOST_CHECK_EQUAL(inMta->bounce(12, local), 12u);
  });
}

BOOST_AUTO_TEST_CASE(a_proxy_used_from_another_apartment_fails_with_wrong_apartment) {
  Sta owner = rt().newSta("owner");
  Sta server = rt().newSta("server");
  Ref<Probe> proxy = owner.invoke([&] { return exportFrom<Probe, ProbeImpl>(server); });
  auto mta = rt().joinMta();
  FERRY_CHECK_ERRC(proxy->threadId(), Errc::wrongApartment);
  FERRY_CHECK_ERRC(marshalInterface(proxy), Errc::wrongApartment);
  // It still works where it belongs; releasing it from here is allowed.
  BOOST_CHECK_NO_THROW(owner.invoke([&] { proxy->nothing(); }));
  proxy.reset();
}

BOOST_AUTO_TEST_CASE(a_thread_in_no_apartment_cannot_marshal_unmarshal_or_call) {
  Sta server = rt().newSta("server");
  Ref<Probe> local = make<ProbeImpl>();
  FERRY_CHECK_ERRC(marshalInterface(local), Errc::notInitialized);
  ObjRefBytes packet = server.invoke([] { return marshalInterface(Ref<Probe>(make<ProbeImpl>())); });
  FERRY_CHECK_ERRC(unmarshalInterface<Probe>(packet), Errc::notInitialized);
  // The packet was not consumed by the failed attempt.
  BOOST_CHECK_NO_THROW(server.invoke([&] { releaseMarshalData(packet); }));
}

BOOST_AUTO_TEST_CASE(a_servant_exception_reaches_the_caller_as_server_fault) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  BOOST_CHECK_EXCEPTION(probe->fail("the gizmo broke"), Error, [](const Error& e) {
    return e.code() == Errc::serverFault && e.message() == "the gizmo broke";
  });
  // The servant's apartment keeps running.
  BOOST_CHECK_EQUAL(probe->threadId(), sta.invoke([] { return threadHash(); }));
}

BOOST_AUTO_TEST_CASE(interface_parameters_keep_their_identity_and_call_back_while_the_caller_waits) {
  Sta clientSta = rt().newSta("client");
  Sta serverSta = rt().newSta("server");
  clientSta.invoke([&] {
    Ref<Holder> holder = exportFrom<Holder, HolderImpl>(serverSta);
    auto callback = make<CallbackImpl>();
    Ref<Callback> cb(callback.get());
    holder->set(cb);
    // The server calls back into this STA while this thread waits for callBack's reply.
    BOOST_CHECK_EQUAL(holder->callBack(42), threadHash());
    BOOST_CHECK(callback->values == std::vector<int64_t>{42});
    // Our own object comes back as the real object, not a proxy of a proxy.
    Ref<Callback> back = holder->get();
    BOOST_CHECK(back.get() == cb.get());
    BOOST_CHECK(holder->isSameAs(cb));
    holder->set(nullptr);
    BOOST_CHECK(holder->get() == nullptr);
  });
}

BOOST_AUTO_TEST_CASE(a_proxy_passed_onward_names_the_original_object) {
  Sta a = rt().newSta("a");
  Sta b = rt().newSta("b");
  Sta c = rt().newSta("c");
  // The callback lives in c; a holds a proxy and passes it to a Holder in b.
  Ref<Callback> inC;
  a.invoke([&] {
    Ref<Callback> proxy = exportFrom<Callback, CallbackImpl>(c);
    Ref<Holder> holder = exportFrom<Holder, HolderImpl>(b);
    holder->set(proxy);
    // b calls c directly: the call runs on c's thread.
    BOOST_CHECK_EQUAL(holder->callBack(7), c.invoke([] { return threadHash(); }));
    // Handed back to a, it is a's existing proxy identity for that object.
    BOOST_CHECK(sameObject(holder->get(), proxy));
    holder->set(nullptr);
  });
  // Every reference travelled back: nothing stays exported once the proxies are gone.
  BOOST_CHECK(eventually([] { return Runtime::stats().exportedObjects == 0; }));
}

BOOST_AUTO_TEST_CASE(the_async_form_completes_on_the_calling_sta) {
  Sta server = rt().newSta("server");
  auto sta = rt().enterSta("client");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(server);
  uint64_t serverThread = server.invoke([] { return threadHash(); });
  uint64_t continuationThread = 0;
  uint64_t result = 0;
  probe->threadIdAsync().then([&](Result<uint64_t> r) {
    continuationThread = threadHash();
    result = r.value();
    sta.stop();
  });
  sta.run();
  BOOST_CHECK_EQUAL(continuationThread, threadHash());
  BOOST_CHECK_EQUAL(result, serverThread);
  // get() on the async form waits like a sync call.
  BOOST_CHECK_EQUAL(probe->threadIdAsync().get(), serverThread);
  // Errors arrive as a failed Result.
  bool failed = false;
  probe->failAsync("nope").then([&](Result<void> r) {
    failed = !r.ok() && r.error().code() == Errc::serverFault;
    sta.stop();
  });
  sta.run();
  BOOST_CHECK(failed);
  probe.reset();
}

BOOST_AUTO_TEST_CASE(the_async_form_on_a_real_object_is_ready_at_once) {
  auto mta = rt().joinMta();
  Ref<Probe> probe = make<ProbeImpl>();
  auto future = probe->threadIdAsync();
  BOOST_CHECK(future.isReady());
  BOOST_CHECK_EQUAL(future.get(), threadHash());
}

BOOST_AUTO_TEST_CASE(a_call_that_outlives_its_deadline_fails_with_deadline_exceeded) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("slow");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  {
    CallTimeout timeout(std::chrono::milliseconds(100));
    FERRY_CHECK_ERRC(probe->sleepMillis(1000), Errc::deadlineExceeded);
  }
  // The apartment finishes the slow call and serves the next one.
  BOOST_CHECK_NO_THROW(probe->nothing());
}

BOOST_AUTO_TEST_CASE(an_async_call_nobody_waits_for_still_ends_at_its_deadline) {
  Sta server = rt().newSta("slow");
  auto sta = rt().enterSta("client");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(server);
  std::optional<Errc> outcome;
  {
    CallTimeout timeout(std::chrono::milliseconds(100));
    probe->sleepMillisAsync(1000).then([&](Result<void> r) {
      outcome = r.ok() ? Errc::ok : r.error().code();
      sta.stop();
    });
  }
  sta.run();
  BOOST_REQUIRE(outcome.has_value());
  BOOST_CHECK(*outcome == Errc::deadlineExceeded);
  probe.reset();
}

BOOST_AUTO_TEST_CASE(an_async_call_that_completes_leaves_the_deadline_watch) {
  // The watch holds then() calls so it can fail them at their deadline; one that completes must
  // leave it at once, not at its deadline, or a steady stream of calls keeps call rate x timeout
  // of them in memory.
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  constexpr int kCalls = 200;
  std::atomic<int> continued{0};
  auto busy = probe->sleepMillisAsync(300);  // the STA serves the rest after this one
  for (int i = 0; i < kCalls; ++i) {
    probe->threadIdAsync().then([&](Result<uint64_t> r) {
      if (r.ok()) continued.fetch_add(1);
    });
  }
  BOOST_CHECK_EQUAL(statsNow().watchedCalls, kCalls);  // all still running
  busy.get();
  BOOST_REQUIRE(eventually([&] { return continued.load() == kCalls; }));
  BOOST_CHECK_EQUAL(statsNow().watchedCalls, 0);
  probe.reset();
}

BOOST_AUTO_TEST_CASE(a_call_canceled_while_queued_never_runs) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("busy");
  auto servant = make<ProbeImpl>();
  ObjRefBytes packet = sta.invoke([&] { return marshalInterface(Ref<Probe>(servant.get())); });
  Ref<Probe> probe = unmarshalInterface<Probe>(packet);
  // The STA is busy with the first call; the second waits in its queue and is canceled there.
  auto busy = probe->sleepMillisAsync(200);
  BOOST_REQUIRE(eventually([&] { return servant->calls.load() == 1; }));
  auto queued = probe->threadIdAsync();
  queued.cancel();
  BOOST_CHECK_EXCEPTION(queued.get(), Error, [](const Error& e) { return e.code() == Errc::canceled; });
  busy.get();
  BOOST_CHECK_EQUAL(servant->calls.load(), 1);  // threadId never ran
  BOOST_CHECK_NO_THROW(probe->nothing());
  probe.reset();
  sta.invoke([&] { servant.reset(); });
}

BOOST_AUTO_TEST_CASE(a_running_call_sees_its_cancellation) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  auto waiting = probe->waitForCancelAsync(10000);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  waiting.cancel();
  BOOST_CHECK(waiting.get());  // the servant saw it and returned early
  // A call nobody cancels does not see it.
  BOOST_CHECK(!probe->waitForCancel(5));
}

BOOST_AUTO_TEST_CASE(an_sta_can_run_on_the_current_thread) {
  auto sta = rt().enterSta("main");
  BOOST_CHECK(currentApartment() == sta);
  BOOST_CHECK(sta.kind() == ApartmentKind::sta);
  uint64_t ranOn = 0;
  Sta other = rt().newSta("other");
  other.post([&sta, &ranOn] {
    // Cross-apartment post into the current-thread STA; it runs when sta.run() turns the loop.
    sta.post([&sta, &ranOn] {
      ranOn = threadHash();
      sta.stop();
    });
  });
  sta.run();
  BOOST_CHECK_EQUAL(ranOn, threadHash());
}

BOOST_AUTO_TEST_CASE(an_sta_can_attach_to_an_embedders_loop) {
  // The embedder owns a thread and a loop; ferry adds its handle and serves calls there.
  uv_loop_t loop;
  BOOST_REQUIRE_EQUAL(uv_loop_init(&loop), 0);
  std::optional<Apartment> attached;
  std::mutex mutex;
  std::condition_variable cv;
  uint64_t embedderThread = 0;
  ObjRefBytes packet;

  std::thread embedder([&] {
    uv_timer_t keepAlive;  // the embedder's own handle, stopped by the embedder
    uv_timer_init(&loop, &keepAlive);
    auto sta = std::make_unique<AttachedSta>(rt().attachSta(&loop, "embedded"));
    {
      std::lock_guard lock(mutex);
      attached = *sta;
      embedderThread = threadHash();
      packet = marshalInterface(Ref<Probe>(make<ProbeImpl>()));
    }
    cv.notify_one();
    keepAlive.data = &sta;
    // The embedder decides when to detach: here, after a timer notices the test is done.
    uv_timer_start(
        &keepAlive,
        [](uv_timer_t* t) {
          auto* owner = static_cast<std::unique_ptr<AttachedSta>*>(t->data);
          if (Runtime::stats().proxyManagers == 0 && Runtime::stats().exportedObjects == 0) {
            owner->reset();  // detach inside the loop: the close callback runs next iteration
            uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
          }
        },
        5, 5);
    uv_run(&loop, UV_RUN_DEFAULT);
  });

  {
    std::unique_lock lock(mutex);
    BOOST_REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return attached.has_value(); }));
  }
  {
    auto mta = rt().joinMta();
    Ref<Probe> probe = unmarshalInterface<Probe>(packet);
    BOOST_CHECK_EQUAL(probe->threadId(), embedderThread);
    BOOST_CHECK_EQUAL(attached->invoke([] { return threadHash(); }), embedderThread);
  }
  attached.reset();
  embedder.join();
  BOOST_CHECK_EQUAL(uv_loop_close(&loop), 0);
}

BOOST_AUTO_TEST_SUITE_END()

// An STA whose loop ferry runs polls its queue for RuntimeOptions::loopSpin after work before its
// loop sleeps. A long spin makes the effect certain on a loaded machine: calls from the MTA find
// the STA polling, and nobody writes its eventfd for them.
template <int SpinMicroseconds>
struct SpinFixture : RuntimeFixture {
  static RuntimeOptions withSpin() {
    RuntimeOptions options;
    options.loopSpin = std::chrono::microseconds(SpinMicroseconds);
    // In-process only: the MTA's threads poll the transport loop with the same setting.
    options.outOfProcess = false;
    return options;
  }
  SpinFixture() : RuntimeFixture(withSpin()) {}
};

BOOST_FIXTURE_TEST_SUITE(sta_polling, SpinFixture<600'000'000>)

// Also a test of the stop: the STA polls for up to ten minutes after each call, and the runtime's
// destruction at the end must end that poll at once (or the test runs into its timeout).
BOOST_AUTO_TEST_CASE(calls_into_an_sta_that_polls_after_work_wake_nobody) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  uint64_t staThread = probe->threadId();
  RuntimeStats before = statsNow();
  for (int i = 0; i < 20; ++i) {
    // Long enough for the STA to find its queue empty after each call: without polling it would
    // go to sleep, and each call would write its eventfd (as in sta_without_polling).
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    BOOST_CHECK_EQUAL(probe->threadId(), staThread);
  }
  RuntimeStats after = statsNow();
  BOOST_CHECK_EQUAL(after.staWakeUps - before.staWakeUps, 0);
  BOOST_CHECK_GE(after.staPolledWork - before.staPolledWork, 1);
}

BOOST_AUTO_TEST_CASE(an_sta_that_polls_still_stops_when_asked) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  BOOST_CHECK_NE(probe->threadId(), threadHash());
  probe.reset();
  int64_t apartments = statsNow().apartments;
  // It polls now (for ten minutes); stop() ends the poll and the loop, and joins the thread.
  sta.stop();
  BOOST_CHECK_EQUAL(statsNow().apartments, apartments - 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(sta_without_polling, SpinFixture<0>)

BOOST_AUTO_TEST_CASE(with_loop_spin_zero_an_sta_never_polls_and_is_woken_for_each_call) {
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  RuntimeStats before = statsNow();
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    probe->threadId();
  }
  RuntimeStats after = statsNow();
  // Each call is queued after the STA took the previous one's wake-up, so each writes it anew.
  BOOST_CHECK_EQUAL(after.staWakeUps - before.staWakeUps, 20);
  BOOST_CHECK_EQUAL(after.staPolledWork - before.staPolledWork, 0);
}

BOOST_AUTO_TEST_SUITE_END()
