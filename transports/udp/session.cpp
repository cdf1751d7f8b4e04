#include "session.h"

#include <openssl/rand.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include <ferry/plugin/plugin.h>

namespace ferry::transports::udp {

namespace {

constexpr uint64_t kNsPerMs = 1000000;
constexpr uint64_t kNsPerUs = 1000;
// Sizes a session probes upward to: Ethernet (IPv6-safe) and jumbo frames (RFC 8899 probing
// from BASE_PLPMTU; A3.4 of the design brief).
constexpr size_t kProbeSizes[] = {1452, 8952};
constexpr uint32_t kMaxProbeFailures = 3;
constexpr uint64_t kBlackHoleRetryNs = 1000 * kNsPerMs;
// Large packets lost in a row (no large one acknowledged since), with a small one acknowledged
// meanwhile, that make a black hole. Random loss of p makes this p^5 likely per large packet.
constexpr uint32_t kBlackHolePackets = 5;
// Packets one flush() sends before it yields to the loop (and asks to be called again).
constexpr int kMaxPacketsPerFlush = 256;
// ACK ranges remembered; older ones are forgotten (their packets count as received).
constexpr size_t kMaxReceivedRanges = 256;
// Packets of a session that break the protocol before it is closed with UV_EPROTO.
constexpr uint32_t kMaxViolations = 8;
// CLOSE frames sent while closing, at most (one per packet the peer still sends).
constexpr uint32_t kMaxCloses = 16;
constexpr uint32_t kMaxCookieRounds = 8;
constexpr uint64_t kMaxKeepaliveNs = 15000 * kNsPerMs;  // RFC 8085 §3.5, under NAT timeouts
constexpr uint64_t kMaxIdleMs = 24ull * 3600 * 1000;
constexpr uint64_t kMinClosingNs = 20 * kNsPerMs;
constexpr uint64_t kMaxClosingNs = 3000 * kNsPerMs;
// The smallest DATA frame worth trying to fit: its header and a byte (or an empty message).
constexpr size_t kMinDataFrame = 12;

}  // namespace

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

// --- Receiving. ---

bool Session::isDuplicate(uint64_t pn) const {
  return pn < _receivedFloor || _received.contains(pn);
}

void Session::recordReceived(uint64_t pn, bool ackEliciting, uint64_t now) {
  bool inOrder = !_hasReceived || pn == _largestReceived + 1;
  _received.add(pn, pn + 1);
  if (_received.intervals() > kMaxReceivedRanges) {
    // Forget the oldest range: its packets, and the gap above it, count as received.
    auto second = std::next(_received.begin());
    _receivedFloor = second->first;
    _received.removeBelow(_receivedFloor);
  }
  if (!_hasReceived || pn > _largestReceived) {
    _hasReceived = true;
    _largestReceived = pn;
    _largestReceivedAt = now;
  }
  _ackPending = true;
  if (!ackEliciting) return;
  ++_elicitingSinceAck;
  // RFC 9000 §13.2: at once for every second packet and for anything out of order.
  if (!inOrder || _elicitingSinceAck >= 2 || _state != State::open) {
    _ackNow = true;
  } else if (_ackDeadline == 0) {
    _ackDeadline = now + _localMaxAckDelayNs;
  }
}

bool Session::buildAck(AckFrame& ack, uint64_t now) const {
  if (_received.empty()) return false;
  ack.rangeCount = 0;
  for (auto it = _received.rbegin(); it != _received.rend() && ack.rangeCount < kMaxAckRanges;
       ++it) {
    ack.low[ack.rangeCount] = it->first;
    ack.high[ack.rangeCount] = it->second - 1;
    ++ack.rangeCount;
  }
  ack.delayUs = now > _largestReceivedAt ? (now - _largestReceivedAt) / kNsPerUs : 0;
  return true;
}

bool Session::handleAck(const AckFrame& ack, uint64_t now) {
  if (ack.largest() >= _nextPn) return false;  // acknowledges a packet never sent
  AckOutcome outcome;
  _recovery.onAck(ack, now, maxAckDelayForPto(), outcome);
  CongestionController& cc = *_config.controller;
  for (const SentPacket& packet : outcome.acked) {
    if (packet.inFlight) cc.onAcked(packet.size, packet.timeSent, now);
    if (packet.inFlight && packet.size > kBaseDatagramSize) {
      _largeLostInRow = 0;
      _smallAckedSinceLoss = false;
    } else if (_largeLostInRow > 0) {
      _smallAckedSinceLoss = true;
    }
    for (const SentFrame& frame : packet.frames) {
      if (frame.kind == SentFrame::Kind::data && _outbox) {
        _outbox->onAcked(frame.msgId, frame.offset, frame.length);
      } else if (frame.kind == SentFrame::Kind::pmtuProbe) {
        probeSucceeded(frame.length, now);
      }
    }
  }
  if (outcome.rttSampled) cc.onRttSample(_recovery.rtt().smoothed());
  _env.counters().spurious_losses += outcome.spurious;
  if (outcome.spurious > 0) {
    // Packets called lost arrived after all: reordering, which says nothing about a black hole.
    _largeLostInRow = 0;
    _smallAckedSinceLoss = false;
  }
  handleLost(outcome.lost, now);
  if (outcome.persistentCongestion) {
    cc.onPersistentCongestion();
    ++_env.counters().persistent_congestion;
  }
  return true;
}

void Session::handleLost(std::vector<SentPacket>& lost, uint64_t now) {
  if (lost.empty()) return;
  uint64_t bytes = 0;
  uint64_t newest = 0;
  for (const SentPacket& packet : lost) {
    ++_env.counters().packets_lost;
    ++_packetsLost;
    if (packet.inFlight && packet.size > kBaseDatagramSize) ++_largeLostInRow;
    if (packet.inFlight) {
      bytes += packet.size;
      newest = std::max(newest, packet.timeSent);
    }
    for (const SentFrame& frame : packet.frames) {
      sendAgain(frame);
      if (frame.kind == SentFrame::Kind::data) {
        _env.counters().bytes_retransmitted += frame.length;
        _bytesRetransmitted += frame.length;
      }
      if (frame.kind == SentFrame::Kind::pmtuProbe) probeFailed(frame.length, now);
    }
  }
  if (bytes > 0) _config.controller->onLost(bytes, newest, now);
  checkBlackHole(now);
}

void Session::sendAgain(const SentFrame& frame) {
  switch (frame.kind) {
    case SentFrame::Kind::data:
      if (_outbox) _outbox->onLost(frame.msgId, frame.offset, frame.length);
      break;
    case SentFrame::Kind::credit:
      if (_inbox) _inbox->markCreditDue(frame.msgId);
      break;
    case SentFrame::Kind::sessionCredit:
      _sessionCreditDue = true;
      break;
    case SentFrame::Kind::hello:
      if (_state == State::connecting) _helloDue = true;
      break;
    case SentFrame::Kind::handshake:
      if (_state == State::halfOpen) _handshakeDue = true;
      break;
    case SentFrame::Kind::ping:
    case SentFrame::Kind::pmtuProbe:
      break;
  }
}

void Session::onLossTimer(uint64_t now) {
  AckOutcome outcome;
  if (!_recovery.onTimeout(now, maxAckDelayForPto(), outcome)) {
    handleLost(outcome.lost, now);
    return;
  }
  ++_env.counters().pto_expirations;
  const SentPacket* oldest = _recovery.oldestOutstanding();
  if (oldest != nullptr) {
    // The probe repeats what the oldest packet carried (RFC 9002 §6.2.4), under a new number.
    for (const SentFrame& frame : oldest->frames) sendAgain(frame);
  }
  _probesDue = _state == State::open ? 2 : 1;
}

void Session::checkBlackHole(uint64_t now) {
  // RFC 8899 §4.3: large packets keep vanishing while small ones get through (PTO probes are
  // small). Random loss and reordering acknowledge large packets in
  // between, which starts the count again; a dead path acknowledges nothing, which is no black
  // hole.
  if (_maxDatagram <= kBaseDatagramSize || _largeLostInRow < kBlackHolePackets ||
      !_smallAckedSinceLoss) {
    return;
  }
  _largeLostInRow = 0;
  _smallAckedSinceLoss = false;
  _env.log(FERRY_LOG_INFO, "session to " + _config.peerText + ": datagrams of " +
                               std::to_string(_maxDatagram) + " bytes seem to vanish; back to " +
                               std::to_string(kBaseDatagramSize));
  _probeCeiling = _maxDatagram;
  _maxDatagram = kBaseDatagramSize;
  _probeReady = false;
  // Random loss can still look like a black hole: probe again soon; a real one fails its probes
  // and then waits PMTU_RAISE_TIMER.
  _nextProbeAt = now + std::min(_options.pmtuRaiseMs * kNsPerMs,
                                std::max(kBlackHoleRetryNs, 16 * _recovery.rtt().pto(0)));
  ++_env.counters().pmtu_black_holes;
}

void Session::onViolation(const char* what) {
  ++_env.counters().protocol_violations;
  ++_violations;
  _env.log(FERRY_LOG_DEBUG, "session to " + _config.peerText + ": dropped a packet (" + what + ")");
  if (_violations < kMaxViolations) return;
  _env.log(FERRY_LOG_WARN, "session to " + _config.peerText + " closed: the peer broke the "
                                                               "protocol " +
                               std::to_string(_violations) + " times (last: " + what + ")");
  enterClosing(kCloseProtocol);
  _env.ended(*this, UV_EPROTO);
}

void Session::onShortPacket(const Header& header, const uint8_t* frames, size_t size) {
  uint64_t t = now();
  if (_state == State::closing) {
    ++_env.counters().dropped_closing;
    if (_closesSent < kMaxCloses) sendClose(_closeReason);
    return;
  }
  if (_state != State::open && _state != State::halfOpen) {
    ++_env.counters().dropped_closing;
    return;
  }
  if (isDuplicate(header.pn)) {
    ++_env.counters().dropped_duplicate;
    return;
  }
  Reader in(frames, size);
  Frame frame;
  bool eliciting = false;
  bool immediate = false;
  bool peerClosed = false;
  uint64_t closeReason = 0;
  const char* violation = nullptr;
  while (violation == nullptr && !peerClosed && readFrame(in, frame)) {
    if (ackEliciting(frame.type)) eliciting = true;
    switch (frame.type) {
      case FrameType::padding:
      case FrameType::ping:
        break;
      case FrameType::immediateAck:
        immediate = true;
        break;
      case FrameType::ack:
        if (!handleAck(frame.ack, t)) violation = "ACK of a packet never sent";
        break;
      case FrameType::data:
        switch (_inbox->onData(frame.data)) {
          case Inbox::Verdict::accepted:
          case Inbox::Verdict::duplicate:
            break;
          case Inbox::Verdict::violation:
            violation = "DATA outside its limits";
            break;
          case Inbox::Verdict::overBudget:
            // Not acknowledged: the peer sends it again once memory is free.
            ++_env.counters().dropped_over_budget;
            _inbox->adoptViews();
            return;
        }
        break;
      case FrameType::credit:
        _outbox->onCredit(frame.msgId, frame.maxOffset);
        break;
      case FrameType::sessionCredit:
        _outbox->onSessionCredit(frame.maxMsgId, frame.maxOpenBytes);
        break;
      case FrameType::close:
        // Level none: only the peer saw the token it announced in the handshake, so a CLOSE
        // without it comes from someone else (A3.10, as QUIC's stateless reset token).
        if (_peerCloseToken == 0 || frame.token != _peerCloseToken) {
          ++_env.counters().closes_ignored;
          break;
        }
        peerClosed = true;
        closeReason = frame.reason;
        break;
      default:
        violation = "a frame not allowed after the handshake";
        break;
    }
  }
  if (violation == nullptr && in.failed()) violation = "undecodable frames";
  if (violation != nullptr) {
    _inbox->adoptViews();
    onViolation(violation);
    return;
  }
  recordReceived(header.pn, eliciting, t);
  if (immediate) _ackNow = true;
  _lastReceive = t;
  if (_state == State::halfOpen) {
    becomeOpen(t);
    _env.established(*this);
    if (_state != State::open) return;
  }
  deliverReady();
  if (_state != State::open) return;
  if (peerClosed) {
    ++_env.counters().sessions_closed_by_peer;
    release();
    _state = State::draining;
    _closeDeadline = t + closingPeriodNs();
    _env.deadlineChanged(*this);
    // A clean close by the peer's host, or its instance going away, is the end of the stream;
    // anything else is an error.
    int status = closeReason == kCloseNormal || closeReason == kCloseGoingAway ? 0
                 : closeReason == kCloseProtocol                            ? UV_EPROTO
                                                                            : UV_ECONNRESET;
    _env.ended(*this, status);
    return;
  }
  _env.deadlineChanged(*this);
}

void Session::deliverReady() {
  const uint8_t* data = nullptr;
  size_t size = 0;
  while (_inbox->front(data, size)) {
    ++_env.counters().messages_delivered;
    _env.message(*this, data, size);
    if (_state != State::open) return;  // the host closed it, or destroyed the instance
    _inbox->popFront();
  }
  _inbox->adoptViews();
}

bool Session::onReject(uint64_t echoedPn, uint64_t epoch) {
  if ((_state != State::open && _state != State::halfOpen) || echoedPn >= _nextPn) return false;
  ++_env.counters().rejects_received;
  ++_env.counters().sessions_rejected;
  bool restarted = _config.role == SessionConfig::Role::client && epoch != _epoch;
  _env.log(FERRY_LOG_INFO, "session to " + _config.peerText + " rejected: " +
                               (restarted ? "the server restarted (new epoch)"
                                          : "the peer no longer knows it"));
  bool wasOpen = _state == State::open;
  release();
  _state = State::finished;
  if (wasOpen) _env.ended(*this, UV_ECONNRESET);
  _env.finished(*this);
  return true;
}

// --- Host requests. ---

int Session::send(const uint8_t* data, size_t size) {
  if (_state != State::open) return UV_ENOTCONN;
  if (size > _peerMaxMessage) return UV_EMSGSIZE;
  _outbox->push(data, size);
  ++_env.counters().messages_sent;
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

// --- Sending. ---

void Session::finishPacket(Writer& out, uint64_t now, bool ackEliciting, bool inFlight,
                           bool probe, bool immediateAck) {
  writeCrc(out);
  if (out.overflow()) {
    _env.log(FERRY_LOG_ERROR, "session to " + _config.peerText + ": a packet overflowed its buffer");
    return;
  }
  int err = _env.transmit(*this, out.data(), out.size());
  uint64_t pn = _nextPn++;
  if (!ackEliciting) return;
  bool pmtuProbe = !_frames.empty() && _frames[0].kind == SentFrame::Kind::pmtuProbe;
  if (err == UV_EMSGSIZE && pmtuProbe) {
    probeFailed(_frames[0].length, now);
    return;
  }
  SentPacket packet;
  packet.pn = pn;
  packet.size = static_cast<uint32_t>(out.size());
  packet.inFlight = inFlight;
  packet.immediateAck = immediateAck;
  packet.frames = std::move(_frames);
  _frames.clear();
  _recovery.onSent(std::move(packet), now);
  ++_env.counters().packets_sent;
  if (inFlight) {
    _config.controller->onSent(out.size(), now);
    if (!probe) _config.controller->consumePacing(out.size(), now);
  }
}

void Session::sendClose(uint64_t reason) {
  uint8_t buffer[64];
  Writer out(buffer, sizeof(buffer));
  writeShortHeader(out, _remoteId, _nextPn);
  writeClose(out, reason, _config.closeToken);
  _frames.clear();
  ++_closesSent;
  finishPacket(out, now(), false, false, false);
}

size_t Session::nextProbeSize() const noexcept {
  // The common sizes first, then whatever the local route allows (loopback: 64 KiB).
  size_t limit = std::min(_config.pathMaxDatagram, _peerMaxDatagram);
  for (size_t size : {kProbeSizes[0], kProbeSizes[1], limit}) {
    if (size <= _maxDatagram || size > limit) continue;
    if (_probeCeiling != 0 && size >= _probeCeiling) return 0;
    return size;
  }
  return 0;
}

bool Session::pmtuProbeDue() const noexcept {
  return _probeReady && _state == State::open && _probeInFlight == 0 && nextProbeSize() != 0;
}

bool Session::sendPmtuProbe(uint64_t now, uint8_t* buffer) {
  size_t size = nextProbeSize();
  Writer out(buffer, size);
  writeShortHeader(out, _remoteId, _nextPn);
  writePing(out);
  out.zeros(out.remaining() - kCrcSize);
  _frames.clear();
  _frames.push_back({SentFrame::Kind::pmtuProbe, 0, 0, static_cast<uint32_t>(size)});
  _probeInFlight = size;
  _probeReady = false;
  ++_env.counters().pmtu_probes_sent;
  // Not in flight: a lost probe says nothing about congestion (RFC 9000 §14.4).
  finishPacket(out, now, true, false, true);
  return true;
}

void Session::probeSucceeded(size_t size, uint64_t now) {
  _probeInFlight = 0;
  _probeFailures = 0;
  if (size > _maxDatagram) {
    _maxDatagram = size;
    _config.controller->onDatagramSize(size);
    ++_env.counters().pmtu_raised;
  }
  (void)now;
  _probeReady = true;  // the next size, if there is one
}

void Session::probeFailed(size_t size, uint64_t now) {
  _probeInFlight = 0;
  if (++_probeFailures >= kMaxProbeFailures) {
    _probeFailures = 0;
    _probeCeiling = size;
    _nextProbeAt = now + _options.pmtuRaiseMs * kNsPerMs;
    return;
  }
  _nextProbeAt = now + _recovery.rtt().smoothed();
}

void Session::sendShortPackets(uint64_t now) {
  CongestionController& cc = *_config.controller;
  uint8_t buffer[kMaxDatagramSize];
  bool blocked = false;
  for (int sent = 0;; ++sent) {
    if (sent == kMaxPacketsPerFlush) {
      // Yield to the loop (received ACKs get processed); the instance calls flush again.
      _env.wantFlush(*this);
      break;
    }
    bool ackWanted = _ackPending && (_ackNow || expired(_ackDeadline, now));
    bool probe = _probesDue > 0;
    bool pmtu = pmtuProbeDue() && (cc.bytesInFlight() == 0 || cc.canSend(nextProbeSize()));
    bool creditDue = _sessionCreditDue || _inbox->sessionCreditDue();
    bool data = _outbox->hasSendable();
    // A per-message CREDIT due is reason enough for a packet: the peer may be waiting for it.
    bool elicit = probe || pmtu || creditDue || _inbox->anyCreditDue() || _pingDue || data;
    if (!elicit && !ackWanted) break;
    bool allowed = probe;
    if (pmtu && !probe) {
      // A PMTU probe is not counted in flight; it waits while the window has no room for it,
      // and lets everything else go meanwhile.
      allowed = true;
    } else if (elicit && !probe) {
      if (!cc.canSend(_maxDatagram)) {
        blocked = true;
        _blockedOn = _maxDatagram;
      } else if (uint64_t until = cc.pacedUntil(_maxDatagram, now); until != 0) {
        _pacingWakeup = until;
      } else {
        allowed = true;
      }
    }
    if (!allowed && !ackWanted) break;
    if (allowed && pmtu && !probe) {
      sendPmtuProbe(now, buffer);
      continue;
    }

    // Probes are small: their job is to draw an ACK, and if large packets vanish on the path
    // (a black hole), small probes still get through and show it.
    size_t capacity = probe ? kBaseDatagramSize : _maxDatagram;
    Writer out(buffer, capacity);
    writeShortHeader(out, _remoteId, _nextPn);
    // What frames may take: the CRC32C trailer comes last.
    auto room = [&out] { return out.remaining() - kCrcSize; };
    _frames.clear();
    if (_ackPending) {
      AckFrame ack;
      if (buildAck(ack, now) && ackFrameSize(ack) <= room()) {
        writeAck(out, ack);
        _ackPending = false;
        _ackNow = false;
        _ackDeadline = 0;
        _elicitingSinceAck = 0;
      }
    }
    bool eliciting = false;
    if (allowed) {
      if (creditDue && room() > 20) {
        writeSessionCredit(out, _inbox->maxMsgId(), _inbox->maxOpenBytes());
        _inbox->sessionCreditSent();
        _sessionCreditDue = false;
        _frames.push_back({SentFrame::Kind::sessionCredit, 0, 0, 0});
        eliciting = true;
      }
      std::vector<uint64_t> noRoom;
      _inbox->forEachCreditDue([&](uint64_t id, uint64_t maxOffset) {
        if (room() < 1 + 8 + 8 + 1) {
          noRoom.push_back(id);
          return;
        }
        writeCredit(out, id, maxOffset);
        _frames.push_back({SentFrame::Kind::credit, id, 0, 0});
        eliciting = true;
      });
      for (uint64_t id : noRoom) _inbox->markCreditDue(id);
      Outbox::Chunk chunk;
      // One byte stays free for IMMEDIATE_ACK (below).
      while (room() > kMinDataFrame + 1 && _outbox->next(room() - 1, chunk)) {
        writeDataHeader(out, chunk.msgId, chunk.total, chunk.offset,
                        static_cast<uint16_t>(chunk.length));
        out.bytes(chunk.bytes, chunk.length);
        _frames.push_back({SentFrame::Kind::data, chunk.msgId, chunk.offset, chunk.length});
        eliciting = true;
      }
      if ((_pingDue || (probe && !eliciting)) && room() >= 1) {
        if (_keepaliveDue) ++_env.counters().keepalives_sent;
        writePing(out);
        _frames.push_back({SentFrame::Kind::ping, 0, 0, 0});
        _pingDue = false;
        _keepaliveDue = false;
        _lastPing = now;
        eliciting = true;
      }
    }
    if (out.size() == kShortHeaderSize) break;  // nothing fit or nothing was due after all
    // When this packet fills the congestion window (or is a probe), the sender can do nothing
    // until an ACK comes: ask for it now rather than after the peer's max_ack_delay.
    bool immediate = eliciting && room() >= 1 &&
                     (probe || !cc.canSend(out.size() + kCrcSize + _maxDatagram));
    if (immediate) writeImmediateAck(out);
    if (eliciting && out.size() + kCrcSize < kMinElicitingPacket) {
      out.zeros(kMinElicitingPacket - kCrcSize - out.size());
    }
    finishPacket(out, now, eliciting, true, probe, immediate);
    if (probe) --_probesDue;
  }
  if (blocked) _env.blocked(*this);
}

void Session::flush() {
  uint64_t t = now();
  switch (_state) {
    case State::connecting:
      if (_helloDue) {
        _helloDue = false;
        _probesDue = 0;
        sendHello(t);
      }
      break;
    case State::halfOpen:
      if (_handshakeDue) {
        _handshakeDue = false;
        _probesDue = 0;
        sendHandshake(t);
      }
      break;
    case State::open:
      sendShortPackets(t);
      break;
    default:
      return;
  }
  _env.deadlineChanged(*this);
}

// --- Timers. ---

uint64_t Session::deadline() const {
  uint64_t next = 0;
  auto consider = [&next](uint64_t when) {
    if (when != 0 && (next == 0 || when < next)) next = when;
  };
  switch (_state) {
    case State::finished:
      return 0;
    case State::closing:
    case State::draining:
      return _closeDeadline;
    case State::connecting:
      consider(_connectDeadline);
      break;
    case State::halfOpen:
      consider(_created + _options.handshakeTimeoutMs * kNsPerMs);
      break;
    case State::open:
      consider(_lastReceive + idleTimeoutNs());
      if (_recovery.outstanding() == 0 && !_pingDue) consider(keepaliveAt());
      // Only what the passing of time changes: what waits for the congestion window is woken by
      // ACKs (SessionEnv::blocked), and what is due now by the flush that follows every event.
      consider(_nextProbeAt);
      if (_ackPending) consider(_ackDeadline);
      consider(_pacingWakeup);
      break;
  }
  consider(_recovery.deadline(maxAckDelayForPto()));
  return next;
}

void Session::onTimer() {
  uint64_t t = now();
  switch (_state) {
    case State::finished:
      return;
    case State::closing:
    case State::draining:
      if (expired(_closeDeadline, t)) finish();
      return;
    case State::connecting:
      if (expired(_connectDeadline, t)) {
        release();
        _state = State::finished;
        _env.ended(*this, UV_ETIMEDOUT);
        _env.finished(*this);
        return;
      }
      break;
    case State::halfOpen:
      if (expired(_created + _options.handshakeTimeoutMs * kNsPerMs, t)) {
        finish();  // the client never confirmed: forget it silently
        return;
      }
      break;
    case State::open:
      if (expired(_lastReceive + idleTimeoutNs(), t)) {
        ++_env.counters().sessions_idle_timeouts;
        _env.log(FERRY_LOG_INFO, "session to " + _config.peerText + " timed out: nothing " +
                                     "received for " +
                                     std::to_string((t - _lastReceive) / kNsPerMs) + " ms");
        release();
        _state = State::finished;
        _env.ended(*this, UV_ETIMEDOUT);
        _env.finished(*this);
        return;
      }
      if (_recovery.outstanding() == 0 && !_pingDue && expired(keepaliveAt(), t)) {
        _pingDue = true;
        _keepaliveDue = true;
      }
      break;
  }
  uint64_t loss = _recovery.deadline(maxAckDelayForPto());
  if (expired(loss, t)) onLossTimer(t);
  if (expired(_ackDeadline, t)) {
    _ackNow = true;
    _ackDeadline = 0;
  }
  if (expired(_pacingWakeup, t)) _pacingWakeup = 0;
  if (expired(_nextProbeAt, t)) {
    // A retry, or PMTU_RAISE_TIMER after giving up: every size is worth a probe again.
    _nextProbeAt = 0;
    _probeCeiling = 0;
    _probeReady = true;
  }
  _env.deadlineChanged(*this);
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
