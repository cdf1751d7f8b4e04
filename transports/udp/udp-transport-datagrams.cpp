// The udp instance (udp-transport.h): its sockets, and datagrams out and in.
#include "udp-transport.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

namespace ferry::transports::udp {

// --- Sockets. ---

int UdpTransport::openSocket(const sockaddr_storage& bindAddress, bool listener,
                             UdpSocket*& out) {
  auto* socket = new UdpSocket;
  socket->owner = this;
  socket->listener = listener;
  int family = bindAddress.ss_family;
  int err = uv_udp_init_ex(_loop, &socket->handle, static_cast<unsigned>(family) | UV_UDP_RECVMMSG);
  if (err != 0) {
    delete socket;
    return err;
  }
  socket->handle.data = socket;
  ++_liveHandles;
  _sockets.push_back(socket);
  uv_os_fd_t fd;
  err = uv_fileno(reinterpret_cast<uv_handle_t*>(&socket->handle), &fd);
  if (err == 0) {
    socket->fd = fd;
    // Never let the kernel fragment: datagrams keep DF, and a size the path refuses fails or
    // vanishes, which PMTU probing handles (RFC 8899, RFC 8900). PROBE also ignores the
    // kernel's cached PMTU estimate, which an ICMP message could have lowered.
    if (family == AF_INET) {
      int value = IP_PMTUDISC_PROBE;
      setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &value, sizeof(value));
    } else {
      int value = IPV6_PMTUDISC_PROBE;
      setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &value, sizeof(value));
      int on = 1;
      setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &on, sizeof(on));
    }
    int size = static_cast<int>(std::min<uint64_t>(_options.socketBuffer, 1u << 30));
    uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(&socket->handle), &size);
    size = static_cast<int>(std::min<uint64_t>(_options.socketBuffer, 1u << 30));
    uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(&socket->handle), &size);
  }
  if (err == 0) {
    unsigned flags = family == AF_INET6 ? UV_UDP_IPV6ONLY : 0;
    err = uv_udp_bind(&socket->handle, reinterpret_cast<const sockaddr*>(&bindAddress), flags);
  }
  if (err == 0) err = uv_udp_recv_start(&socket->handle, &onAlloc, &onRecv);
  if (err != 0) {
    _sockets.pop_back();
    closeSocket(*socket);
    return err;
  }
  out = socket;
  return 0;
}

UdpSocket* UdpTransport::clientSocket(int family, int& err) {
  UdpSocket*& slot = family == AF_INET ? _clientSocket4 : _clientSocket6;
  if (slot != nullptr) return slot;
  sockaddr_storage any{};
  std::string why;
  err = parseBinding(family == AF_INET ? "0.0.0.0" : "::", "0", true, any, why);
  if (err == 0) err = openSocket(any, false, slot);
  return err == 0 ? slot : nullptr;
}

void UdpTransport::closeSocket(UdpSocket& socket) {
  if (socket.closing) return;
  socket.closing = true;
  // Queued sends get UV_ECANCELED callbacks first, then the close callback.
  uv_close(reinterpret_cast<uv_handle_t*>(&socket.handle), &onSocketClosed);
}

void UdpTransport::onSocketClosed(uv_handle_t* handle) noexcept {
  auto* socket = static_cast<UdpSocket*>(handle->data);
  UdpTransport* self = socket->owner;
  delete socket;
  self->handleClosed();
}

void UdpTransport::onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  // One buffer serves every socket: libuv reads one socket at a time, and each datagram is done
  // with before its callback returns (what must outlive it is copied).
  UdpTransport* self = static_cast<UdpSocket*>(handle->data)->owner;
  buf->base = reinterpret_cast<char*>(self->_recvBuffer.get());
  buf->len = kRecvChunk * kRecvChunks;
}

void UdpTransport::onRecv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                          const sockaddr* addr, unsigned flags) noexcept {
  auto* socket = static_cast<UdpSocket*>(handle->data);
  UdpTransport* self = socket->owner;
  if (self->_destroying || socket->closing) return;
  if (nread < 0) {
    self->logLine(FERRY_LOG_DEBUG, std::string("receive error: ") + uv_strerror(static_cast<int>(nread)));
    return;
  }
  if (addr == nullptr) return;  // nothing read, or the end of a recvmmsg batch
  guarded(self, "receive", [&] {
    std::lock_guard lock(self->_mutex);
    sockaddr_storage from{};
    std::memcpy(&from, addr, addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    if ((flags & UV_UDP_PARTIAL) != 0) {
      self->dropped(self->_counters.dropped_malformed, "datagram larger than the buffer", from);
      return;
    }
    self->received(*socket, reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread),
                   from);
  });
}

// --- Datagrams out. ---

int UdpTransport::sendDatagram(UdpSocket& socket, const sockaddr_storage& peer,
                               const DatagramPieces& datagram) {
  ++_counters.datagrams_sent;
  _counters.bytes_sent += datagram.total;
#ifdef FERRY_UDP_FAULT_LAYER
  if (_faultTx) {
    std::vector<uint8_t> whole = datagram.joined();
    return sendThroughFaults(socket, peer, whole.data(), whole.size());
  }
#endif
  return rawSend(socket, peer, datagram);
}

int UdpTransport::rawSend(UdpSocket& socket, const sockaddr_storage& peer,
                          const DatagramPieces& datagram) {
  if (socket.closing) return UV_EBADF;
  if (_offLoop) return sendOffLoop(socket, peer, datagram);
  size_t size = datagram.total;
  uv_buf_t bufs[DatagramPieces::kMaxPieces];
  unsigned count = 0;
  for (size_t i = 0; i < datagram.count; ++i) {
    bufs[count++] = uv_buf_init(reinterpret_cast<char*>(const_cast<uint8_t*>(datagram.data[i])),
                                static_cast<unsigned>(datagram.size[i]));
  }
  // An empty datagram (the fault layer truncates some to nothing) is one empty piece: libuv
  // asserts on a send of no buffers, which would abort the process.
  if (count == 0) bufs[count++] = uv_buf_init(nullptr, 0);
  const sockaddr* address = reinterpret_cast<const sockaddr*>(&peer);
  int rc = uv_udp_try_send(&socket.handle, bufs, count, address);
  if (rc >= 0) return 0;
  if (rc != UV_EAGAIN) return sendFailed(rc, size, peer);
  // The socket buffer is full, or earlier datagrams are still queued: queue this one behind.
  if (_kernelQueued + size > kMaxKernelQueue) {
    ++_counters.send_queue_drops;
    return 0;
  }
  auto queued = std::make_unique<QueuedSend>();
  queued->owner = this;
  queued->size = size;
  queued->bytes.reset(new uint8_t[size]);
  datagram.copyTo(queued->bytes.get());
  queued->request.data = queued.get();
  uv_buf_t copy = uv_buf_init(reinterpret_cast<char*>(queued->bytes.get()), static_cast<unsigned>(size));
  rc = uv_udp_send(&queued->request, &socket.handle, &copy, 1, address, &onSent);
  if (rc != 0) {
    ++_counters.send_errors;
    return rc;
  }
  _kernelQueued += size;
  queued.release();  // onSent frees it
  return 0;
}

int UdpTransport::sendOffLoop(UdpSocket& socket, const sockaddr_storage& peer,
                              const DatagramPieces& datagram) {
  size_t size = datagram.total;
  if (_kernelQueued == 0) {
    // libuv's send queue is empty, so this datagram overtakes none of the loop's.
    iovec pieces[DatagramPieces::kMaxPieces];
    for (size_t i = 0; i < datagram.count; ++i) {
      pieces[i].iov_base = const_cast<uint8_t*>(datagram.data[i]);
      pieces[i].iov_len = datagram.size[i];
    }
    msghdr message{};
    message.msg_name = const_cast<sockaddr_storage*>(&peer);
    message.msg_namelen = peer.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    message.msg_iov = pieces;
    message.msg_iovlen = datagram.count;
    ssize_t sent;
    do {
      sent = ::sendmsg(socket.fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent >= 0) return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return sendFailed(-errno, size, peer);
  }
  if (_kernelQueued + _handedOffBytes + size > kMaxKernelQueue) {
    ++_counters.send_queue_drops;
    return 0;
  }
  _handedOff.push_back({&socket, peer, datagram.joined()});
  _handedOffBytes += size;
  wakeLoop();
  return 0;
}

int UdpTransport::sendFailed(int rc, size_t size, const sockaddr_storage& peer) {
  ++_counters.send_errors;
  if (rc != UV_EMSGSIZE) {
    logLine(FERRY_LOG_DEBUG, "sending " + std::to_string(size) + " bytes to " +
                                 formatAddress(peer) + " failed: " + uv_strerror(rc));
  }
  return rc;
}

void UdpTransport::onSent(uv_udp_send_t* request, int status) noexcept {
  std::unique_ptr<QueuedSend> queued(static_cast<QueuedSend*>(request->data));
  UdpTransport* self = queued->owner;
  std::lock_guard lock(self->_mutex);
  self->_kernelQueued -= queued->size;
  if (status < 0 && status != UV_ECANCELED) ++self->_counters.send_errors;
}

void UdpTransport::sendUnvalidated(UdpSocket& socket, const sockaddr_storage& peer,
                                   const uint8_t* data, size_t size) {
  _counters.unvalidated_bytes_sent += size;
  ++_counters.unvalidated_datagrams_sent;
  sendDatagram(socket, peer, DatagramPieces(data, size));
}

int UdpTransport::transmit(Session& session, const DatagramPieces& datagram) {
  auto* socket = static_cast<UdpSocket*>(session.socket());
  return sendDatagram(*socket, session.peer(), datagram);
}

// --- Datagrams in. ---

void UdpTransport::received(UdpSocket& socket, const uint8_t* data, size_t size,
                            const sockaddr_storage& from) {
#ifdef FERRY_UDP_FAULT_LAYER
  if (_faultRx) return receiveThroughFaults(socket, data, size, from);
#endif
  process(socket, data, size, from);
}

void UdpTransport::unvalidated(size_t size) noexcept {
  _counters.unvalidated_bytes_received += size;
  ++_counters.unvalidated_datagrams_received;
}

void UdpTransport::dropped(uint64_t& counter, const char* why, const sockaddr_storage& from) {
  ++counter;
  logLine(FERRY_LOG_DEBUG, std::string("dropped a datagram from ") + formatAddress(from) + ": " + why);
}

void UdpTransport::process(UdpSocket& socket, const uint8_t* data, size_t size,
                           const sockaddr_storage& from) {
  if (_destroying || socket.closing) return;
  ++_counters.datagrams_received;
  _counters.bytes_received += size;
  Header header;
  const uint8_t* frames = nullptr;
  size_t framesSize = 0;
  DecodeError error = decodePacket(data, size, header, frames, framesSize);
  if (error != DecodeError::none) {
    unvalidated(size);
    uint64_t& counter = error == DecodeError::badCrc       ? _counters.dropped_crc
                        : error == DecodeError::badVersion ? _counters.dropped_version
                                                           : _counters.dropped_malformed;
    dropped(counter, decodeErrorName(error), from);
    return;
  }
  switch (header.type) {
    case PacketType::hello:
      handleHello(socket, header, frames, framesSize, size, from);
      break;
    case PacketType::cookie:
      handleCookie(socket, header, frames, framesSize, from);
      break;
    case PacketType::handshake:
      handleHandshake(socket, header, frames, framesSize, from);
      break;
    case PacketType::reject:
      unvalidated(size);
      handleReject(socket, header, frames, framesSize, from);
      break;
    case PacketType::shortHeader:
      handleShort(socket, header, frames, framesSize, size, from);
      break;
  }
}

Session* UdpTransport::findSession(uint64_t localId) const {
  auto found = _sessions.find(localId);
  return found == _sessions.end() ? nullptr : found->second.get();
}

Session* UdpTransport::routed(UdpSocket& socket, uint64_t localId, const sockaddr_storage& from) {
  Session* session = findSession(localId);
  if (session == nullptr) return nullptr;
  // Sessions at level NONE are pinned to their 4-tuple (A3.11).
  if (session->socket() != &socket || !sameEndpoint(session->peer(), from)) return nullptr;
  return session;
}

}  // namespace ferry::transports::udp
