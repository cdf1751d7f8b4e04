#include "apartment-impl.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include <kj/exception.h>
#include <uv.h>

#include "admin/admin.h"
#include "admin/method-stats.h"
#include "channel.h"
#include "interface-registry.h"
#include "log.h"
#include "loop-wake.h"
#include "message.h"
#include "pending-call.h"
#include "rem-unknown.h"
#include "runtime-impl.h"
#include "security/providers.h"
#include "server-call.h"
#include "stats.h"
#include "thread-state.h"

namespace ferry::detail {

void logTaskFailure() noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    FERRY_LOG(error, "a task posted to the apartment threw: " << e.what());
  } catch (...) {
    FERRY_LOG(error, "a task posted to the apartment threw a non-std exception");
  }
}

}  // namespace ferry::detail

namespace ferry {

std::shared_ptr<MessageFilter> setMessageFilter(std::shared_ptr<MessageFilter> filter) {
  detail::ApartmentImpl& here = detail::requireCurrentApartment();
  FERRY_REQUIRE(here.kind() == ApartmentKind::sta, Errc::invalidArgument,
                "setMessageFilter was called in the MTA, which has no message filter; install "
                "it from a thread of an STA");
  return static_cast<detail::StaImpl&>(here).setFilter(std::move(filter));
}

}  // namespace ferry

namespace ferry::detail {

ApartmentImpl& requireCurrentApartment() {
  ApartmentImpl* apartment = threadState().apartment;
  FERRY_REQUIRE(apartment != nullptr, Errc::notInitialized,
                "this thread belongs to no apartment; enter one first (Runtime::newSta, "
                "enterSta, attachSta or joinMta)");
  return *apartment;
}

std::string_view currentApartmentName() noexcept {
  ApartmentImpl* apartment = threadState().apartment;
  return apartment == nullptr ? std::string_view("-") : std::string_view(apartment->label());
}

// ---------------------------------------------------------------------------------------------
// ApartmentImpl

ApartmentImpl::ApartmentImpl(RuntimeImpl& runtime, ApartmentKind kind, std::string name)
    : _runtime(runtime),
      _kind(kind),
      _oxid(newOxid()),
      _name(std::move(name)),
      _label(kind == ApartmentKind::mta ? std::string("mta") : "sta:" + _name),
      _remUnknownIpid(newIpid()),
      _imports(*this) {}

ApartmentImpl::~ApartmentImpl() = default;

void ApartmentImpl::serve(IncomingRequest& request, Deadline deadline, MarshalContext distance,
                          const std::shared_ptr<ReplySink>& replyTo) noexcept {
  OutgoingResponse response;
  std::optional<Error> failure;
  const Clock::time_point started = Clock::now();
  uint64_t servedInterface = 0;  // stays 0 for a request that could not be read
  uint16_t servedMethod = 0;
  // What the log lines after the call name.
  CausalityId servedCausality;
  bool servantThrew = false;
  const bool logCall = logEnabled(LogLevel::debug);
  try {
    wire::Request::Reader root = request.root();
    servedInterface = root.getInterfaceId();
    servedMethod = root.getMethodId();
    FERRY_REQUIRE((root.getFlags() & ~kRequestFlagsKnown) == 0, Errc::protocolError,
                  "the request has flag bits {} that this version of ferry does not know; the "
                  "caller runs a newer protocol",
                  root.getFlags() & ~kRequestFlagsKnown);
    FERRY_REQUIRE(started <= deadline, Errc::deadlineExceeded,
                  "the call's deadline passed before the server started it; raise "
                  "RuntimeOptions::callTimeout or the caller's ferry::CallTimeout");
    Ipid ipid(root.getIpid().getHi(), root.getIpid().getLo());
    const ClientBlanket* caller = threadState().blanket;
    // A call from another process below the least level is refused before the object is looked
    // for, so the answer is the same whether or not it exists.
    if (caller != nullptr) checkLevel(*caller, Iid(root.getInterfaceId()));
    if (caller != nullptr) {
      admin::checkCaller(_runtime.options, *caller, distance, Iid(servedInterface));
    }
    auto causality = root.getCausality();
    servedCausality = CausalityId(causality.getHi(), causality.getLo());
    CausalityScope scope(servedCausality);
    ServerCallImpl call(root, response, distance);
    if (ipid == _remUnknownIpid) {
      std::optional<StubLease> servant = remUnknown();
      FERRY_REQUIRE(servant.has_value(), Errc::disconnected,
                    "apartment '{}' has shut down, and its objects with it", _label);
      if (caller != nullptr) checkAccess(*caller, ipid, Iid(root.getInterfaceId()), root.getMethodId());
      servant->dispatch(servant->object, root.getInterfaceId(), root.getMethodId(), call);
    } else {
      std::optional<StubLease> lease = _exports.tryAcquireStub(ipid);
      FERRY_REQUIRE(lease.has_value(), Errc::disconnected, "{}", kNoSuchObject);
      if (caller != nullptr) checkAccess(*caller, ipid, Iid(root.getInterfaceId()), root.getMethodId());
      lease->dispatch(lease->object, root.getInterfaceId(), root.getMethodId(), call);
    }
  } catch (const Error& e) {
    failure = e;
  } catch (const kj::Exception& e) {
    // Reading a malformed request (from another process) failed.
    stats().protocolErrors.fetch_add(1, std::memory_order_relaxed);
    failure = Error(Errc::protocolError,
                    std::string("the request is not a valid Cap'n Proto message for the method (") +
                        std::string(kjReason(e.getDescription().cStr())) +
                        "); the caller was built from another version of the schema");
  } catch (const std::exception& e) {
    failure = Error(Errc::serverFault, e.what());
    servantThrew = true;
  } catch (...) {
    failure = Error(Errc::serverFault, "the servant threw an exception not derived from std::exception");
    servantThrew = true;
  }

  if (servantThrew || logCall) {
    CausalityScope scope(servedCausality);
    if (servantThrew) {
      FERRY_LOG(warn, "the servant of " << describeMethod(Iid(servedInterface), servedMethod)
                                        << " threw: " << failure->message());
    }
    if (logCall) {
      auto micros =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
      const ClientBlanket* caller = threadState().blanket;
      FERRY_LOG(debug, "served " << describeMethod(Iid(servedInterface), servedMethod) << " for "
                                 << (caller == nullptr ? std::string("this process")
                                     : caller->principal.empty() ? std::string("an anonymous caller")
                                                                 : caller->principal)
                                 << ": " << (failure ? failure->what() : "ok") << " in " << micros
                                 << " us");
    }
  }

  if (servedInterface != 0) {
    admin::MethodStats::instance().record(servedInterface, servedMethod, failure.has_value(),
                                          Clock::now() - started);
  }
  if (failure) {
    if (!replyTo) {
      stats().onewayFailures.fetch_add(1, std::memory_order_relaxed);
      FERRY_LOG(warn, "oneway call failed: " << failure->what());
      return;
    }
    // Whatever the stub built is dropped: an error response carries no results.
    response = errorResponse(*failure);
  }
  if (replyTo) replyTo->deliver(std::move(response));
}

void ApartmentImpl::checkLevel(const ClientBlanket& caller, Iid interfaceId) const {
  const RuntimeOptions& options = _runtime.options;
  SecurityLevel least = security::effectiveMinimum(options);
  for (const auto& [iid, level] : options.interfaceMinimumLevels) {
    if (iid == interfaceId) least = std::max(least, level);
  }
  if (caller.level >= least) return;
  stats().callsDenied.fetch_add(1, std::memory_order_relaxed);
  FERRY_LOG(info, "a call at level " << toString(caller.level) << " refused: the server asks for "
                                     << toString(least));
  FERRY_FAIL(Errc::accessDenied,
             "access denied: the call's connection runs at level {}, and the server asks for at "
             "least {} (its RuntimeOptions::minimumLevel or interfaceMinimumLevels); configure a "
             "security provider both sides share in RuntimeOptions::security",
             toString(caller.level), toString(least));
}

void ApartmentImpl::checkAccess(const ClientBlanket& caller, Ipid ipid, Iid interfaceId,
                                uint16_t methodId) const {
  const AccessCheck& check = _runtime.options.accessCheck;
  if (!check) return;
  CallTarget target{oxid(), ipid, interfaceId, methodId};
  if (check(caller, target)) return;
  stats().callsDenied.fetch_add(1, std::memory_order_relaxed);
  FERRY_LOG(info, "the access check refused a call of '" << caller.principal << "'");
  FERRY_FAIL(Errc::accessDenied,
             "access denied: the server's access check (RuntimeOptions::accessCheck) refused "
             "principal '{}'",
             caller.principal);
}

std::optional<StubLease> ApartmentImpl::remUnknown() {
  std::lock_guard lock(_remUnknownMutex);
  if (_remUnknownGone) return std::nullopt;
  if (_remUnknown.dispatch == nullptr) _remUnknown = makeRemUnknown(*this);
  return _remUnknown;
}

void ApartmentImpl::tearDown() noexcept {
  // RemUnknown requests arriving from now on (an MTA's pool serves while the apartment tears
  // down) are answered disconnected; one already dispatched holds its own reference.
  StubLease gone;
  {
    std::lock_guard lock(_remUnknownMutex);
    _remUnknownGone = true;
    gone = std::exchange(_remUnknown, StubLease{});
  }
  // Client side first: references this apartment holds on other exporters go back at once.
  _imports.disconnectAll();
  // Server side: every exported object gets its final release here, on the apartment's thread.
  Retired retired = _exports.clear();
  retired.clear();
  // The servant goes last (`gone`), after the objects it reaches.
}

// ---------------------------------------------------------------------------------------------
// StaImpl

StaImpl::StaImpl(RuntimeImpl& runtime, std::string name, Mode mode, uv_loop_t* externalLoop)
    : ApartmentImpl(runtime, ApartmentKind::sta, std::move(name)),
      _mode(mode),
      _loop(externalLoop) {}

StaImpl::~StaImpl() {
  if (_wakeFd >= 0) ::close(_wakeFd);
}

void StaImpl::enter() {
  if (ApartmentImpl* here = threadState().apartment) {
    FERRY_REQUIRE(here->kind() == ApartmentKind::sta, Errc::changedMode,
                  "this thread is in the MTA and cannot also become an STA; attach the loop from "
                  "a thread outside the MTA");
    FERRY_FAIL(Errc::invalidArgument,
               "this thread already is the STA {}, so it cannot attach another loop; attach it "
               "on a thread of its own",
               here->label());
  }
  if (_mode != Mode::attached) {
    _ownLoop = std::make_unique<uv_loop_t>();
    FERRY_UV(uv_loop_init(_ownLoop.get()));
    _loop = _ownLoop.get();
  }
  _wakeFd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int rc = _wakeFd >= 0 ? 0 : uv_translate_sys_error(errno);
  auto watch = std::make_unique<uv_poll_t>();
  if (rc == 0) rc = uv_poll_init(_loop, watch.get(), _wakeFd);
  if (rc == 0) {
    watch->data = this;
    rc = uv_poll_start(watch.get(), UV_READABLE, &StaImpl::onWake);
    if (rc < 0) {
      // Initialized, so the loop frees it.
      uv_close(reinterpret_cast<uv_handle_t*>(watch.release()),
               [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
      if (_mode != Mode::attached) uv_run(_loop, UV_RUN_NOWAIT);
    }
  }
  if (rc < 0) {
    if (_mode != Mode::attached) uv_loop_close(_ownLoop.get());
    FERRY_UV(rc);
  }
  _wakeWatch = watch.release();
  _spin = runtime().options.loopSpin;
  if (_mode != Mode::attached && _spin.count() > 0) {
    // Cannot fail on an initialized loop (libuv's prepare handles allocate nothing).
    _spinPrepare = std::make_unique<uv_prepare_t>();
    uv_prepare_init(_loop, _spinPrepare.get());
    _spinPrepare->data = this;
    uv_prepare_start(_spinPrepare.get(), &StaImpl::onPrepare);
    // It does not keep the loop running; the wake-up watch does, until leave().
    uv_unref(reinterpret_cast<uv_handle_t*>(_spinPrepare.get()));
  }
  _threadId = std::this_thread::get_id();
  threadState().apartment = this;
  {
    std::lock_guard lock(_mutex);
    _accepting = true;
  }
  runtime().registerApartment(shared_from_this());
}

void StaImpl::onWake(uv_poll_t* handle, int, int) {
  auto* self = static_cast<StaImpl*>(handle->data);
  drainEventFd(self->_wakeFd);
  {
    // From here a post() writes the eventfd again: what it queued after this drain is not lost.
    std::lock_guard lock(self->_mutex);
    self->_wakeWritten = false;
  }
  self->drain();
}

bool StaImpl::drain() noexcept {
  for (;;) {
    std::unique_ptr<WorkItem> item;
    {
      std::lock_guard lock(_mutex);
      if (_queue.empty()) break;
      item = std::move(_queue.front());
      _queue.pop_front();
      _queued.store(_queue.size(), std::memory_order_relaxed);
    }
    _ranWork = true;
    runItem(std::move(item));
  }
  bool stop = _stopRequested.load();
  if (stop) uv_stop(_loop);
  return stop;
}

void StaImpl::onPrepare(uv_prepare_t* handle) { static_cast<StaImpl*>(handle->data)->spinForWork(); }

void StaImpl::spinForWork() noexcept {
  // Only after work: an STA that serves nothing, or only timers, sleeps at once.
  if (!std::exchange(_ranWork, false)) return;
  _spinning.store(true);
  auto until = std::chrono::steady_clock::now() + _spin;
  bool stopped = false;
  for (;;) {
    if (_queued.load() != 0) {
      stopped = drain();
      if (stopped) break;
      stats().staPolledWork.fetch_add(1, std::memory_order_relaxed);
      // Work came: poll as long again after it.
      until = std::chrono::steady_clock::now() + _spin;
      continue;
    }
    // A stop writes the eventfd even while this polls: the loop then wakes at once and ends.
    if (_stopRequested.load(std::memory_order_relaxed) ||
        std::chrono::steady_clock::now() >= until) {
      break;
    }
    // Lets a poster on the same core run (on one core, spinning without it only delays the work).
    sched_yield();
  }
  _spinning.store(false);
  // A post() that saw the flag still set did not write the eventfd: its work is run here.
  if (!stopped && _queued.load() != 0) (void)drain();
}

void StaImpl::runItem(std::unique_ptr<WorkItem> item) noexcept {
  if (item->kind == WorkItem::Kind::call && !item->internal && _filter) {
    IncomingCallInfo info{CallType::topLevel, item->interfaceId, item->methodId, item->causality};
    if (!_waitingOn.empty()) {
      info.type = item->causality == _waitingOn.back() ? CallType::nested
                                                       : CallType::topLevelCallPending;
    }
    FilterVerdict verdict = FilterVerdict::handle;
    try {
      verdict = _filter->handleIncomingCall(info);
    } catch (const std::exception& e) {
      FERRY_LOG(error, "the message filter threw (the call is served): " << e.what());
    } catch (...) {
      FERRY_LOG(error, "the message filter threw (the call is served)");
    }
    if (verdict != FilterVerdict::handle) {
      item->reject(verdict == FilterVerdict::reject ? Errc::callRejected : Errc::retryLater);
      return;
    }
  }
  item->run();
}

StaImpl::Wake StaImpl::wakeLocked(bool evenWhileSpinning) noexcept {
  if (_modalDepth > 0) return Wake::modal;
  if (!_accepting || _wakeWritten) return Wake::none;
  if (!evenWhileSpinning && _spinning.load()) return Wake::none;
  _wakeWritten = true;
  return Wake::loop;
}

void StaImpl::wake(Wake how) noexcept {
  // Outside the lock, so the woken thread does not block on it straight away.
  if (how == Wake::modal) _wakeModal.notify_one();
  if (how == Wake::loop) {
    wakeEventFd(_wakeFd);
    stats().staWakeUps.fetch_add(1, std::memory_order_relaxed);
  }
}

bool StaImpl::post(std::unique_ptr<WorkItem>& item) {
  Wake how;
  {
    std::lock_guard lock(_mutex);
    if (!_accepting) return false;
    _queue.push_back(std::move(item));
    _queued.store(_queue.size());  // sequentially consistent: before _spinning is read
    how = wakeLocked();
  }
  wake(how);
  return true;
}

void StaImpl::runLoop() {
  FERRY_REQUIRE(std::this_thread::get_id() == _threadId, Errc::wrongApartment,
                "the loop of STA '{}' was run from another thread; call run() on the thread "
                "that entered it",
                label());
  {
    std::unique_lock lock(_mutex);
    if (!_stopRequested) {
      // Work queued before the loop started (or while nobody ran it) is picked up at once.
      Wake how = _queue.empty() ? Wake::none : wakeLocked();
      lock.unlock();
      wake(how);
      uv_run(_loop, UV_RUN_DEFAULT);
      lock.lock();
    }
    // A stop ends one run(); the next run() turns the loop again.
    _stopRequested = false;
  }
}

void StaImpl::stop() {
  Wake how;
  {
    std::lock_guard lock(_mutex);
    _stopRequested = true;
    how = wakeLocked(true);
  }
  wake(how);
}

void StaImpl::pause(Deadline until) {
  // A call nobody answers, with the pause's end as its deadline: the modal wait serves incoming
  // work until it expires.
  auto nothing = std::make_shared<PendingCall>(shared_from_this(), until, CausalityId());
  wait(*nothing);
}

void StaImpl::wait(PendingCall& call) {
  FERRY_ASSERT(std::this_thread::get_id() == _threadId);
  _waitingOn.push_back(call.causality());
  std::unique_lock lock(_mutex);
  ++_modalDepth;
  while (!call.done()) {
    if (_queue.empty()) {
      if (_wakeModal.wait_until(lock, call.deadline()) == std::cv_status::timeout &&
          _queue.empty() && !call.done()) {
        lock.unlock();
        call.expire();
        lock.lock();
        break;
      }
      continue;
    }
    std::unique_ptr<WorkItem> item = std::move(_queue.front());
    _queue.pop_front();
    _queued.store(_queue.size(), std::memory_order_relaxed);
    lock.unlock();
    runItem(std::move(item));
    lock.lock();
  }
  --_modalDepth;
  _waitingOn.pop_back();
  // Whatever arrived during the wait and is still queued is run by the loop, and a stop asked
  // for meanwhile ends it.
  Wake how = _modalDepth == 0 && (!_queue.empty() || _stopRequested) ? wakeLocked(_stopRequested)
                                                                      : Wake::none;
  lock.unlock();
  wake(how);
}

void StaImpl::leave() {
  FERRY_ASSERT(std::this_thread::get_id() == _threadId);
  if (_nesting > 0) {
    FERRY_LOG(warn, label() << " is left while " << _nesting
                            << " nested enterSta handle(s) still live; destroy them first");
  }
  tearDown();
  std::deque<std::unique_ptr<WorkItem>> leftovers;
  {
    std::lock_guard lock(_mutex);
    _accepting = false;
    leftovers.swap(_queue);
    _queued.store(0, std::memory_order_relaxed);
  }
  markClosed();
  runtime().unregisterApartment(oxid());
  for (auto& item : leftovers) item->abandon();
  leftovers.clear();

  // The eventfd stays open until the destructor: a post() that found the apartment accepting
  // may still write it.
  uv_close(reinterpret_cast<uv_handle_t*>(_wakeWatch),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
  _wakeWatch = nullptr;
  if (_spinPrepare) uv_close(reinterpret_cast<uv_handle_t*>(_spinPrepare.get()), nullptr);
  threadState().apartment = nullptr;
  if (_mode == Mode::attached) return;  // the embedder's loop runs the close callback

  // Our own loop: run the close callbacks, then make sure nothing else was left open.
  uv_run(_loop, UV_RUN_NOWAIT);
  int leaked = 0;
  uv_walk(
      _loop,
      [](uv_handle_t* handle, void* arg) {
        if (uv_is_closing(handle) == 0) {
          ++*static_cast<int*>(arg);
          uv_close(handle, nullptr);
        }
      },
      &leaked);
  if (leaked > 0) {
    stats().leakedLoopHandles.fetch_add(leaked, std::memory_order_relaxed);
    FERRY_LOG(error, leaked << " libuv handle(s) were still open when " << label()
                            << " stopped; closed them");
  }
  uv_run(_loop, UV_RUN_NOWAIT);
  int rc = uv_loop_close(_loop);
  if (rc != 0) {
    stats().leakedLoopHandles.fetch_add(1, std::memory_order_relaxed);
    FERRY_LOG(error, "uv_loop_close failed for " << label() << ": " << uv_err_name(rc));
  }
}

// ---------------------------------------------------------------------------------------------
// MtaImpl

MtaImpl::MtaImpl(RuntimeImpl& runtime, unsigned minThreads, unsigned maxThreads)
    : ApartmentImpl(runtime, ApartmentKind::mta, "mta"),
      _minThreads(std::max(1u, minThreads)),
      _maxThreads(std::max(std::max(1u, minThreads), maxThreads)) {}

MtaImpl::~MtaImpl() { shutdown(); }

void MtaImpl::start() {
  std::lock_guard lock(_mutex);
  while (_threads.size() < _minThreads) spawnLocked();
}

void MtaImpl::spawnLocked() {
  size_t index = _threads.size();
  _threads.emplace_back([this, index] { workerLoop(index); });
}

bool MtaImpl::post(std::unique_ptr<WorkItem>& item) {
  {
    std::lock_guard lock(_mutex);
    if (_stopping) return false;
    _queue.push_back(std::move(item));
    _queued.store(_queue.size());  // sequentially consistent: before _pollerSpinning is read
    _pollerIdleWakes = 0;
    // Every pool thread is busy (typically blocked in an outgoing call): grow, so a call back
    // into the MTA cannot deadlock.
    if (_idle == 0 && _threads.size() < _maxThreads) {
      spawnLocked();
      return true;
    }
    // The polling thread takes the first item: it sees _queued while it spins, or wakes on its
    // eventfd. Further items wake sleeping threads as well.
    if (_pollerFd >= 0 && _queue.size() == 1) {
      if (!_pollerSpinning.load()) {
        wakeEventFd(_pollerFd);
        _pollerWoken = true;
      }
      return true;
    }
  }
  _work.notify_one();
  return true;
}

void MtaImpl::wakeWithLoop(const LoopWake& wake) {
  // The pool threads sleeping on the condition variable are left alone: a pool thread polls
  // once it has run MTA work, and stops after kPollerIdleWakes wake-ups in a row that brought
  // the MTA nothing, so a process whose MTA serves nobody (a client) has no poller taking CPU
  // from its callers on every response (measured: udp null 78-93 us with one, 69-71 without,
  // on 2 cores).
  std::lock_guard lock(_mutex);
  _wake = wake;
}

void MtaImpl::pollLocked(std::unique_lock<std::mutex>& lock) noexcept {
  int own = threadEventFd();
  _pollerFd = own;
  LoopWake wake = _wake;
  lock.unlock();
  // Bounded, so the thread also sees a stop request that came without its eventfd. Whatever
  // post() did meanwhile, the queue is checked again under the lock.
  bool woke = pollWithLoop(wake, own, std::chrono::milliseconds(1000),
                           [this] { return _queued.load() != 0; }, &_pollerSpinning);
  lock.lock();
  _pollerFd = -1;
  if (std::exchange(_pollerWoken, false)) drainEventFd(own);  // post()'s or shutdown()'s wake-up
  // Woken by the loop for nothing of the MTA's (a response to one of this process's calls, a
  // connection's keepalive): a process whose MTA serves nobody stops polling after a few of
  // these, until work is posted again.
  if (woke && _queue.empty()) ++_pollerIdleWakes;
}

void MtaImpl::workerLoop(size_t) noexcept {
  stats().mtaThreads.fetch_add(1, std::memory_order_relaxed);
  threadState().apartment = this;
  std::unique_lock lock(_mutex);
  for (;;) {
    while (_queue.empty() && !_stopping) {
      ++_idle;
      if (_wake && _pollerFd < 0 && _pollerIdleWakes < kPollerIdleWakes && threadEventFd() >= 0) {
        pollLocked(lock);
      } else {
        _work.wait(lock);
      }
      --_idle;
    }
    if (_queue.empty()) break;  // stopping, and nothing left to run
    std::unique_ptr<WorkItem> item = std::move(_queue.front());
    _queue.pop_front();
    _queued.store(_queue.size(), std::memory_order_release);
    lock.unlock();
    item->run();
    item.reset();
    lock.lock();
  }
  threadState().apartment = nullptr;
  stats().mtaThreads.fetch_sub(1, std::memory_order_relaxed);
}

void MtaImpl::wait(PendingCall& call) { call.waitBlocking(); }

size_t MtaImpl::queueDepth() {
  std::lock_guard lock(_mutex);
  return _queue.size();
}

size_t StaImpl::queueDepth() {
  std::lock_guard lock(_mutex);
  return _queue.size();
}

size_t MtaImpl::threadCount() {
  std::lock_guard lock(_mutex);
  return _threads.size();
}

void MtaImpl::shutdown() {
  {
    std::lock_guard lock(_mutex);
    if (_shutDown) return;
    _shutDown = true;
  }
  // Tear down as a member of the MTA: objects are released "in" it.
  ApartmentImpl* previous = std::exchange(threadState().apartment, this);
  tearDown();
  threadState().apartment = previous;

  std::vector<std::thread> threads;
  {
    std::lock_guard lock(_mutex);
    _stopping = true;
    _work.notify_all();
    if (_pollerFd >= 0) {
      wakeEventFd(_pollerFd);
      _pollerWoken = true;
    }
  }
  // Pool threads finish what is queued (releases, replies) and exit. New threads cannot appear:
  // post() refuses work once _stopping is set.
  {
    std::lock_guard lock(_mutex);
    threads.swap(_threads);
  }
  for (auto& t : threads) t.join();
  markClosed();
  runtime().unregisterApartment(oxid());
}

}  // namespace ferry::detail
