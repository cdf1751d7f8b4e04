#include "congestion.h"

#include <algorithm>

namespace ferry::transports::udp {

namespace {

// The pacer keeps enough budget for this long at its rate: libuv's timers have 1 ms
// granularity, so a smaller bucket would throttle a fast path to one burst per tick.
constexpr uint64_t kBurstIntervalNs = 2000000;
constexpr uint64_t kInitialBurstPackets = 10;

}  // namespace

CongestionController::CongestionController(uint64_t maxDatagramSize) noexcept
    : _maxDatagramSize(maxDatagramSize),
      _window(initialWindow(maxDatagramSize)),
      _tokens(kInitialBurstPackets * maxDatagramSize) {}

uint64_t CongestionController::initialWindow(uint64_t maxDatagramSize) noexcept {
  return std::min<uint64_t>(10 * maxDatagramSize,
                            std::max<uint64_t>(14720, 2 * maxDatagramSize));
}

void CongestionController::onSent(uint64_t bytes, uint64_t) noexcept {
  _bytesInFlight += bytes;
  _peakInFlight = std::max(_peakInFlight, _bytesInFlight);
}

void CongestionController::onAcked(uint64_t bytes, uint64_t timeSent, uint64_t) noexcept {
  _bytesInFlight -= std::min(bytes, _bytesInFlight);
  bool used = 2 * _peakInFlight >= _window;
  if (_bytesInFlight == 0) _peakInFlight = 0;
  if (inRecovery(timeSent)) return;
  // RFC 9002 §7.8: an application-limited sender does not grow its window. Approximated as in
  // Linux's tcp_is_cwnd_limited: the window grows only if at least half of it was in use since
  // flight last drained.
  if (!used) return;
  if (_window < _ssthresh) {
    _window += bytes;
    return;
  }
  _ackedInAvoidance += bytes;
  if (_ackedInAvoidance >= _window) {
    _ackedInAvoidance -= _window;
    _window += _maxDatagramSize;
  }
}

void CongestionController::onLost(uint64_t bytes, uint64_t newestLostSent,
                                  uint64_t nowNs) noexcept {
  _bytesInFlight -= std::min(bytes, _bytesInFlight);
  if (_bytesInFlight == 0) _peakInFlight = 0;
  if (inRecovery(newestLostSent)) return;
  _recoveryStart = nowNs;
  _window = std::max(_window / 2, minimumWindow());
  _ssthresh = _window;
  _ackedInAvoidance = 0;
}

void CongestionController::onPersistentCongestion() noexcept {
  _window = minimumWindow();
  _ackedInAvoidance = 0;
}

void CongestionController::onDiscarded(uint64_t bytes) noexcept {
  _bytesInFlight -= std::min(bytes, _bytesInFlight);
  if (_bytesInFlight == 0) _peakInFlight = 0;
}

void CongestionController::onDatagramSize(uint64_t maxDatagramSize) noexcept {
  if (maxDatagramSize <= _maxDatagramSize) return;
  _maxDatagramSize = maxDatagramSize;
  _window = std::max(_window, minimumWindow());
}

uint64_t CongestionController::bucketSize() const noexcept {
  uint64_t floor = kInitialBurstPackets * _maxDatagramSize;
  if (_smoothedRttNs == 0) return std::max(floor, _window);
  // 1.25·cwnd/srtt bytes per ns, for kBurstIntervalNs; never more than a window.
  long double perInterval =
      1.25L * static_cast<long double>(_window) * kBurstIntervalNs / _smoothedRttNs;
  uint64_t burst = perInterval > static_cast<long double>(_window)
                       ? _window
                       : static_cast<uint64_t>(perInterval);
  return std::max(floor, burst);
}

void CongestionController::refill(uint64_t nowNs) noexcept {
  uint64_t cap = bucketSize();
  if (_smoothedRttNs == 0 || _lastRefill == 0) {
    _tokens = cap;
    _lastRefill = nowNs;
    return;
  }
  if (nowNs <= _lastRefill) return;
  long double earned = 1.25L * static_cast<long double>(_window) *
                       static_cast<long double>(nowNs - _lastRefill) / _smoothedRttNs;
  long double tokens = static_cast<long double>(_tokens) + earned;
  _tokens = tokens >= static_cast<long double>(cap) ? cap : static_cast<uint64_t>(tokens);
  _lastRefill = nowNs;
}

uint64_t CongestionController::pacedUntil(uint64_t bytes, uint64_t nowNs) noexcept {
  refill(nowNs);
  if (_tokens >= bytes || _smoothedRttNs == 0) return 0;
  long double missing = static_cast<long double>(bytes - _tokens);
  long double waitNs = missing * _smoothedRttNs / (1.25L * static_cast<long double>(_window));
  return nowNs + static_cast<uint64_t>(waitNs) + 1;
}

void CongestionController::consumePacing(uint64_t bytes, uint64_t nowNs) noexcept {
  refill(nowNs);
  _tokens -= std::min(bytes, _tokens);
}

}  // namespace ferry::transports::udp
