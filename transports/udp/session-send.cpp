// One udp session (session.h): sending (packets, CLOSE, PMTU probes) and timers.
#include "session.h"

#include <uv.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include <ferry/plugin/plugin.h>

#include "session-limits.h"

namespace ferry::transports::udp {

// --- Sending. ---

void Session::finishPacket(Writer& out, uint64_t now, bool ackEliciting, bool inFlight,
                           bool probe, bool immediateAck) {
  if (out.overflow() || out.remaining() < kCrcSize) {
    _holes.clear();
    _env.log(FERRY_LOG_ERROR, "session to " + _config.peerText + ": a packet overflowed its buffer");
    return;
  }
  // The datagram is the buffer with each hole's payload in its place; the CRC covers it so.
  DatagramPieces datagram;
  uint32_t crc = 0;
  size_t at = 0;
  for (const Hole& hole : _holes) {
    crc = crc32c(out.data() + at, hole.offset - at, crc);
    crc = crc32c(hole.bytes, hole.length, crc);
    datagram.add(out.data() + at, hole.offset - at);
    datagram.add(hole.bytes, hole.length);
    at = hole.offset + hole.length;
  }
  _holes.clear();
  out.u32(crc32c(out.data() + at, out.size() - at, crc));
  datagram.add(out.data() + at, out.size() - at);
  int err = _env.transmit(*this, datagram);
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
  // A silent peer's probes are kept out of the shared window like the rest of its flight.
  packet.setAside = inFlight && _peerSilent;
  inFlight = inFlight && !_peerSilent;
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
      if (_peerSilent) {
        // Nothing new into a silence: the probes carry what is due until the peer answers.
      } else if (!cc.canSend(_maxDatagram)) {
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
        if (chunk.length >= kGatherMinBytes && _holes.size() < kMaxHoles) {
          // Sent from the outbox: the CRC and the kernel read it there, and nothing copies it.
          _holes.push_back({out.size(), chunk.bytes, chunk.length});
          out.skip(chunk.length);
        } else {
          out.bytes(chunk.bytes, chunk.length);
        }
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

}  // namespace ferry::transports::udp
