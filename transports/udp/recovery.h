// Loss detection and RTT estimation for one session and direction, after RFC 9002 §5–6 (packet
// numbers are never reused, so every ACK gives an unambiguous RTT sample).
//
// The class is pure: time is passed in (nanoseconds on any monotonic clock), nothing is sent. The
// session records each ack-eliciting packet it sends, feeds ACK frames and timer expiries in, and
// gets back which packets were acknowledged and which are lost; what to retransmit is the
// session's business (a lost packet's frames, under a new packet number).
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "wire.h"

namespace ferry::transports::udp {

inline constexpr uint64_t kGranularityNs = 1000000;  // 1 ms: libuv's timer resolution
inline constexpr uint64_t kPacketThreshold = 3;
// Reordering adaptation (RFC 9002 §6.1.1-6.1.2 allow it): ceilings for the packet threshold and
// for the time threshold, in eighths of an RTT.
inline constexpr uint64_t kMaxPacketThreshold = 64;
inline constexpr uint64_t kInitialTimeThresholdEighths = 9;
inline constexpr uint64_t kMaxTimeThresholdEighths = 64;
inline constexpr uint64_t kMaxPtoBackoffNs = 60ull * 1000000000;

class RttEstimator {
public:
  explicit RttEstimator(uint64_t initialRttNs) noexcept
      : _smoothed(initialRttNs), _variance(initialRttNs / 2) {}

  // RFC 9002 §5.3. `ackDelayNs` is what the peer reported, already capped by the caller.
  void update(uint64_t sampleNs, uint64_t ackDelayNs) noexcept;

  bool hasSample() const noexcept { return _hasSample; }
  uint64_t latest() const noexcept { return _latest; }
  uint64_t smoothed() const noexcept { return _smoothed; }
  uint64_t variance() const noexcept { return _variance; }
  uint64_t minRtt() const noexcept { return _min; }
  // srtt + max(4·rttvar, kGranularity) + maxAckDelay (RFC 9002 §6.2.1).
  uint64_t pto(uint64_t maxAckDelayNs) const noexcept;

private:
  bool _hasSample = false;
  uint64_t _latest = 0;
  uint64_t _smoothed;
  uint64_t _variance;
  uint64_t _min = UINT64_MAX;
};

// What one sent packet carried that matters once it is acknowledged or lost.
struct SentFrame {
  enum class Kind : uint8_t {
    data,           // msgId, offset, length
    credit,         // msgId: resend the current CREDIT if still useful
    sessionCredit,  // resend the current SESSION_CREDIT
    hello,          // resend the client's HELLO
    handshake,      // resend the server's HANDSHAKE
    ping,           // nothing to resend
    pmtuProbe,      // length: the probed size
  };
  Kind kind = Kind::ping;
  uint64_t msgId = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
};

struct SentPacket {
  uint64_t pn = 0;
  uint64_t timeSent = 0;
  uint32_t size = 0;
  bool inFlight = true;   // counted in bytes in flight (everything but PMTU probes)
  // Was in flight, and was set aside because the peer went silent (Recovery::setAsideFlight):
  // its bytes no longer count, but its loss is still a congestion signal.
  bool setAside = false;
  bool immediateAck = false;  // carried IMMEDIATE_ACK: the peer acknowledges it without delay
  bool done = false;      // acknowledged, lost or discarded: kept only until it reaches the front
  std::vector<SentFrame> frames;
};

struct AckOutcome {
  std::vector<SentPacket> acked;
  std::vector<SentPacket> lost;
  bool rttSampled = false;
  // Packets declared lost earlier that this ACK acknowledged after all (reordering, not loss).
  uint64_t spurious = 0;
  // RFC 9002 §7.6: the lost packets span a persistent-congestion period.
  bool persistentCongestion = false;
};

class Recovery {
public:
  explicit Recovery(uint64_t initialRttNs) noexcept : _rtt(initialRttNs) {}

  // Records an ack-eliciting packet just sent. Packet numbers must increase.
  void onSent(SentPacket packet, uint64_t nowNs);

  // Applies an ACK frame whose ranges lie below the next packet number; fills `out` with what it
  // newly acknowledged and what is now lost. `maxAckDelayNs` is the peer's (0 during the
  // handshake, RFC 9002 §6.2.1).
  void onAck(const AckFrame& ack, uint64_t nowNs, uint64_t maxAckDelayNs, AckOutcome& out);

  // When the loss-detection timer should fire next (0: no timer). The peer's max_ack_delay is
  // left out when the newest packet asked for an immediate ACK.
  uint64_t deadline(uint64_t maxAckDelayNs) const noexcept;
  // The timer fired: either packets are now lost (returns false, `out.lost` filled) or it is a
  // probe timeout (returns true): the caller sends one or two ack-eliciting probes.
  bool onTimeout(uint64_t nowNs, uint64_t maxAckDelayNs, AckOutcome& out);

  // Forgets packets without calling them lost (a HELLO answered by a COOKIE, a closing session);
  // returns them so their bytes leave the congestion controller.
  template <typename Pred>
  void discardIf(Pred&& pred, std::vector<SentPacket>& out);

  // Takes every outstanding packet out of the bytes in flight (marking it setAside) and returns
  // their bytes, which the caller takes out of its congestion controller.
  uint64_t setAsideFlight() noexcept;

  // The oldest packet still outstanding, whose frames a probe repeats; null when none is.
  const SentPacket* oldestOutstanding() const noexcept;

  const RttEstimator& rtt() const noexcept { return _rtt; }
  RttEstimator& rtt() noexcept { return _rtt; }
  uint32_t ptoCount() const noexcept { return _ptoCount; }
  void resetPtoCount() noexcept { _ptoCount = 0; }
  // Ack-eliciting packets outstanding, and their bytes (in-flight ones only).
  size_t outstanding() const noexcept { return _outstanding; }
  uint64_t bytesInFlight() const noexcept { return _bytesInFlight; }
  uint64_t packetThreshold() const noexcept { return _packetThreshold; }
  uint64_t timeThresholdEighths() const noexcept { return _timeThresholdEighths; }

private:
  void detectLost(uint64_t nowNs, AckOutcome& out);
  void noteSpurious(const AckFrame& ack, AckOutcome& out);
  void finish(SentPacket& packet, std::vector<SentPacket>& into);
  void popDone() noexcept;
  uint64_t persistentCongestionNs(uint64_t maxAckDelayNs) const noexcept;

  RttEstimator _rtt;
  std::deque<SentPacket> _sent;  // ascending pn; `done` entries are skipped
  size_t _outstanding = 0;
  uint64_t _bytesInFlight = 0;
  bool _hasLargestAcked = false;
  uint64_t _largestAcked = 0;
  uint64_t _lossTime = 0;  // 0: not armed
  uint64_t _lastAckElicitingSent = 0;
  bool _lastSentImmediate = false;  // the newest packet asked for an immediate ACK
  uint32_t _ptoCount = 0;
  // Send time of the newest packet ever acknowledged, for the persistent-congestion check.
  uint64_t _newestAckedSent = 0;
  uint64_t _maxAckDelayNs = 0;  // as of the last call, for the persistent-congestion period
  // Recently declared lost, with the largest acknowledged pn at the time: an ACK of one of
  // them shows how far packets are reordered, and the thresholds grow to tolerate it.
  struct LostRecord {
    uint64_t pn;
    uint64_t largestAcked;
  };
  std::deque<LostRecord> _recentlyLost;  // ascending pn
  uint64_t _packetThreshold = kPacketThreshold;
  uint64_t _timeThresholdEighths = kInitialTimeThresholdEighths;
};

template <typename Pred>
void Recovery::discardIf(Pred&& pred, std::vector<SentPacket>& out) {
  for (SentPacket& packet : _sent) {
    if (!packet.done && pred(packet)) finish(packet, out);
  }
  popDone();
  if (_outstanding == 0) _lossTime = 0;
}

}  // namespace ferry::transports::udp
