// Channels: a client apartment's route to one exporter.
//
// A channel carries requests to the exporter's apartment and responses back. The in-process
// channel hands the built message to the target apartment's queue (no socket, no copy); the
// transport channels of other processes and hosts serialize it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ferry/marshal.h>

#include "apartment-impl.h"
#include "loop-wake.h"
#include "message.h"
#include "orpc/link.h"

namespace ferry::detail {

class IncomingResponse;
class OutgoingRequest;
class OutgoingResponse;

// Where a response goes. deliver/fail may be called from any thread, at most once in total.
// A response moves as a value: its message lives in a block of its own (message.h), so the
// server builds it on its stack.
class ReplySink {
public:
  virtual ~ReplySink() = default;
  virtual void deliver(OutgoingResponse response) noexcept = 0;
  virtual void fail(Errc code, std::string message) noexcept = 0;
};

// Where a thread waiting for a response may read it off the link itself (the ORPC endpoint, over
// a transport that lends its connections; orpc/network.h receiveNow).
class ReplyReader {
public:
  enum class Outcome {
    taken,   // a response was taken (this call's, or another's of this process)
    waited,  // none: woken through `wakeFd`, timed out, or a frame went to the I/O thread
    cannot,  // not now: wait to be handed the response
  };
  virtual Outcome readReply(orpc::LinkId link, int wakeFd,
                            std::chrono::milliseconds timeout) noexcept = 0;
  // The same, after sending the request frame of call `callId` that the sender held back for the
  // waiting thread (OutboundCall::sendWhenWaiting): `cannot` when it was sent the usual way
  // instead (or the call failed).
  virtual Outcome sendAndRead(orpc::LinkId link, uint64_t callId,
                              const std::shared_ptr<std::vector<uint8_t>>& frame, int wakeFd,
                              std::chrono::milliseconds timeout) noexcept = 0;
  // A held-back request, sent the usual way (the waiting thread cannot read its link).
  virtual void sendHeld(orpc::LinkId link, uint64_t callId,
                        const std::shared_ptr<std::vector<uint8_t>>& frame) noexcept = 0;
  // A held-back request whose call ended before it was sent (canceled, past its deadline).
  virtual void abandon(orpc::LinkId link, uint64_t callId) noexcept = 0;

protected:
  ~ReplyReader() = default;
};

// A call sent through a channel and waiting for its response (PendingCall): what the channels
// and the ORPC layer need of it.
class OutboundCall : public ReplySink {
public:
  // The response as received from another process.
  virtual void deliverReceived(std::unique_ptr<IncomingResponse> response) noexcept = 0;
  // Answered, failed, canceled or past its deadline: nobody waits for a response any more.
  virtual bool done() const noexcept = 0;
  // The channel's way to ask the server to cancel; run once if the caller cancels (any thread).
  virtual void setCancelHook(std::function<void()> hook) = 0;
  // The loop that will hand this call its response, for a caller that polls it (loop-wake.h).
  virtual void wakeWith(const LoopWake& wake) noexcept = 0;
  // The request went out on `link` from the calling thread, which may read the response there
  // itself while it waits (`reader` outlives the call's wait).
  virtual void readWith(ReplyReader& /*reader*/, orpc::LinkId /*link*/) noexcept {}
  // Whether the thread that starts the call waits for it at once, in a way that can send the
  // request itself (a synchronous call from an MTA thread): the sender may then hand the request
  // frame to the call (sendWhenWaiting) for the waiting thread to send as it takes the link's
  // reads, so that the response cannot reach the I/O thread first.
  virtual bool sendsWhenWaiting() const noexcept { return false; }
  virtual void sendWhenWaiting(ReplyReader& /*reader*/, orpc::LinkId /*link*/, uint64_t /*callId*/,
                               std::shared_ptr<std::vector<uint8_t>> /*frame*/) noexcept {}
};

class Channel {
public:
  virtual ~Channel() = default;

  // Sends a request with its absolute deadline; the response goes to `call` (null: oneway).
  // Never throws: a failure to deliver is reported to `call`, or counted for oneway calls.
  virtual void send(std::unique_ptr<OutgoingRequest> request, Deadline deadline,
                    std::shared_ptr<OutboundCall> call) noexcept = 0;

  // The marshal context of the exporter as seen from this channel's importer.
  virtual MarshalContext distance() const noexcept = 0;

  // For logs and the proxy's transport query: "inproc", "pipe:…", "tcp:…".
  virtual std::string describe() const = 0;

  // The transport binding to another process (null in process): where pings go.
  virtual const StringBindingData* binding() const noexcept { return nullptr; }
  // The least level the channel's connection was asked for (a proxy's blanket).
  virtual SecurityLevel blanket() const { return SecurityLevel::none; }
};

// The in-process channel: posts the request into the target apartment's queue.
class InprocChannel final : public Channel {
public:
  explicit InprocChannel(std::weak_ptr<ApartmentImpl> target) : _target(std::move(target)) {}

  void send(std::unique_ptr<OutgoingRequest> request, Deadline deadline,
            std::shared_ptr<OutboundCall> call) noexcept override;
  MarshalContext distance() const noexcept override { return MarshalContext::inproc; }
  std::string describe() const override { return "inproc"; }

private:
  std::weak_ptr<ApartmentImpl> _target;
};

// A request queued to the apartment that serves it: from an in-process caller, or received from
// a transport.
class CallItem final : public WorkItem {
public:
  // `canceled` (may be null): set by the caller's cancel; checked before the call starts, and
  // visible to the servant through ferry::callCanceled() while it runs.
  // `client`: the process the request came from (the default key: this process), whose
  // references RemUnknown requests and the call's results add and release. `caller` (null for a
  // call from this process): who made a call that came from another process; the apartment
  // checks it before the call runs and shows it (ferry::clientBlanket()).
  CallItem(std::shared_ptr<ApartmentImpl> target, IncomingRequest request, Deadline deadline,
           MarshalContext distance, std::shared_ptr<ReplySink> replyTo,
           std::shared_ptr<std::atomic<bool>> canceled = nullptr, orpc::CallerKey client = {},
           std::shared_ptr<const ClientBlanket> caller = nullptr);

  void run() noexcept override;
  void reject(Errc code) noexcept override;
  void abandon() noexcept override;

private:
  std::shared_ptr<ApartmentImpl> _target;
  IncomingRequest _request;
  Deadline _deadline;
  MarshalContext _distance;
  std::shared_ptr<ReplySink> _replyTo;
  std::shared_ptr<std::atomic<bool>> _canceled;
  orpc::CallerKey _client;
  std::shared_ptr<const ClientBlanket> _caller;
};

// Returns the references the capabilities of an undelivered request hold (best effort).
void releaseRequestCaps(OutgoingRequest& request) noexcept;

}  // namespace ferry::detail
