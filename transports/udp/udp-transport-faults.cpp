// The udp instance (udp-transport.h): the fault layer, in the test-only build alone.
#include "udp-transport.h"

namespace ferry::transports::udp {

#ifdef FERRY_UDP_FAULT_LAYER
// --- The fault layer (test build only). ---

void UdpTransport::receiveThroughFaults(UdpSocket& socket, const uint8_t* data, size_t size,
                                        const sockaddr_storage& from) {
  FaultCopy copies[2];
  size_t count = _faultRx->decide(size, copies);
  for (size_t i = 0; i < count && !_destroying && !socket.closing; ++i) {
    const FaultCopy& copy = copies[i];
    if (copy.delayNs > 0) {
      hold(false, socket, from, data, copy);
    } else if (copy.length == size && copy.flipBit < 0) {
      process(socket, data, size, from);
    } else {
      std::vector<uint8_t> changed(data, data + copy.length);
      if (copy.flipBit >= 0) changed[static_cast<size_t>(copy.flipBit / 8)] ^= uint8_t(1u << (copy.flipBit % 8));
      process(socket, changed.data(), changed.size(), from);
    }
  }
}

int UdpTransport::sendThroughFaults(UdpSocket& socket, const sockaddr_storage& peer,
                                    const uint8_t* data, size_t size) {
  FaultCopy copies[2];
  size_t count = _faultTx->decide(size, copies);
  int result = 0;
  for (size_t i = 0; i < count; ++i) {
    const FaultCopy& copy = copies[i];
    if (copy.delayNs > 0) {
      hold(true, socket, peer, data, copy);
      continue;
    }
    if (copy.length == size && copy.flipBit < 0) {
      int err = rawSend(socket, peer, data, size);
      if (i == 0) result = err;
      continue;
    }
    std::vector<uint8_t> changed(data, data + copy.length);
    if (copy.flipBit >= 0) changed[static_cast<size_t>(copy.flipBit / 8)] ^= uint8_t(1u << (copy.flipBit % 8));
    rawSend(socket, peer, changed.data(), changed.size());
  }
  return result;
}

void UdpTransport::hold(bool outgoing, UdpSocket& socket, const sockaddr_storage& peer,
                        const uint8_t* data, const FaultCopy& copy) {
  HeldDatagram held;
  held.outgoing = outgoing;
  held.socket = &socket;
  held.peer = peer;
  held.bytes.assign(data, data + copy.length);
  if (copy.flipBit >= 0) {
    held.bytes[static_cast<size_t>(copy.flipBit / 8)] ^= uint8_t(1u << (copy.flipBit % 8));
  }
  _held.emplace(uv_hrtime() + copy.delayNs, std::move(held));
  armFaultTimer();
}

void UdpTransport::armFaultTimer() {
  if (_held.empty() || _destroying) return;
  if (_offLoop) {
    wakeLoop();
    return;
  }
  uv_update_time(_loop);
  uint64_t t = uv_hrtime();
  uint64_t due = _held.begin()->first;
  uint64_t delayMs = due > t ? (due - t + kNsPerMs - 1) / kNsPerMs : 0;
  uv_timer_start(&_faultTimer, &onFaultTimer, delayMs, 0);
}

void UdpTransport::onFaultTimer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<UdpTransport*>(timer->data);
  guarded(self, "fault timer", [&] {
    std::lock_guard lock(self->_mutex);
    uint64_t t = uv_hrtime() + kGranularityNs;
    std::vector<HeldDatagram> due;
    while (!self->_held.empty() && self->_held.begin()->first <= t) {
      due.push_back(std::move(self->_held.begin()->second));
      self->_held.erase(self->_held.begin());
    }
    for (HeldDatagram& held : due) {
      if (self->_destroying) return;
      if (held.outgoing) {
        self->rawSend(*held.socket, held.peer, held.bytes.data(), held.bytes.size());
      } else {
        self->process(*held.socket, held.bytes.data(), held.bytes.size(), held.peer);
      }
    }
    self->armFaultTimer();
  });
}
#endif

}  // namespace ferry::transports::udp
