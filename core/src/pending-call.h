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

namespace ferry::detail {

class IncomingResponse;
class OutgoingRequest;

class PendingCall final : public ReplySink, public std::enable_shared_from_this<PendingCall> {
public:
  PendingCall(std::shared_ptr<ApartmentImpl> home, Deadline deadline, CausalityId causality);
  ~PendingCall() override;

  void deliver(std::unique_ptr<OutgoingResponse> response) noexcept override;
  void deliverReceived(std::unique_ptr<IncomingResponse> response) noexcept;
  void fail(Errc code, std::string message) noexcept override;

  bool done() const noexcept { return _done.load(std::memory_order_acquire); }
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
  void setCancelHook(std::function<void()> hook);
  void cancel() noexcept;

  // For MTA waiters: blocks until done or the deadline (then fails the call).
  void waitBlocking();

  // Fails the call with deadlineExceeded if it is not done yet.
  void expire() noexcept;

private:
  void complete(std::unique_ptr<IncomingResponse> response, std::optional<Error> error) noexcept;

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
};

// Expires calls nobody waits for (those with a continuation) when their deadline passes: a
// thread that sleeps until the earliest deadline. Owned by the runtime.
class DeadlineWatch {
public:
  DeadlineWatch();
  ~DeadlineWatch();
  void watch(const std::shared_ptr<PendingCall>& call);

private:
  void run() noexcept;

  std::mutex _mutex;
  std::condition_variable _wake;
  std::multimap<Deadline, std::weak_ptr<PendingCall>> _calls;
  bool _stopping = false;
  std::thread _thread;
};

// The deadline for a call starting now (CallTimeout scope, else the runtime's option).
Deadline callDeadline();

// Fills the request's routing fields, sends it and returns the call to wait on. The calling
// thread must be in `home`.
std::shared_ptr<PendingCall> startCall(ApartmentImpl& home, Channel& channel,
                                       std::unique_ptr<OutgoingRequest> request);
// Sends without a response. Any thread.
void sendOneway(Channel& channel, std::unique_ptr<OutgoingRequest> request) noexcept;
// Waits in the calling apartment and returns the response or throws the call's error.
std::unique_ptr<IncomingResponse> finishCall(PendingCall& call);

}  // namespace ferry::detail
