#include "endpoint.h"

#include <array>

#include <openssl/sha.h>

#include <kj/exception.h>

#include "../apartment-impl.h"
#include "../error-impl.h"
#include "../ids-impl.h"
#include "../log.h"
#include "../message.h"
#include "../runtime-impl.h"
#include "../stats.h"
#include "frame.h"
#include "ping.capnp.h"

namespace ferry::detail::orpc {

namespace {

// A served call's response, sent back on the link it came from; the flag a cancel of the call
// sets; and the response's frame. One allocation: the CallItem holds the sink, the reply cache
// the flag while the call runs and the frame once it is done.
class NetworkReplySink final : public ReplySink,
                               public std::enable_shared_from_this<NetworkReplySink> {
public:
  NetworkReplySink(Endpoint& endpoint, LinkId link, CallerKey caller, uint64_t callId)
      : _endpoint(endpoint), _link(link), _caller(caller), _callId(callId) {}

  // The flag, sharing the sink's ownership.
  static std::shared_ptr<std::atomic<bool>> canceledFlag(
      const std::shared_ptr<NetworkReplySink>& sink) noexcept {
    return std::shared_ptr<std::atomic<bool>>(sink, &sink->_canceled);
  }

  void deliver(OutgoingResponse response) noexcept override {
    try {
      _frame = encodeFrame(FrameKind::response, _callId, Oxid(), response.message.builder());
    } catch (const std::exception& e) {
      FERRY_LOG(warn, "response not sent: " << e.what());
      return;
    }
    std::shared_ptr<const std::vector<uint8_t>> frame(shared_from_this(), &_frame);
    _endpoint.sendResponse(_link, _caller, _callId, std::move(frame));
  }

  void fail(Errc code, std::string message) noexcept override {
    try {
      deliver(errorResponse(code, message));
    } catch (const std::exception& e) {
      FERRY_LOG(error, "could not send an error response: " << e.what());
    }
  }

private:
  std::atomic<bool> _canceled{false};
  std::vector<uint8_t> _frame;  // written once, by deliver()
  Endpoint& _endpoint;
  LinkId _link;
  CallerKey _caller;
  uint64_t _callId;
};

ReplyCache::Limits replyLimits(const RuntimeOptions& options) {
  ReplyCache::Limits limits;
  limits.perCaller = options.replyCachePerCaller;
  limits.perLink = options.replyCachePerConnection;
  limits.retention = options.replyRetention;
  return limits;
}

}  // namespace

Endpoint::Endpoint(RuntimeImpl& runtime, Network& network)
    : _runtime(runtime), _network(network), _callerToken(randomNonZero64()),
      _replies(replyLimits(runtime.options)),
      _resolver(runtime, network),
      _pings(runtime.options.pingPeriod, runtime.processId, _callerToken),
      _pingServer(runtime.options.pingPeriod) {}

Endpoint::~Endpoint() { _calls.failAll(Errc::shuttingDown, "the runtime is shutting down"); }

std::shared_ptr<Channel> Endpoint::channel(const StringBindingData& binding, Oxid oxid,
                                           MarshalContext distance) {
  return std::make_shared<RemoteChannel>(*this, binding, oxid, distance);
}

// ---- links -------------------------------------------------------------------------------------

void Endpoint::opened(LinkId link, const LinkInfo& info) {
  auto blanket = std::make_shared<ClientBlanket>();
  blanket->provider = info.provider;
  blanket->principal = info.principal;
  blanket->level = info.level;
  _peers[link] = Peer{info, CallerKey{}, CallerKey{}, std::move(blanket)};
  // The binding answers again.
  if (info.outbound && !_silent.empty()) _silent.erase(bindingText(info.binding));
  _resolver.opened(link, info);
}

std::vector<Endpoint::LinkView> Endpoint::links() const {
  std::vector<LinkView> out;
  out.reserve(_peers.size());
  auto calls = _calls.sizeByLink();
  for (const auto& [link, peer] : _peers) {
    auto inFlight = calls.find(link);
    out.push_back(LinkView{peer.info, peer.caller.process, link,
                           inFlight == calls.end() ? 0 : inFlight->second});
  }
  return out;
}

void Endpoint::ended(LinkId link, const LinkInfo& info, LinkEnd how, const std::string& why) {
  CallerKey caller;
  if (auto it = _peers.find(link); it != _peers.end()) {
    caller = it->second.caller;
    _peers.erase(it);
  }
  // The calls it brought. A clean close means the caller went away: what still runs is canceled
  // (nobody waits for it) and nothing is kept. A lost or silent link leaves them to finish for the
  // caller's resent copies.
  if (how != LinkEnd::lost && how != LinkEnd::silent && caller.process != 0) {
    _replies.dropLink(caller, link);
  }
  // The calls that went out on it. One that could not be sent failed; a sent one may or may not
  // have run, so it goes out again on a new link, where the exporter's reply cache answers it if
  // it did.
  // A silent peer is taken for unreachable: its calls fail at once rather than wait out a
  // connect on a new link, and so do new calls, until a link to it opens again.
  Errc code = how == LinkEnd::neverOpened || how == LinkEnd::shutdown ? Errc::unavailable
                                                                      : Errc::outcomeUnknown;
  bool again = code == Errc::outcomeUnknown && info.outbound && how != LinkEnd::silent;
  if (info.outbound && (how == LinkEnd::silent || !_silent.empty())) {
    std::string key = bindingText(info.binding);
    if (how == LinkEnd::silent) {
      _silent[key] = Silent{Clock::now(), why, LinkId{}};
    } else if (auto it = _silent.find(key); it != _silent.end() && it->second.attempt == link) {
      it->second.attempt = LinkId{};
    }
  }
  auto calls = _calls.dropLink(link, code, why, again);
  _resolver.ended(link, info, how, why);
  if (!calls.empty()) resend(std::move(calls), why);
}

void Endpoint::sendFailed(LinkId link, uint64_t callId, const std::string& why) {
  if (auto entry = _calls.take(callId, link)) {
    // A copy sent before may have run.
    entry->call->fail(entry->resends > 0 ? Errc::outcomeUnknown : Errc::unavailable, why);
  } else if (!_resolver.sendFailed(link, callId, why)) {
    FERRY_LOG(warn, why);
  }
}

void Endpoint::tick(std::chrono::steady_clock::time_point now) {
  _replies.expire(now);
  _resolver.tick(now);
  // Distributed GC, from the I/O thread: this process's pings, and its silent clients collected.
  for (auto& ping : _pings.due(now)) {
    std::string why;
    std::optional<LinkId> link = _network.linkTo(ping.binding, &why);
    if (!link) {
      FERRY_LOG(debug, "ping not sent to " << bindingText(ping.binding) << ": " << why);
      continue;
    }
    _network.send(*link, std::move(ping.frame));
  }
  _pingServer.collect(_runtime, _pingServer.expire(now));
}

void Endpoint::reject(LinkId link, const std::string& why) { _network.reject(link, why); }

void Endpoint::received(LinkId link, const uint8_t* data, size_t size) {
  Frame frame;
  try {
    frame = decodeFrame(data, size);
  } catch (const Error& e) {
    return reject(link, e.message());
  }
  Peer& peer = _peers[link];
  const FrameHeader& header = frame.header;
  switch (header.kind) {
    case FrameKind::cancel:
      // Only the link the response goes to may cancel.
      if (peer.caller.process != 0) _replies.cancel(peer.caller, header.callId, link);
      return;
    case FrameKind::request:
      return serveRequest(link, peer, header.callId, header.oxid,
                          (header.flags & kFrameFlagResent) != 0, std::move(*frame.message));
    case FrameKind::response:
      return serveResponse(link, header.callId, std::move(*frame.message));
    case FrameKind::ping:
      return servePing(link, peer, header.callId, std::move(*frame.message));
    case FrameKind::pingReply:
      return servePingReply(header.callId, std::move(*frame.message));
    case FrameKind::bind:
      // The bind layer takes the exchange's frames; one that reaches here came out of turn.
      return reject(link, "a bind frame after the connection's first frames");
    case FrameKind::resolve:
    case FrameKind::resolveReply:
    case FrameKind::registration:
    case FrameKind::withdrawal:
    case FrameKind::names:
    case FrameKind::namesReply:
    case FrameKind::nameWithdrawal:
    case FrameKind::classObject:
    case FrameKind::activation:
    case FrameKind::activationReply:
    case FrameKind::adminRegistration:
      return _resolver.received(link, peer.info, header, std::move(*frame.message));
  }
}

// ---- serving -----------------------------------------------------------------------------------

CallerKey callerKeyOf(uint64_t process, uint64_t token, const ClientBlanket* blanket) {
  if (process == 0 || blanket == nullptr || blanket->principal.empty()) {
    return CallerKey{process, token};
  }
  // Secure references: the token is bound to the principal by a one-way function, so no token
  // another principal can name maps onto this one's key.
  std::string input(8, '\0');
  for (int i = 0; i < 8; ++i) input[i] = static_cast<char>(token >> (8 * i));
  input += blanket->provider;
  input += '\0';
  input += blanket->principal;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  uint64_t bound = 0;
  for (int i = 0; i < 8; ++i) bound |= uint64_t{digest[i]} << (8 * i);
  return CallerKey{process, bound};
}

CallerKey Endpoint::callerOf(const Peer& peer, uint64_t process, uint64_t token) {
  if (peer.caller.process != 0 && peer.named == CallerKey{process, token}) return peer.caller;
  return callerKeyOf(process, token, peer.blanket.get());
}

void Endpoint::serveRequest(LinkId link, Peer& peer, uint64_t callId, Oxid oxid, bool resent,
                            OrpcMessage message) {
  IncomingRequest request(std::move(message));
  uint16_t flags;
  uint64_t timeoutMicros;
  CallerKey named;  // as the request names it
  CallerKey callerId;
  std::array<uint64_t, CallTable::kMaxAcksPerRequest> acknowledged;
  size_t acknowledgedCount = 0;
  try {
    auto root = request.root();
    flags = root.getFlags();
    timeoutMicros = root.getTimeoutMicros();
    named = CallerKey{root.getCaller(), root.getCallerToken()};
    callerId = callerOf(peer, named.process, named.token);
    if (root.hasAcknowledged()) {
      auto list = root.getAcknowledged();
      if (list.size() > CallTable::kMaxAcksPerRequest) {
        return reject(link, "a request acknowledges more than 64 calls");
      }
      for (uint64_t id : list) acknowledged[acknowledgedCount++] = id;
    }
  } catch (const kj::Exception& e) {
    return reject(link, "bad request: " + std::string(kjReason(e.getDescription().cStr())));
  }
  bool oneway = (flags & kRequestFlagOneway) != 0;
  if (oneway != (callId == 0)) return reject(link, "call id and oneway flag disagree");
  // Every request between processes names its caller: whose reply cache entries and whose
  // references (export-table.h) it concerns.
  if (callerId.process == 0) return reject(link, "a request without its caller");
  if (peer.caller.process == 0) {
    peer.caller = callerId;
    peer.named = named;
  }
  if (peer.caller != callerId) return reject(link, "requests of two callers on one connection");
  // One clock read serves the request's arrival: the caller heard, the reply cache, the deadline.
  const Clock::time_point now = Clock::now();
  _pingServer.heard(callerId, now);

  // The reply cache: a call that arrived before never runs again.
  std::shared_ptr<ReplySink> replyTo;
  std::shared_ptr<std::atomic<bool>> canceled;
  if (!oneway) {
    auto sink = std::make_shared<NetworkReplySink>(*this, link, callerId, callId);
    auto admission =
        _replies.admit(callerId, callId, link, std::span(acknowledged.data(), acknowledgedCount),
                       now, NetworkReplySink::canceledFlag(sink));
    using Kind = ReplyCache::Admission::Kind;
    switch (admission.kind) {
      case Kind::running:
        FERRY_LOG(debug, "call " << callId << " arrived again while it runs");
        return;
      case Kind::replay:
        FERRY_LOG(debug, "call " << callId << " arrived again; its response is sent again");
        return sendAnyThread(link, std::move(admission.reply));
      case Kind::refuse: {
        // Not through a reply sink: that would record the refusal as the call's response.
        auto response = errorResponse(admission.code, admission.message);
        return sendAnyThread(link, std::make_shared<const std::vector<uint8_t>>(encodeFrame(
                                       FrameKind::response, callId, Oxid(),
                                       response.message.builder())));
      }
      case Kind::run:
        canceled = NetworkReplySink::canceledFlag(sink);
        replyTo = std::move(sink);
        break;
    }
  }

  std::shared_ptr<ApartmentImpl> apartment = _runtime.tryFindApartment(oxid);
  if (apartment == nullptr) {
    if (replyTo) {
      // A resent copy: the process that had the apartment may have run the call before it went.
      replyTo->fail(resent ? Errc::outcomeUnknown : Errc::disconnected,
                    std::string(kNoSuchObject) +
                        (resent ? " (the call was sent before, to an exporter that is gone)" : ""));
    }
    return;
  }
  // The caller's deadline, relative, capped by this process's own call timeout.
  auto cap = std::chrono::duration_cast<std::chrono::microseconds>(_runtime.options.callTimeout);
  auto left = timeoutMicros == 0 ? cap
                                 : std::min(cap, std::chrono::microseconds(static_cast<int64_t>(
                                                     std::min<uint64_t>(timeoutMicros, INT64_MAX / 2))));
  std::unique_ptr<WorkItem> item = std::make_unique<CallItem>(
      apartment, std::move(request), now + left, peer.info.distance, replyTo, canceled,
      callerId, peer.blanket ? peer.blanket : std::make_shared<const ClientBlanket>());
  if (!apartment->post(item)) item->abandon();
}

void Endpoint::servePing(LinkId link, Peer& peer, uint64_t setName, OrpcMessage message) {
  constexpr unsigned kMaxListEntries = 65536;  // ping.capnp
  dgc::PingServer::Reply reply;
  try {
    auto ping = message.root<wire::Ping>();
    CallerKey named{ping.getCaller(), ping.getCallerToken()};
    CallerKey client = callerOf(peer, named.process, named.token);
    if (client.process == 0) return reject(link, "a ping without its caller");
    if (peer.caller.process == 0) {
      peer.caller = client;
      peer.named = named;
    }
    if (peer.caller != client) return reject(link, "frames of two callers on one connection");
    auto added = ping.getAdded();
    auto removed = ping.getRemoved();
    if (added.size() > kMaxListEntries || removed.size() > kMaxListEntries) {
      return reject(link, "a ping adds or removes more than 65536 objects");
    }
    std::vector<uint64_t> adds;
    std::vector<uint64_t> removes;
    for (uint64_t oid : added) adds.push_back(oid);
    for (uint64_t oid : removed) removes.push_back(oid);
    reply = _pingServer.ping(client, ping.getSetId(), ping.getSequence(), adds, removes,
                             Clock::now());
  } catch (const kj::Exception& e) {
    return reject(link, "bad ping: " + std::string(kjReason(e.getDescription().cStr())));
  }
  capnp::MallocMessageBuilder out;
  auto root = out.initRoot<wire::PingReply>();
  root.setCode(reply.code);
  root.setSetId(reply.setId);
  root.setSequence(reply.sequence);
  _network.send(link, encodeFrame(FrameKind::pingReply, setName, Oxid(), out));
}

void Endpoint::servePingReply(uint64_t setName, OrpcMessage message) {
  try {
    auto reply = message.root<wire::PingReply>();
    _pings.answered(setName, reply.getCode(), reply.getSetId(), reply.getSequence());
  } catch (const kj::Exception& e) {
    stats().protocolErrors.fetch_add(1, std::memory_order_relaxed);
    FERRY_LOG(debug, "bad ping reply: " << kjReason(e.getDescription().cStr()));
  }
}

void Endpoint::serveResponse(LinkId link, uint64_t callId, OrpcMessage message) {
  std::shared_ptr<OutboundCall> call = _calls.answer(callId, link);
  if (call == nullptr) {
    FERRY_LOG(debug, "response for an unknown call " << callId << " dropped");
    return;
  }
  call->deliverReceived(std::make_unique<IncomingResponse>(std::move(message)));
}

struct ReadingLink {
  Endpoint* endpoint;
  LinkId link;
};

bool Endpoint::takeResponse(void* context, const uint8_t* data, size_t size) noexcept {
  auto* reading = static_cast<ReadingLink*>(context);
  // Only a response is served on the reading thread: what else comes (requests, pings, resolver
  // frames, a malformed frame to reject) needs the network thread's state.
  if (size < kFrameHeader || data[4] != static_cast<uint8_t>(FrameKind::response)) return false;
  Frame frame;
  try {
    frame = decodeFrame(data, size);
  } catch (...) {
    return false;  // the network thread rejects it, and says why
  }
  if (frame.header.kind != FrameKind::response) return false;
  try {
    reading->endpoint->serveResponse(reading->link, frame.header.callId,
                                     std::move(*frame.message));
  } catch (...) {
    // Only an allocation can fail here; the call then meets its deadline.
  }
  return true;
}

ReplyReader::Outcome Endpoint::readReply(LinkId link, int wakeFd,
                                         std::chrono::milliseconds timeout) noexcept {
  return receive(link, {}, wakeFd, timeout);
}

ReplyReader::Outcome Endpoint::sendAndRead(LinkId link, uint64_t callId,
                                           const std::shared_ptr<std::vector<uint8_t>>& frame,
                                           int wakeFd, std::chrono::milliseconds timeout) noexcept {
  Outcome outcome = receive(link, *frame, wakeFd, timeout);
  if (outcome == Outcome::cannot) sendHeld(link, callId, frame);
  return outcome;
}

void Endpoint::sendHeld(LinkId link, uint64_t callId,
                        const std::shared_ptr<std::vector<uint8_t>>& frame) noexcept {
  if (_network.sendNow(link, *frame)) return;
  // As sendRequest does when it cannot write: unless the link's end took the call meanwhile
  // (and sends it again, or failed it), the network thread sends it.
  std::optional<CallTable::Entry> entry = _calls.take(callId, link);
  if (!entry) return;
  try {
    sendThroughNetworkThread(bindingText(entry->binding), entry->binding, callId, entry->call,
                             frame);
  } catch (const Error& e) {
    entry->call->fail(e.code(), e.message());
  } catch (const std::exception& e) {
    entry->call->fail(Errc::internal, e.what());
  }
}

void Endpoint::abandon(LinkId link, uint64_t callId) noexcept { _calls.take(callId, link); }

ReplyReader::Outcome Endpoint::receive(LinkId link, std::span<const uint8_t> request, int wakeFd,
                                       std::chrono::milliseconds timeout) noexcept {
  ReadingLink reading{this, link};
  try {
    switch (_network.receiveNow(link, request, wakeFd, timeout, &Endpoint::takeResponse,
                                &reading)) {
      case ReadOutcome::taken:
        stats().repliesReadByCaller.fetch_add(1, std::memory_order_relaxed);
        return Outcome::taken;
      case ReadOutcome::waited:
        return Outcome::waited;
      case ReadOutcome::cannot:
        return Outcome::cannot;
    }
  } catch (...) {
  }
  return Outcome::cannot;
}

void Endpoint::sendResponse(LinkId link, CallerKey callerId, uint64_t callId,
                            std::shared_ptr<const std::vector<uint8_t>> frame) {
  // Kept for a resent copy of the request, and sent where the newest copy came from.
  link = _replies.complete(callerId, callId, link, frame, Clock::now());
  sendAnyThread(link, std::move(frame));
}

void Endpoint::sendAnyThread(LinkId link, std::shared_ptr<const std::vector<uint8_t>> frame) {
  // The servant's thread writes the response itself when it can.
  if (_network.sendNow(link, *frame)) return;
  try {
    _network.post([this, link, frame = std::move(frame)] { _network.send(link, *frame); });
  } catch (const std::exception& e) {
    FERRY_LOG(debug, "frame not sent: " << e.what());
  }
}

// ---- calling -----------------------------------------------------------------------------------

void Endpoint::sendRequest(const std::string& key, const StringBindingData& binding, Oxid oxid,
                           std::unique_ptr<OutgoingRequest> request, Deadline,
                           std::shared_ptr<OutboundCall> call) {
  uint64_t callId = call ? CallTable::nextCallId() : 0;
  // The fast path: the link is open, the caller writes the frame itself.
  std::optional<LinkId> open = _network.openLink(key);
  auto frame = std::make_shared<std::vector<uint8_t>>();
  try {
    request->root.setCaller(_runtime.processId);
    request->root.setCallerToken(_callerToken);
    if (call) {
      // The responses received on this link since its previous request.
      CallTable::Acknowledgements acks =
          open ? _calls.acknowledgementsFor(*open) : CallTable::Acknowledgements{};
      if (!acks.empty()) {
        auto list = request->root.initAcknowledged(static_cast<unsigned>(acks.size()));
        for (unsigned i = 0; i < acks.size(); ++i) list.set(i, acks.ids[i]);
      }
    }
    *frame = encodeFrame(FrameKind::request, callId, oxid, request->message.builder());
  } catch (const std::exception& e) {
    if (call) call->fail(Errc::internal, e.what());
    return;
  }
  if (frame->size() > kMaxMessageBytes + kFrameHeader) {
    if (call) {
      call->fail(Errc::invalidArgument,
                 "the request has " + std::to_string(frame->size() - kFrameHeader) +
                     " bytes, more than the 16 MiB a message may carry; pass large data in "
                     "several calls");
    }
    return;
  }
  if (open) {
    if (call) track(callId, CallTable::Entry{call, *open, frame, binding});
    if (call && call->sendsWhenWaiting()) {
      // The waiting thread sends it as it takes the link's reads (sendAndRead), next.
      call->sendWhenWaiting(*this, *open, callId, frame);
      return;
    }
    if (_network.sendNow(*open, *frame)) {
      // Written from this thread: the thread that waits for the response may read it there.
      if (call) call->readWith(*this, *open);
      return;
    }
    // Not written (closing, or no direct path): the network thread links if needed and sends.
    // Unless the call left the link meanwhile: the link ended and its end sent the call again
    // on another, or failed it. It is that path's now, and a second copy would go out.
    if (call && !_calls.take(callId, *open)) return;
  }
  try {
    sendThroughNetworkThread(key, binding, callId, call, frame);
  } catch (const Error& e) {
    if (call) call->fail(e.code(), e.message());
  }
}

void Endpoint::sendThroughNetworkThread(const std::string& key, const StringBindingData& binding,
                                        uint64_t callId, std::shared_ptr<OutboundCall> call,
                                        std::shared_ptr<std::vector<uint8_t>> frame) {
  _network.post([this, key, binding, callId, call = std::move(call), frame = std::move(frame)] {
    // A oneway message (a release) still goes out on a new link, whenever that opens.
    if (call && !_silent.empty() && failIfSilent(key, binding, *call)) return;
    std::string why;
    std::optional<LinkId> link = _network.linkTo(binding, &why);
    if (!link) {
      if (call) call->fail(Errc::unavailable, "cannot connect to " + key + ": " + why);
      return;
    }
    if (call) track(callId, CallTable::Entry{call, *link, frame, binding});
    _network.send(*link, *frame);
  });
}

bool Endpoint::failIfSilent(const std::string& key, const StringBindingData& binding,
                            OutboundCall& call) {
  auto it = _silent.find(key);
  if (it == _silent.end()) return false;
  Silent& silent = it->second;
  if (!silent.attempt) {
    std::string why;
    if (std::optional<LinkId> attempt = _network.linkTo(binding, &why)) silent.attempt = *attempt;
  }
  auto ago = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - silent.since);
  call.fail(Errc::unavailable,
            "cannot reach " + key + ": it went silent " + std::to_string(ago.count()) +
                " ms ago, and calls to it fail at once until a connection to it opens again (one "
                "is being tried); " + silent.why);
  return true;
}

void Endpoint::track(uint64_t callId, CallTable::Entry entry) {
  std::shared_ptr<OutboundCall> call = entry.call;
  _calls.add(callId, std::move(entry));
  // Two words, which std::function holds without an allocation.
  call->setCancelHook([this, callId] { sendCancel(callId); });
}

void Endpoint::sendCancel(uint64_t callId) {
  // The link the call is on now; none once it is answered or failed, with nothing to cancel.
  std::optional<LinkId> link = _calls.linkOf(callId);
  if (!link) return;
  sendAnyThread(*link, std::make_shared<const std::vector<uint8_t>>(
                           encodeBareFrame(FrameKind::cancel, callId)));
}

void Endpoint::resend(std::vector<std::pair<uint64_t, CallTable::Entry>> calls,
                      const std::string& why) {
  bool stopping = _network.stopping();
  for (auto& [callId, entry] : calls) {
    if (entry.call->done()) continue;  // canceled or past its deadline
    if (stopping) {
      entry.call->fail(Errc::outcomeUnknown, why + "; the runtime is shutting down");
      continue;
    }
    std::string key = bindingText(entry.binding);
    std::string reason;
    std::optional<LinkId> link = _network.linkTo(entry.binding, &reason);
    if (!link) {
      entry.call->fail(Errc::outcomeUnknown, why + "; cannot reconnect to " + key + ": " + reason);
      continue;
    }
    ++entry.resends;
    markResent(*entry.frame);
    stats().callsResent.fetch_add(1, std::memory_order_relaxed);
    FERRY_LOG(debug, "sending call " << callId << " again on a new connection to " << key << " ("
                                     << why << ")");
    entry.link = *link;
    std::vector<uint8_t> frame = *entry.frame;
    track(callId, std::move(entry));
    _network.send(*link, std::move(frame));
  }
}

}  // namespace ferry::detail::orpc
