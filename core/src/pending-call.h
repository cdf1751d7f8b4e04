// A call waiting for its response, on the client side.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <thread>
#include <memory>
#include <mutex>
#include <optional>

#include <ferry/error.h>

#include "apartment-impl.h"
#include "channel.h"
#include "loop-wake.h"

namespace ferry::detail {

class IncomingResponse;
class OutgoingRequest;
struct WatchedCalls;

class PendingCall final : public OutboundCall, public std::enable_shared_from_this<PendingCall> {
public:
  PendingCall(std::shared_ptr<ApartmentImpl> home, Deadline deadline, CausalityId causality);
  ~PendingCall() override;

  void deliver(OutgoingResponse response) noexcept override;
  void deliverReceived(std::unique_ptr<IncomingResponse> response) noexcept override;
  void fail(Errc code, std::string message) noexcept override;

  bool done() const noexcept override { return _done.load(std::memory_order_acquire); }
  Deadline deadline() const noexcept { return _deadline; }
  CausalityId causality() const noexcept { return _causality; }
  ApartmentImpl& home() const noexcept { return *_home; }

  // After done(): the response; throws the call's error (an error response included).
  std::unique_ptr<IncomingResponse> takeResponse();
  // After done(): the reply as received, without reading it as an ORPC response; throws the
  // call's local error.
  std::unique_ptr<IncomingResponse> takeRaw();
  // After done(): throws the call's local error (deadline, delivery), if any.
  void throwIfFailed();

  // Runs `fn` in the home apartment once the call is done (posted; never inline).
  void setContinuation(std::function<void()> fn);

  // The channel's way to ask the server to cancel; run once by cancel() (any thread).
  void setCancelHook(std::function<void()> hook) override;
  void cancel() noexcept;

  // The loop that will hand this call its response: waitBlocking() wakes with it (loop-wake.h).
  void wakeWith(const LoopWake& wake) noexcept override { _wake = wake; }
  // The link the request went out on, where the waiting thread may read the response itself.
  // Set by the thread that sent the request, which is the one that waits.
  void readWith(ReplyReader& reader, orpc::LinkId link) noexcept override {
    _reader = &reader;
    _readLink = link;
  }
  bool sendsWhenWaiting() const noexcept override { return _sendsWhenWaiting; }
  void sendWhenWaiting(ReplyReader& reader, orpc::LinkId link, uint64_t callId,
                       std::shared_ptr<std::vector<uint8_t>> frame) noexcept override {
    readWith(reader, link);
    _heldCallId = callId;
    _heldFrame = std::move(frame);
  }
  // Set by startCall before the request is sent: the starting thread waits at once, in
  // waitBlocking (sendsWhenWaiting).
  void waitsAtOnce() noexcept { _sendsWhenWaiting = true; }
  // The sender held the request back for the waiting thread, which has not sent it yet.
  bool holdsRequest() const noexcept { return _heldFrame != nullptr; }

  // For MTA waiters: blocks until done or the deadline (then fails the call).
  void waitBlocking();

  // Fails the call with deadlineExceeded if it is not done yet.
  void expire() noexcept;

  // At debug level, what the line logged when the call completes names. Set before the request
  // is sent, never after.
  struct Trace {
    Iid interfaceId;
    uint16_t methodId = 0;
    Ipid ipid;
    std::string channel;
    Clock::time_point started;
  };
  void setTrace(std::unique_ptr<Trace> trace) noexcept { _trace = std::move(trace); }

private:
  void complete(std::unique_ptr<IncomingResponse> response, std::optional<Error> error) noexcept;
  // waitBlocking()'s first part, for a call whose response the waiting thread may read itself
  // (readWith); it ends when the link cannot be read (then the thread waits to be handed it).
  void waitReading() noexcept;
  // waitBlocking()'s next part, for a call with a loop to wake with (RuntimeOptions::loopSpin).
  void waitPolling() noexcept;

  const std::shared_ptr<ApartmentImpl> _home;
  const Deadline _deadline;
  const CausalityId _causality;
  std::mutex _mutex;
  std::condition_variable _cv;
  std::atomic<bool> _done{false};
  std::unique_ptr<IncomingResponse> _response;
  std::optional<Error> _error;
  std::function<void()> _continuation;
  std::function<void()> _cancelHook;
  bool _cancelRequested = false;
  LoopWake _wake;      // set before the request is sent
  ReplyReader* _reader = nullptr;  // set after, by the waiting thread itself
  orpc::LinkId _readLink;
  bool _sendsWhenWaiting = false;
  // The request frame the sender held back for the waiting thread (sendWhenWaiting), until sent.
  std::shared_ptr<std::vector<uint8_t>> _heldFrame;
  uint64_t _heldCallId = 0;
  // Sends the held-back request the usual way, or gives it up for a call that already ended.
  void releaseHeld() noexcept;
  int _waiterFd = -1;  // guarded by _mutex: the eventfd of the thread polling in waitBlocking()
  bool _waiterWoken = false;  // guarded by _mutex: complete() wrote _waiterFd
  // The polling thread spins (loop-wake.h): it sees _done without the eventfd write.
  std::atomic<bool> _waiterSpinning{false};
  // Set while a DeadlineWatch holds this call (guarded by _mutex): completion takes it out.
  std::shared_ptr<WatchedCalls> _watchedBy;
  uint64_t _watchId = 0;
  std::unique_ptr<Trace> _trace;  // null unless the log level was debug when the call started
};

// The calls a DeadlineWatch holds, by deadline. Shared with the calls themselves, which leave it
// when they complete, so it holds only calls that are still running (its size is bounded by the
// calls in flight, not by the call rate times the timeout).
struct WatchedCalls {
  std::mutex mutex;
  std::map<std::pair<Deadline, uint64_t>, std::weak_ptr<PendingCall>> calls;
  uint64_t lastId = 0;

  void forget(Deadline deadline, uint64_t id) noexcept;
};

// Expires calls nobody waits for (those with a continuation) when their deadline passes: a
// thread that sleeps until the earliest deadline. Owned by the runtime.
class DeadlineWatch {
public:
  DeadlineWatch();
  ~DeadlineWatch();
  // Holds `call` until its deadline (then fails it) or until it completes. Returns the id it
  // is held by, for WatchedCalls::forget.
  uint64_t watch(const std::shared_ptr<PendingCall>& call);
  const std::shared_ptr<WatchedCalls>& watched() const noexcept { return _watched; }

private:
  void run() noexcept;

  const std::shared_ptr<WatchedCalls> _watched = std::make_shared<WatchedCalls>();
  std::condition_variable _wake;  // with _watched->mutex
  bool _stopping = false;         // guarded by _watched->mutex
  std::thread _thread;
};

// The deadline for a call starting now (CallTimeout scope, else the runtime's option).
Deadline callDeadline();

// Fills the request's routing fields, sends it and returns the call to wait on. The calling
// thread must be in `home`.
// `waitsAtOnce`: the calling thread calls finishCall next, with nothing in between (a synchronous
// call), so that the request may wait for it to be sent (OutboundCall::sendsWhenWaiting).
std::shared_ptr<PendingCall> startCall(ApartmentImpl& home, Channel& channel,
                                       std::unique_ptr<OutgoingRequest> request,
                                       bool waitsAtOnce = false);
// Sends without a response. Any thread.
void sendOneway(Channel& channel, std::unique_ptr<OutgoingRequest> request) noexcept;
// Waits in the calling apartment and returns the response or throws the call's error.
std::unique_ptr<IncomingResponse> finishCall(PendingCall& call);

}  // namespace ferry::detail
