// NewReno congestion control with pacing (RFC 9002 §7, §7.7), one controller per remote IP
// address, shared by every session of an instance to that address (RFC 8085 §3.1 asks for
// congestion control per destination, not per flow).
//
// Pure like Recovery: time comes in as nanoseconds. Sessions report what they send, what is
// acknowledged and what is lost; the controller answers whether a packet may go now and, when
// the pacer holds it back, when it may.
#pragma once

#include <cstdint>

namespace ferry::transports::udp {

class CongestionController {
public:
  explicit CongestionController(uint64_t maxDatagramSize) noexcept;

  // RFC 9002 §7.2: min(10·mds, max(14720, 2·mds)).
  static uint64_t initialWindow(uint64_t maxDatagramSize) noexcept;

  // Packets counted in flight (not ACK-only packets, not PMTU probes).
  void onSent(uint64_t bytes, uint64_t nowNs) noexcept;
  // A packet sent at `timeSent` was acknowledged.
  void onAcked(uint64_t bytes, uint64_t timeSent, uint64_t nowNs) noexcept;
  // Packets were lost; the newest of them was sent at `newestLostSent`. Enters recovery once per
  // round trip (losses of packets sent before the recovery started are not a new signal).
  void onLost(uint64_t bytes, uint64_t newestLostSent, uint64_t nowNs) noexcept;
  // RFC 9002 §7.6: back to the minimum window.
  void onPersistentCongestion() noexcept;
  // Bytes that leave flight without telling anything about the network (a closed session).
  void onDiscarded(uint64_t bytes) noexcept;
  // The latest smoothed RTT of a session on this path, for the pacing rate.
  void onRttSample(uint64_t smoothedRttNs) noexcept { _smoothedRttNs = smoothedRttNs; }
  // A session on this path now sends datagrams this large.
  void onDatagramSize(uint64_t maxDatagramSize) noexcept;

  // True when `bytes` more fit the congestion window.
  bool canSend(uint64_t bytes) const noexcept { return _bytesInFlight + bytes <= _window; }
  // 0 when the pacer lets `bytes` go at `nowNs`, else the time it will.
  uint64_t pacedUntil(uint64_t bytes, uint64_t nowNs) noexcept;
  // Takes `bytes` from the pacer's budget (after canSend/pacedUntil said yes).
  void consumePacing(uint64_t bytes, uint64_t nowNs) noexcept;

  uint64_t window() const noexcept { return _window; }
  uint64_t bytesInFlight() const noexcept { return _bytesInFlight; }
  uint64_t slowStartThreshold() const noexcept { return _ssthresh; }
  bool inRecovery(uint64_t timeSent) const noexcept {
    return _recoveryStart != 0 && timeSent <= _recoveryStart;
  }

private:
  void refill(uint64_t nowNs) noexcept;
  uint64_t bucketSize() const noexcept;
  uint64_t minimumWindow() const noexcept { return 2 * _maxDatagramSize; }

  uint64_t _maxDatagramSize;
  uint64_t _window;
  uint64_t _ssthresh = UINT64_MAX;
  uint64_t _bytesInFlight = 0;
  uint64_t _peakInFlight = 0;   // since flight last drained: was the window used?
  uint64_t _recoveryStart = 0;  // send time before which losses are part of the current event
  uint64_t _ackedInAvoidance = 0;
  uint64_t _smoothedRttNs = 0;  // 0: no sample yet, no pacing
  // Pacer: a token bucket refilled at 1.25·cwnd/srtt.
  uint64_t _tokens;
  uint64_t _lastRefill = 0;
};

}  // namespace ferry::transports::udp
