#include "recovery.h"

#include <algorithm>

namespace ferry::transports::udp {

namespace {

// Lost packets remembered for spotting spurious losses.
constexpr size_t kRecentlyLostKept = 512;

}  // namespace

// --- RttEstimator. ---

void RttEstimator::update(uint64_t sampleNs, uint64_t ackDelayNs) noexcept {
  _latest = sampleNs;
  if (sampleNs < _min) _min = sampleNs;
  if (!_hasSample) {
    _hasSample = true;
    _smoothed = sampleNs;
    _variance = sampleNs / 2;
    return;
  }
  // The peer's ack delay is subtracted only while the result stays at or above min_rtt.
  uint64_t adjusted = sampleNs;
  if (sampleNs >= _min + ackDelayNs) adjusted = sampleNs - ackDelayNs;
  uint64_t deviation = _smoothed > adjusted ? _smoothed - adjusted : adjusted - _smoothed;
  _variance = (3 * _variance + deviation) / 4;
  _smoothed = (7 * _smoothed + adjusted) / 8;
}

uint64_t RttEstimator::pto(uint64_t maxAckDelayNs) const noexcept {
  return _smoothed + std::max(4 * _variance, kGranularityNs) + maxAckDelayNs;
}

// --- Recovery. ---

void Recovery::onSent(SentPacket packet, uint64_t nowNs) {
  packet.timeSent = nowNs;
  packet.done = false;
  if (packet.inFlight) _bytesInFlight += packet.size;
  ++_outstanding;
  _lastAckElicitingSent = nowNs;
  _lastSentImmediate = packet.immediateAck;
  _sent.push_back(std::move(packet));
}

void Recovery::finish(SentPacket& packet, std::vector<SentPacket>& into) {
  packet.done = true;
  --_outstanding;
  if (packet.inFlight) _bytesInFlight -= packet.size;
  into.push_back(std::move(packet));
  into.back().done = true;
}

void Recovery::popDone() noexcept {
  while (!_sent.empty() && _sent.front().done) _sent.pop_front();
}

uint64_t Recovery::persistentCongestionNs(uint64_t maxAckDelayNs) const noexcept {
  uint64_t base = _rtt.smoothed() + std::max(4 * _rtt.variance(), kGranularityNs) + maxAckDelayNs;
  return 3 * base;  // RFC 9002 kPersistentCongestionThreshold
}

void Recovery::onAck(const AckFrame& ack, uint64_t nowNs, uint64_t maxAckDelayNs,
                     AckOutcome& out) {
  _maxAckDelayNs = maxAckDelayNs;
  size_t ackedBefore = out.acked.size();
  uint64_t largestBefore = _hasLargestAcked ? _largestAcked : 0;
  bool largestNewlyAcked = false;
  uint64_t largestSentTime = 0;
  for (size_t r = 0; r < ack.rangeCount; ++r) {
    uint64_t low = ack.low[r];
    uint64_t high = ack.high[r];
    auto it = std::lower_bound(_sent.begin(), _sent.end(), low,
                               [](const SentPacket& p, uint64_t pn) { return p.pn < pn; });
    for (; it != _sent.end() && it->pn <= high; ++it) {
      if (it->done) continue;
      if (it->pn == ack.largest()) {
        largestNewlyAcked = true;
        largestSentTime = it->timeSent;
      }
      finish(*it, out.acked);
    }
  }
  if (!_hasLargestAcked || ack.largest() > _largestAcked) {
    _hasLargestAcked = true;
    _largestAcked = ack.largest();
  }
  noteSpurious(ack, out);
  bool anyNewlyAcked = out.acked.size() > ackedBefore;
  if (largestNewlyAcked) {
    uint64_t delay = std::min<uint64_t>(ack.delayUs * 1000, maxAckDelayNs);
    _rtt.update(nowNs > largestSentTime ? nowNs - largestSentTime : 0, delay);
    out.rttSampled = true;
  }
  if (anyNewlyAcked) _ptoCount = 0;

  size_t lostBefore = out.lost.size();
  detectLost(nowNs, out);

  // RFC 9002 §7.6.2: two ack-eliciting packets lost more than the period apart, none of the
  // packets sent between them acknowledged (before this ACK, approximated by the largest
  // acknowledged so far), and an RTT sample from before them.
  if (out.lost.size() - lostBefore >= 2 && _rtt.hasSample()) {
    const SentPacket& first = out.lost[lostBefore];
    const SentPacket& last = out.lost.back();
    bool ackedBetween = _newestAckedSent > first.timeSent ||
                        (largestBefore > first.pn && largestBefore < last.pn);
    for (size_t i = ackedBefore; i < out.acked.size() && !ackedBetween; ++i) {
      ackedBetween = out.acked[i].pn > first.pn && out.acked[i].pn < last.pn;
    }
    if (!ackedBetween && last.timeSent - first.timeSent > persistentCongestionNs(maxAckDelayNs)) {
      out.persistentCongestion = true;
    }
  }
  for (size_t i = ackedBefore; i < out.acked.size(); ++i) {
    _newestAckedSent = std::max(_newestAckedSent, out.acked[i].timeSent);
  }
  popDone();
}

void Recovery::noteSpurious(const AckFrame& ack, AckOutcome& out) {
  if (_recentlyLost.empty()) return;
  for (size_t r = 0; r < ack.rangeCount; ++r) {
    auto it = std::lower_bound(_recentlyLost.begin(), _recentlyLost.end(), ack.low[r],
                               [](const LostRecord& l, uint64_t pn) { return l.pn < pn; });
    while (it != _recentlyLost.end() && it->pn <= ack.high[r]) {
      ++out.spurious;
      uint64_t distance = it->largestAcked - it->pn + 1;
      _packetThreshold = std::max(_packetThreshold, std::min(distance, kMaxPacketThreshold));
      _timeThresholdEighths = std::min(2 * _timeThresholdEighths, kMaxTimeThresholdEighths);
      it = _recentlyLost.erase(it);
    }
  }
}

void Recovery::detectLost(uint64_t nowNs, AckOutcome& out) {
  _lossTime = 0;
  if (!_hasLargestAcked) return;
  uint64_t lossDelay = std::max<uint64_t>(
      _timeThresholdEighths * std::max(_rtt.latest(), _rtt.smoothed()) / 8, kGranularityNs);
  for (SentPacket& packet : _sent) {
    if (packet.pn > _largestAcked) break;
    if (packet.done) continue;
    if (packet.pn + _packetThreshold <= _largestAcked || packet.timeSent + lossDelay <= nowNs) {
      _recentlyLost.push_back({packet.pn, _largestAcked});
      if (_recentlyLost.size() > kRecentlyLostKept) _recentlyLost.pop_front();
      finish(packet, out.lost);
    } else {
      uint64_t when = packet.timeSent + lossDelay;
      if (_lossTime == 0 || when < _lossTime) _lossTime = when;
    }
  }
}

uint64_t Recovery::deadline(uint64_t maxAckDelayNs) const noexcept {
  if (_lossTime != 0) return _lossTime;
  if (_outstanding == 0) return 0;
  uint64_t pto = _rtt.pto(_lastSentImmediate ? 0 : maxAckDelayNs);
  for (uint32_t i = 0; i < _ptoCount && pto < kMaxPtoBackoffNs; ++i) pto *= 2;
  if (pto > kMaxPtoBackoffNs) pto = kMaxPtoBackoffNs;
  return _lastAckElicitingSent + pto;
}

bool Recovery::onTimeout(uint64_t nowNs, uint64_t maxAckDelayNs, AckOutcome& out) {
  _maxAckDelayNs = maxAckDelayNs;
  if (_lossTime != 0 && nowNs >= _lossTime) {
    detectLost(nowNs, out);
    popDone();
    return false;
  }
  if (_ptoCount < 32) ++_ptoCount;
  return true;
}

uint64_t Recovery::setAsideFlight() noexcept {
  uint64_t bytes = 0;
  for (SentPacket& packet : _sent) {
    if (packet.done || !packet.inFlight) continue;
    packet.inFlight = false;
    packet.setAside = true;
    bytes += packet.size;
  }
  _bytesInFlight -= bytes;
  return bytes;
}

const SentPacket* Recovery::oldestOutstanding() const noexcept {
  for (const SentPacket& packet : _sent) {
    if (!packet.done) return &packet;
  }
  return nullptr;
}

}  // namespace ferry::transports::udp
