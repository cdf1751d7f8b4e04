// One udp session (session.h): construction, time, the handshake, host requests and endings.
// Receiving is in session-receive.cpp; sending and timers in session-send.cpp.
#include "session.h"

#include <openssl/rand.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include <ferry/plugin/plugin.h>

#include "session-limits.h"

namespace ferry::transports::udp {

Session::Session(SessionEnv& env, SessionConfig config)
    : _env(env),
      _config(std::move(config)),
      _options(*_config.options),
      _recovery(_options.initialRttMs * kNsPerMs),
      _localMaxAckDelayNs(_options.maxAckDelayMs * kNsPerMs),
      _idleNs(_options.idleTimeoutMs * kNsPerMs) {
  InboxLimits limits;
  limits.maxMessageSize = _config.maxMessageSize;
  limits.unscheduledBytes = _options.unscheduledBytes;
  limits.messageWindow = _options.messageWindow;
  limits.maxOpenMessages = _options.maxOpenMessages;
  // A window smaller than the largest message could never carry it.
  limits.sessionWindow = std::max(_options.sessionWindow, _config.maxMessageSize);
  _inbox = std::make_unique<Inbox>(limits, _env.budget());
  _outbox = std::make_unique<Outbox>();
  _created = _lastReceive = now();
  _epoch = _config.epoch;
}

Session::~Session() {
  // The instance frees sessions only after finished(); by then nothing is in flight.
  release();
}

// --- Time. ---

bool Session::expired(uint64_t deadline, uint64_t now) const noexcept {
  // libuv's timers have millisecond resolution: what is due within it counts as due.
  return deadline != 0 && deadline <= now + kGranularityNs;
}

uint64_t Session::maxAckDelayForPto() const noexcept {
  // RFC 9002 §6.2.1: handshake packets are acknowledged at once.
  return _state == State::open ? _peerMaxAckDelayNs : 0;
}

uint64_t Session::idleTimeoutNs() const noexcept {
  // RFC 9000 §10.1: never shorter than three PTOs, or a slow path looks dead.
  return std::max(_idleNs, 3 * _recovery.rtt().pto(_peerMaxAckDelayNs));
}

uint64_t Session::closingPeriodNs() const noexcept {
  return std::clamp(3 * _recovery.rtt().pto(_peerMaxAckDelayNs), kMinClosingNs, kMaxClosingNs);
}

uint64_t Session::keepaliveAt() const noexcept {
  uint64_t interval = _options.keepaliveMs > 0 ? _options.keepaliveMs * kNsPerMs
                                               : std::min(_idleNs / 3, kMaxKeepaliveNs);
  return std::max(_lastReceive, _lastPing) + interval;
}

// --- Handshake. ---

Params Session::localParams() const {
  Params p;
  p.providerCount = 1;
  p.providers[0] = kProviderNone;
  p.hasLevel = true;
  p.level = kLevelNone;
  p.maxMessageSize = _config.maxMessageSize;
  p.maxAckDelayUs = _localMaxAckDelayNs / kNsPerUs;
  p.idleTimeoutMs = _options.idleTimeoutMs;
  p.maxDatagramSize = kMaxDatagramSize;
  p.maxOpenMessages = _inbox->maxMsgId();
  p.maxOpenBytes = _inbox->maxOpenBytes();
  p.unscheduledBytes = _options.unscheduledBytes;
  p.hasCloseToken = true;
  p.closeToken = _config.closeToken;
  return p;
}

bool Session::usableParams(const Params& params) {
  // Every transport parameter is required in version 1, and each must leave the session able to
  // carry at least one message.
  if (params.maxMessageSize == 0 || params.unscheduledBytes < kBaseDatagramSize ||
      params.maxOpenMessages == 0 || params.maxOpenBytes < params.unscheduledBytes ||
      params.maxDatagramSize < kBaseDatagramSize || params.idleTimeoutMs == 0) {
    return false;
  }
  if (params.providerCount > 0 &&
      std::find(params.providers, params.providers + params.providerCount, kProviderNone) ==
          params.providers + params.providerCount) {
    return false;  // no provider in common: only `none` exists
  }
  if (params.hasProvider && params.provider != kProviderNone) return false;
  return true;
}

bool Session::applyPeerParams(const Params& params) {
  if (!usableParams(params)) return false;
  _peerMaxMessage = std::min(params.maxMessageSize, _config.maxMessageSize);
  _peerCloseToken = params.hasCloseToken ? params.closeToken : 0;
  // A peer may ask for a long ack delay, not for an absurd one.
  _peerMaxAckDelayNs = std::min<uint64_t>(params.maxAckDelayUs, 1000000) * kNsPerUs;
  // (Clamped before scaling: a peer's 2^62 must not wrap around to a tiny timeout.)
  _idleNs = std::min(_idleNs, std::min<uint64_t>(params.idleTimeoutMs, kMaxIdleMs) * kNsPerMs);
  _peerMaxDatagram = static_cast<size_t>(std::min<uint64_t>(params.maxDatagramSize, kMaxDatagramSize));
  _outbox->setPeerLimits(params.unscheduledBytes, params.maxOpenMessages, params.maxOpenBytes);
  return true;
}

void Session::startClient(uint64_t connectDeadline) {
  _state = State::connecting;
  RAND_bytes(_nonce, sizeof(_nonce));
  _connectDeadline = connectDeadline;
  _helloDue = true;
  _env.deadlineChanged(*this);
}

void Session::startServer(const Params& hello, uint64_t helloPn, uint64_t clientSession) {
  _state = State::halfOpen;
  _remoteId = clientSession;
  applyPeerParams(hello);  // the instance checked them already
  uint64_t t = now();
  recordReceived(helloPn, true, t);
  _ackNow = true;
  _handshakeDue = true;
  _env.deadlineChanged(*this);
}

void Session::sendHello(uint64_t now) {
  uint8_t buffer[kBaseDatagramSize];
  Writer out(buffer, kBaseDatagramSize);
  writeLongHeader(out, PacketType::hello, 0, _config.localId, _nextPn);
  Params p = localParams();
  p.hasInstance = _config.clientInstance != nullptr;
  if (p.hasInstance) std::memcpy(p.instance, _config.clientInstance, kInstanceIdSize);
  p.hasNonce = true;
  std::memcpy(p.nonce, _nonce, kNonceSize);
  if (_haveCookie) {
    p.hasCookie = true;
    std::memcpy(p.cookie, _cookie, kCookieSize);
  }
  writeParams(out, FrameType::helloParams, p);
  // The security provider's first token rides with the cookie; `none` has an empty one.
  if (_haveCookie) writeCrypto(out, 0, nullptr, 0);
  // PADDING to 1200 bytes (the server's 1x amplification budget).
  out.zeros(out.remaining() - kCrcSize);
  _frames.clear();
  _frames.push_back({SentFrame::Kind::hello, 0, 0, 0});
  ++_hellosSent;
  finishPacket(out, now, true, true, true);
}

void Session::sendHandshake(uint64_t now) {
  uint8_t buffer[kBaseDatagramSize];
  Writer out(buffer, kBaseDatagramSize);
  writeLongHeader(out, PacketType::handshake, _remoteId, _config.localId, _nextPn);
  Params p = localParams();
  p.hasEpoch = true;
  p.epoch = _epoch;
  p.hasProvider = true;
  p.provider = kProviderNone;
  p.providerCount = 0;
  writeParams(out, FrameType::handshakeParams, p);
  writeCrypto(out, 0, nullptr, 0);
  AckFrame ack;
  if (buildAck(ack, now)) writeAck(out, ack);
  _frames.clear();
  _frames.push_back({SentFrame::Kind::handshake, 0, 0, 0});
  finishPacket(out, now, true, true, true);
}

void Session::onCookie(const Frame& cookie) {
  if (_state != State::connecting || _cookieRounds >= kMaxCookieRounds) {
    ++_env.counters().dropped_unexpected;
    return;
  }
  ++_cookieRounds;
  uint64_t t = now();
  _haveCookie = true;
  std::memcpy(_cookie, cookie.cookie, kCookieSize);
  _epoch = cookie.epoch;
  // The HELLOs were answered, not lost. With one HELLO sent, its round trip is a clean sample.
  std::vector<SentPacket> answered;
  _recovery.discardIf(
      [](const SentPacket& p) { return p.frames.size() == 1 && p.frames[0].kind == SentFrame::Kind::hello; },
      answered);
  for (const SentPacket& p : answered) _config.controller->onDiscarded(p.size);
  if (_hellosSent == 1 && answered.size() == 1 && !_recovery.rtt().hasSample()) {
    _recovery.rtt().update(t - answered[0].timeSent, 0);
    _config.controller->onRttSample(_recovery.rtt().smoothed());
  }
  _recovery.resetPtoCount();
  _helloDue = true;
  _env.deadlineChanged(*this);
}

void Session::onHelloAgain(uint64_t pn) {
  if (_state != State::halfOpen) return;  // a late copy of a HELLO already answered
  if (isDuplicate(pn)) {
    ++_env.counters().dropped_duplicate;
    return;
  }
  recordReceived(pn, true, now());
  _handshakeDue = true;
}

void Session::onHandshakePacket(const Header& header, const uint8_t* frames, size_t size) {
  uint64_t t = now();
  if (_config.role == SessionConfig::Role::server || header.src == 0) {
    // A client's HANDSHAKE would carry a provider's next token; `none` has none.
    ++_env.counters().dropped_unexpected;
    return;
  }
  if (_state == State::open && header.src == _remoteId) {
    // Our first short-header packet did not arrive: acknowledge the repeated HANDSHAKE.
    if (isDuplicate(header.pn)) {
      ++_env.counters().dropped_duplicate;
      return;
    }
    recordReceived(header.pn, true, t);
    _ackNow = true;
    return;
  }
  if (_state != State::connecting) {
    ++_env.counters().dropped_unexpected;
    return;
  }
  Reader in(frames, size);
  Frame frame;
  Params params;
  bool haveParams = false;
  bool haveCrypto = false;
  bool haveAck = false;
  AckFrame ack;
  while (readFrame(in, frame)) {
    switch (frame.type) {
      case FrameType::padding:
        break;
      case FrameType::handshakeParams:
        if (haveParams || !readParams(frame.params, frame.paramsSize, params)) {
          ++_env.counters().dropped_malformed;
          return;
        }
        haveParams = true;
        break;
      case FrameType::crypto:
        // The `none` provider's token is empty: anything else is not for us.
        if (frame.crypto.offset != 0 || frame.crypto.length != 0) {
          ++_env.counters().dropped_malformed;
          return;
        }
        haveCrypto = true;
        break;
      case FrameType::ack:
        haveAck = true;
        ack = frame.ack;
        break;
      default:
        ++_env.counters().dropped_malformed;
        return;
    }
  }
  if (in.failed() || !haveParams || !haveCrypto || !params.hasEpoch ||
      (haveAck && ack.largest() >= _nextPn)) {
    ++_env.counters().dropped_malformed;
    return;
  }
  if (!applyPeerParams(params)) {
    ++_env.counters().dropped_malformed;
    _env.log(FERRY_LOG_DEBUG, "session to " + _config.peerText +
                                  ": HANDSHAKE with unusable parameters ignored");
    return;
  }
  _remoteId = header.src;
  _epoch = params.epoch;
  recordReceived(header.pn, true, t);
  if (haveAck) handleAck(ack, t);
  std::vector<SentPacket> answered;
  _recovery.discardIf(
      [](const SentPacket& p) { return !p.frames.empty() && p.frames[0].kind == SentFrame::Kind::hello; },
      answered);
  for (const SentPacket& p : answered) _config.controller->onDiscarded(p.size);
  becomeOpen(t);
  // The first short-header packet confirms the handshake to the server; PING makes it one the
  // server acknowledges, so it is repeated until it arrives.
  _ackNow = true;
  _pingDue = true;
  _env.established(*this);
}

void Session::becomeOpen(uint64_t now) {
  _state = State::open;
  _established = true;
  _lastReceive = now;
  _recovery.resetPtoCount();
  _probesDue = 0;
  _probeReady = _options.pmtu != 0;
  ++_env.counters().sessions_established;
  _env.deadlineChanged(*this);
}

// --- Host requests. ---

int Session::send(const uint8_t* data, size_t size) {
  int err = refusal(size);
  if (err != 0) return err;
  _outbox->push(data, size);
  ++_env.counters().messages_sent;
  return 0;
}

int Session::send(std::unique_ptr<uint8_t[]> bytes, size_t size) {
  int err = refusal(size);
  if (err != 0) return err;
  _outbox->push(std::move(bytes), size);
  ++_env.counters().messages_sent;
  return 0;
}

int Session::refusal(size_t size) const noexcept {
  if (_state != State::open) return UV_ENOTCONN;
  if (size > _peerMaxMessage) return UV_EMSGSIZE;
  return 0;
}

void Session::closeByHost() {
  if (_state != State::open) return;
  enterClosing(kCloseNormal);
}

void Session::abandon(bool sayGoodbye) {
  if (sayGoodbye && _state == State::open) sendClose(kCloseGoingAway);
  release();
  _state = State::finished;
}

std::string Session::describe() const {
  static const char* const kStates[] = {"connecting", "half-open", "open", "closing", "draining",
                                        "finished"};
  std::string out = "session to " + _config.peerText + " (" +
                    kStates[static_cast<int>(_state)] + "): next pn " + std::to_string(_nextPn) +
                    ", outstanding " + std::to_string(_recovery.outstanding()) + " (" +
                    std::to_string(_recovery.bytesInFlight()) + " B), pto count " +
                    std::to_string(_recovery.ptoCount()) + ", cwnd " +
                    std::to_string(_config.controller->window()) + " in flight " +
                    std::to_string(_config.controller->bytesInFlight()) + ", deadline in " +
                    std::to_string(deadline() == 0 ? -1 : static_cast<int64_t>(deadline() - _env.now()) / 1000) +
                    " us, ack pending " + std::to_string(_ackPending) + ", datagram " +
                    std::to_string(_maxDatagram);
  if (_outbox) out += "\n  " + _outbox->describe();
  if (_inbox) out += "\n  " + _inbox->describe();
  return out;
}

// --- Endings. ---

void Session::release() {
  std::vector<SentPacket> dropped;
  _recovery.discardIf([](const SentPacket&) { return true; }, dropped);
  for (const SentPacket& packet : dropped) {
    if (packet.inFlight) _config.controller->onDiscarded(packet.size);
  }
  _inbox.reset();
  _outbox.reset();
  // Keep the members valid for the few calls a finished session may still get.
  _helloDue = _handshakeDue = _pingDue = _sessionCreditDue = false;
  _probesDue = 0;
  _ackPending = false;
}

void Session::enterClosing(uint64_t reason) {
  _closeReason = reason;
  sendClose(reason);
  release();
  _state = State::closing;
  _closeDeadline = now() + closingPeriodNs();
  _env.deadlineChanged(*this);
}

void Session::finish() {
  release();
  _state = State::finished;
  _env.finished(*this);
}

}  // namespace ferry::transports::udp
