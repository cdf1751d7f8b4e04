// One udp session (session.h): receiving (duplicates, ACKs owed and received, loss, delivery).
#include "session.h"

#include <uv.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include <ferry/plugin/plugin.h>

#include "session-limits.h"

namespace ferry::transports::udp {

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
  // RFC 9000 §13.2: at once for anything out of order, and for every second packet while bytes
  // of a message are missing (its sender is likely sending more, and its ACK clock runs on
  // these). Packets that completed every message they began are acknowledged like a single one,
  // within max_ack_delay: a request's reply, the next packet this side sends, carries the ACK;
  // a sender whose window fills asks for it at once with IMMEDIATE_ACK.
  bool missing = _inbox != nullptr && _inbox->missingBytes();
  if (!inOrder || (_elicitingSinceAck >= 2 && missing) || _state != State::open) {
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
  if (_recovery.ptoCount() == 0) _peerSilent = false;  // it answered
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
  bool congestion = false;
  for (const SentPacket& packet : lost) {
    ++_env.counters().packets_lost;
    ++_packetsLost;
    if (packet.inFlight && packet.size > kBaseDatagramSize) ++_largeLostInRow;
    if (packet.inFlight) bytes += packet.size;
    if (packet.inFlight || packet.setAside) {
      // A packet set aside while the peer was silent left the bytes in flight already; its
      // loss still says the path dropped something.
      congestion = true;
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
  if (congestion) _config.controller->onLost(bytes, newest, now);
  // Nothing left out to probe with (all of it lost by the time threshold): what is due goes as
  // new packets again, which the next PTOs find out about.
  if (_recovery.outstanding() == 0) _peerSilent = false;
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
  if (!_peerSilent && _recovery.ptoCount() >= kSilentPeerPtos) {
    // Its outstanding packets would hold the window of every session to the peer's address
    // until this one times out; the probes find out whether the peer is still there.
    _peerSilent = true;
    ++_env.counters().silent_peers;
    _config.controller->onDiscarded(_recovery.setAsideFlight());
    // Sessions the window blocked may go on now.
    _env.wantFlush(*this);
  }
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

}  // namespace ferry::transports::udp
