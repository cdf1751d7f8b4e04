#include "pending-call.h"

#include <kj/exception.h>

#include <utility>

#include "interface-registry.h"
#include "log.h"
#include "loop-wake.h"
#include "message.h"
#include "runtime-impl.h"
#include "stats.h"
#include "thread-state.h"

namespace ferry::detail {

namespace {
// The call whose response this thread is reading itself: its completion, on this thread, need
// not write this thread's eventfd.
thread_local const PendingCall* t_reading = nullptr;
}  // namespace

PendingCall::PendingCall(std::shared_ptr<ApartmentImpl> home, Deadline deadline,
                         CausalityId causality)
    : _home(std::move(home)), _deadline(deadline), _causality(causality) {}

PendingCall::~PendingCall() = default;

void PendingCall::deliver(OutgoingResponse response) noexcept {
  // In one process the built message is handed over as it is.
  deliverReceived(std::make_unique<IncomingResponse>(std::move(response.message)));
}

void PendingCall::deliverReceived(std::unique_ptr<IncomingResponse> response) noexcept {
  complete(std::move(response), std::nullopt);
}

void PendingCall::fail(Errc code, std::string message) noexcept {
  try {
    complete(nullptr, Error(code, std::move(message)));
  } catch (...) {
    complete(nullptr, Error(code, ""));
  }
}

void PendingCall::expire() noexcept {
  fail(Errc::deadlineExceeded,
       "no response came before the call's deadline; the server is slow, busy or gone: raise "
       "RuntimeOptions::callTimeout, or hold a ferry::CallTimeout around the call");
}

namespace {

// How a call ended, for its debug line: "ok", or the error a response or the channel reported.
std::string describeOutcome(IncomingResponse* response, const std::optional<Error>& error) {
  if (error) return std::string("failed: ") + error->what();
  try {
    wire::Response::Reader root = response->root();
    if (!root.isError()) return "ok";
    auto info = root.getError();
    uint16_t code = info.getCode();
    std::string name = isKnownErrc(code) ? std::string(errcName(static_cast<Errc>(code)))
                                         : "error " + std::to_string(code);
    return "failed: " + name + ": " + info.getMessage().cStr();
  } catch (const kj::Exception&) {
    return "failed: the response is not a valid Cap'n Proto message";
  }
}

}  // namespace

void PendingCall::complete(std::unique_ptr<IncomingResponse> response,
                           std::optional<Error> error) noexcept {
  std::function<void()> continuation;
  std::shared_ptr<WatchedCalls> watchedBy;
  std::string outcome;
  if (_trace) {
    try {
      outcome = describeOutcome(response.get(), error);
    } catch (...) {
    }
  }
  {
    std::lock_guard lock(_mutex);
    if (_done.load(std::memory_order_relaxed)) return;  // first completion wins (late replies)
    _response = std::move(response);
    _error = std::move(error);
    continuation = std::move(_continuation);
    _done.store(true);  // sequentially consistent: before _waiterSpinning is read (loop-wake.h)
    watchedBy = std::move(_watchedBy);
    if (_waiterFd >= 0 && !_waiterSpinning.load() && t_reading != this) {
      wakeEventFd(_waiterFd);
      _waiterWoken = true;
    }
  }
  if (watchedBy != nullptr) watchedBy->forget(_deadline, _watchId);
  if (_trace) {
    CausalityScope scope(_causality);
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() -
                                                                        _trace->started)
                      .count();
    FERRY_LOG(debug, "call " << describeMethod(_trace->interfaceId, _trace->methodId) << " on "
                             << toString(_trace->ipid) << " over " << _trace->channel << ": "
                             << outcome << " in " << micros << " us");
  }
  _cv.notify_all();
  // An STA waiting in its modal loop wakes on its queue; a continuation runs in the home
  // apartment. An MTA waiter woke on the condition variable above.
  if (_home->kind() == ApartmentKind::sta || continuation) {
    std::unique_ptr<WorkItem> task = makeTask([fn = std::move(continuation)] {
      if (fn) fn();
    });
    if (!_home->post(task)) {
      FERRY_LOG(debug, "a response arrived for an apartment that has shut down");
    }
  }
}

std::unique_ptr<IncomingResponse> PendingCall::takeResponse() {
  std::lock_guard lock(_mutex);
  FERRY_ASSERT(_done.load(std::memory_order_relaxed));
  if (_error) _error->rethrow();
  FERRY_REQUIRE(_response != nullptr, Errc::invalidArgument,
                "the call's response was already taken; a call's result is read once");
  try {
    wire::Response::Reader root = _response->root();
    if (root.isError()) throwReceivedError(root.getError());
  } catch (const kj::Exception& e) {
    FERRY_FAIL(Errc::protocolError,
               "the response is not a valid Cap'n Proto message ({}); the peer does not follow the "
               "protocol",
               kjReason(e.getDescription().cStr()));
  }
  return std::move(_response);
}

std::unique_ptr<IncomingResponse> PendingCall::takeRaw() {
  std::lock_guard lock(_mutex);
  FERRY_ASSERT(_done.load(std::memory_order_relaxed));
  if (_error) throw *_error;
  FERRY_REQUIRE(_response != nullptr, Errc::invalidArgument,
                "the call's reply was already taken; a call's result is read once");
  return std::move(_response);
}

void PendingCall::throwIfFailed() {
  std::lock_guard lock(_mutex);
  if (_error) throw *_error;
}

void PendingCall::setContinuation(std::function<void()> fn) {
  {
    std::lock_guard lock(_mutex);
    if (!_done.load(std::memory_order_relaxed)) {
      _continuation = std::move(fn);
      // Nobody waits for this call: the watch fails it at its deadline.
      if (RuntimeImpl* runtime = tryCurrentRuntime()) {
        DeadlineWatch& deadlines = runtime->deadlines();
        _watchId = deadlines.watch(shared_from_this());
        _watchedBy = deadlines.watched();
      }
      return;
    }
  }
  std::unique_ptr<WorkItem> task = makeTask(std::move(fn));
  FERRY_REQUIRE(_home->post(task), Errc::shuttingDown,
                "cannot deliver the call's result to apartment '{}': it has shut down",
                _home->label());
}

void PendingCall::setCancelHook(std::function<void()> hook) {
  bool runNow;
  {
    std::lock_guard lock(_mutex);
    _cancelHook = std::move(hook);
    runNow = _cancelRequested && !_done.load(std::memory_order_relaxed);
  }
  // cancel() came before the channel could attach its hook.
  if (runNow) cancel();
}

void PendingCall::cancel() noexcept {
  std::function<void()> hook;
  {
    std::lock_guard lock(_mutex);
    _cancelRequested = true;
    if (_done.load(std::memory_order_relaxed)) return;
    hook = std::move(_cancelHook);
    _cancelHook = nullptr;
  }
  if (hook) {
    try {
      hook();
    } catch (const std::exception& e) {
      FERRY_LOG(warn, "cancel not sent: " << e.what());
    }
  }
}

void PendingCall::waitBlocking() {
  if (_reader != nullptr) waitReading();
  if (_wake && !_done.load()) waitPolling();
  std::unique_lock lock(_mutex);
  if (!_cv.wait_until(lock, _deadline, [this] { return _done.load(std::memory_order_relaxed); })) {
    lock.unlock();
    expire();
  }
}

void PendingCall::releaseHeld() noexcept {
  if (!_heldFrame) return;
  std::shared_ptr<std::vector<uint8_t>> frame = std::move(_heldFrame);
  // A request past its deadline is not sent at all: the caller hears deadlineExceeded next, and
  // the server must not run a call nobody waits for.
  if (_done.load() || Clock::now() >= _deadline) {
    _reader->abandon(_readLink, _heldCallId);
  } else {
    _reader->sendHeld(_readLink, _heldCallId, frame);
  }
}

void PendingCall::waitReading() noexcept {
  int own = threadEventFd();
  if (own < 0) return releaseHeld();
  bool done;
  {
    std::lock_guard lock(_mutex);
    done = _done.load(std::memory_order_relaxed);
    // Completed by the I/O thread instead (the lease was refused, or another thread read it), the
    // call wakes this thread through `own`, which the read polls too.
    if (!done) _waiterFd = own;
  }
  if (done) return releaseHeld();  // canceled or failed before its request went out
  t_reading = this;
  while (!_done.load()) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(_deadline - Clock::now());
    if (left.count() <= 0) break;
    ReplyReader::Outcome outcome;
    if (_heldFrame) {
      // Sent now, as this thread takes the link's reads (or the usual way, when it cannot).
      std::shared_ptr<std::vector<uint8_t>> frame = std::move(_heldFrame);
      outcome = _reader->sendAndRead(_readLink, _heldCallId, frame, own, left);
    } else {
      outcome = _reader->readReply(_readLink, own, left);
    }
    if (outcome == ReplyReader::Outcome::cannot) break;
    if (outcome == ReplyReader::Outcome::waited && !_done.load()) {
      // Woken for nothing this call needs (a stale write; the hub stopping), or a frame went to
      // the I/O thread: read on, after taking the write so the next poll does not return at once.
      std::lock_guard lock(_mutex);
      if (!_done.load(std::memory_order_relaxed)) {
        drainEventFd(own);
        _waiterWoken = false;
      }
    }
  }
  t_reading = nullptr;
  releaseHeld();  // past its deadline before it was sent
  bool woken = false;
  {
    std::lock_guard lock(_mutex);
    _waiterFd = -1;
    woken = std::exchange(_waiterWoken, false);
  }
  if (woken) drainEventFd(own);
}

void PendingCall::waitPolling() noexcept {
  // At most two pollers per process: every poller wakes on every event of the loop.
  static std::atomic<int> pollers{0};
  if (pollers.fetch_add(1, std::memory_order_relaxed) >= 2) {
    pollers.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  int own = threadEventFd();
  {
    std::lock_guard lock(_mutex);
    _waiterFd = _done.load(std::memory_order_relaxed) ? -1 : own;
  }
  // A loop event may be another one (this thread's own request, posted to the loop, wakes it
  // first), so a few rounds; then the condition variable.
  auto isDone = [this] { return _done.load(); };
  for (int round = 0; own >= 0 && round < 8 && !isDone(); ++round) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(_deadline - Clock::now());
    if (left.count() <= 0 || !pollWithLoop(_wake, own, left, isDone, &_waiterSpinning)) break;
  }
  bool woken = false;
  {
    std::lock_guard lock(_mutex);
    _waiterFd = -1;
    woken = std::exchange(_waiterWoken, false);
  }
  if (woken) drainEventFd(own);  // the completion's wake-up
  pollers.fetch_sub(1, std::memory_order_relaxed);
}

DeadlineWatch::DeadlineWatch() : _thread([this] { run(); }) {}

DeadlineWatch::~DeadlineWatch() {
  {
    std::lock_guard lock(_watched->mutex);
    _stopping = true;
  }
  _wake.notify_one();
  _thread.join();
  // Calls still running when the runtime goes are no longer watched (they fail with it).
  std::lock_guard lock(_watched->mutex);
  stats().watchedCalls.fetch_sub(static_cast<int64_t>(_watched->calls.size()), std::memory_order_relaxed);
  _watched->calls.clear();
}

void WatchedCalls::forget(Deadline deadline, uint64_t id) noexcept {
  std::lock_guard lock(mutex);
  if (calls.erase({deadline, id}) != 0) stats().watchedCalls.fetch_sub(1, std::memory_order_relaxed);
}

uint64_t DeadlineWatch::watch(const std::shared_ptr<PendingCall>& call) {
  bool earliest;
  uint64_t id;
  {
    std::lock_guard lock(_watched->mutex);
    id = ++_watched->lastId;
    auto it = _watched->calls.emplace(std::pair(call->deadline(), id), call).first;
    earliest = it == _watched->calls.begin();
    stats().watchedCalls.fetch_add(1, std::memory_order_relaxed);
  }
  if (earliest) _wake.notify_one();
  return id;
}

void DeadlineWatch::run() noexcept {
  std::unique_lock lock(_watched->mutex);
  auto& calls = _watched->calls;
  while (!_stopping) {
    if (calls.empty()) {
      _wake.wait(lock);
      continue;
    }
    auto first = calls.begin();
    // A copy: completed calls leave the map while this thread waits.
    Deadline earliest = first->first.first;
    if (Clock::now() < earliest) {
      _wake.wait_until(lock, earliest);
      continue;
    }
    std::shared_ptr<PendingCall> call = first->second.lock();
    calls.erase(first);
    stats().watchedCalls.fetch_sub(1, std::memory_order_relaxed);
    if (call == nullptr) continue;
    lock.unlock();
    call->expire();  // a no-op when the call completed meanwhile
    call.reset();
    lock.lock();
  }
}

namespace {

// The deadline of a call that starts at `now`.
Deadline deadlineFrom(Clock::time_point now) {
  std::optional<std::chrono::milliseconds> scoped = threadState().callTimeout;
  return now + (scoped ? *scoped : currentRuntime().options.callTimeout);
}

}  // namespace

Deadline callDeadline() { return deadlineFrom(Clock::now()); }

namespace {

// `now` is the clock read the deadline was taken from: the request carries what is left of it.
void stampRequest(wire::Request::Builder root, Deadline deadline, Clock::time_point now) {
  CausalityId causality = threadState().causality;
  if (!causality) causality = newCausalityId();
  auto c = root.initCausality();
  c.setHi(causality.hi);
  c.setLo(causality.lo);
  auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now);
  root.setTimeoutMicros(static_cast<uint64_t>(std::max<int64_t>(1, left.count())));
}

}  // namespace

std::shared_ptr<PendingCall> startCall(ApartmentImpl& home, Channel& channel,
                                       std::unique_ptr<OutgoingRequest> request,
                                       bool waitsAtOnce) {
  const Clock::time_point now = Clock::now();
  Deadline deadline = deadlineFrom(now);
  stampRequest(request->root, deadline, now);
  auto c = request->root.getCausality();
  auto call = std::make_shared<PendingCall>(home.shared_from_this(), deadline,
                                            CausalityId(c.getHi(), c.getLo()));
  if (logEnabled(LogLevel::debug)) {
    auto root = request->root.asReader();
    auto trace = std::make_unique<PendingCall::Trace>();
    trace->interfaceId = Iid(root.getInterfaceId());
    trace->methodId = root.getMethodId();
    trace->ipid = Ipid(root.getIpid().getHi(), root.getIpid().getLo());
    trace->channel = channel.describe();
    trace->started = now;
    call->setTrace(std::move(trace));
  }
  // Only an MTA thread waits in waitBlocking, which can send the request itself.
  if (waitsAtOnce && home.kind() == ApartmentKind::mta) call->waitsAtOnce();
  channel.send(std::move(request), deadline, call);
  return call;
}

void sendOneway(Channel& channel, std::unique_ptr<OutgoingRequest> request) noexcept {
  try {
    const Clock::time_point now = Clock::now();
    Deadline deadline = deadlineFrom(now);
    stampRequest(request->root, deadline, now);
    request->root.setFlags(request->root.getFlags() | kRequestFlagOneway);
    channel.send(std::move(request), deadline, nullptr);
  } catch (const std::exception& e) {
    FERRY_LOG(warn, "oneway call not sent: " << e.what());
  }
}

std::unique_ptr<IncomingResponse> finishCall(PendingCall& call) {
  // A call whose request waits for this thread (sendsWhenWaiting) goes through the wait even when
  // it is done, canceled before it was sent: the wait gives the request up.
  if (!call.done() || call.holdsRequest()) call.home().wait(call);
  return call.takeResponse();
}

}  // namespace ferry::detail
