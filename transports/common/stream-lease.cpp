// StreamTransport's read leases: a thread waiting for a reply on an outgoing connection reads
// the connection itself (ferry_transport_v1 receive_any_thread), so that the loop's thread is not
// woken to read the reply and then wake the waiter, two thread switches per call. This is how
// omniORB's and Ice's clients wait: the calling thread blocks on its own socket.
//
// An outgoing connection is read through the instance's read set, an epoll descriptor that the
// loop watches with a uv_poll_t, rather than through uv_read_start: a thread can take a socket out
// of an epoll set from any thread (epoll_ctl), and libuv's own set is libuv's. While its socket is
// in the set, the loop reads it (pullLeased) and delivers as libuv would have. A waiting thread
// takes the lease when the loop holds nothing of the stream (no partial message, no returned
// bytes, not delivering): it takes the socket out of the set, reads and waits on it with poll(),
// offers what it reads to its `take`, and puts the socket back. What it read and did not take goes
// to the loop (ReadLease::returned, through the handover async), which delivers it before anything
// it reads from the socket later: each message reaches the host once, in order, by one of the two.
//
// Memory: a lessee reads into a buffer of its thread's (64 KiB, grown to the size of a larger
// message while it reads one, at most max_message_size, and freed after a lease over 1 MiB). It is
// not taken from receive_budget: that budget bounds what peers make the loop hold for messages
// nobody waits for, while this is one waiting thread's own reply.
//
// Closing: the loop shuts the socket down when it closes a leased connection, so the lessee's
// poll() returns; the lessee holds a duplicate of the descriptor (ReadLease::fd), so it never
// polls a descriptor number the process has reused meanwhile.
#include "stream-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace ferry::transports {

namespace {

// What a lessee reads into: its thread's, kept between leases (a waiting thread reads one reply
// at a time). At least this much room per read; a larger message grows it to its size.
constexpr size_t kLeaseReadSize = 64 * 1024;
// Kept between leases up to this size; a larger buffer (a large reply) is freed after its lease.
constexpr size_t kLeaseBufferKept = 1024 * 1024;

struct LeaseBuffer {
  ByteBuffer bytes;
  size_t capacity = 0;

  // Room for `size` bytes, keeping the first `keep`. Throws std::bad_alloc.
  uint8_t* reserve(size_t size, size_t keep) {
    if (size <= capacity) return bytes.get();
    ByteBuffer bigger = allocateBytes(size);
    if (keep > 0) std::memcpy(bigger.get(), bytes.get(), keep);
    bytes = std::move(bigger);
    capacity = size;
    return bytes.get();
  }
  void trim() noexcept {
    if (capacity > kLeaseBufferKept) {
      bytes.reset();
      capacity = 0;
    }
  }
};

thread_local LeaseBuffer t_leaseBuffer;

bool addToSet(int set, const ReadLease& lease, ferry_conn_id conn) noexcept {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = conn;
  return epoll_ctl(set, EPOLL_CTL_ADD, lease.fd, &event) == 0;
}

}  // namespace

ReadLease::~ReadLease() { ::close(fd); }

bool StreamTransport::startLeasedReads(Connection& connection) {
  if (_readSetFd < 0) return false;
  uv_os_fd_t socket;
  if (uv_fileno(&connection.handle.handle, &socket) != 0) return false;
  int copy = fcntl(socket, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return false;
  std::shared_ptr<ReadLease> lease;
  try {
    lease = std::make_shared<ReadLease>(copy);
  } catch (const std::bad_alloc&) {
    ::close(copy);
    return false;
  }
  if (!addToSet(_readSetFd, *lease, connection.id)) return false;  // ~ReadLease closes the copy
  lease->inSet = true;
  connection.lease = std::move(lease);
  return true;
}

void StreamTransport::endLeasedReads(Connection& connection) noexcept {
  if (!connection.lease) return;
  ReadLease& lease = *connection.lease;
  std::lock_guard lock(lease.mutex);
  lease.closed = true;
  lease.returned.clear();
  if (lease.inSet) {
    // Cannot fail for a descriptor in the set; were it to, the loop would find the connection
    // gone when the socket is next readable, and the descriptor leaves the set as it closes.
    epoll_ctl(_readSetFd, EPOLL_CTL_DEL, lease.fd, nullptr);
    lease.inSet = false;
  }
  // A thread polls the socket: this wakes it (and ends the connection, which closes anyway).
  if (lease.leased) shutdown(lease.fd, SHUT_RDWR);
}

void StreamTransport::onReadSet(uv_poll_t* handle, int status, int) noexcept {
  auto* self = static_cast<StreamTransport*>(handle->data);
  if (status < 0) {
    // libuv reports an error of the watch itself, not of a connection: say so, since outgoing
    // connections may go unread after it.
    self->log(FERRY_LOG_ERROR, std::string("watching the read set failed: ") + uv_strerror(status));
    return;
  }
  guarded(self, "read", [&] {
    epoll_event events[64];
    int n = epoll_wait(self->_readSetFd, events, 64, 0);
    for (int i = 0; i < n; ++i) {
      // The host may close connections (or destroy the instance) from inside `received`: look
      // each one up again.
      if (self->_destroying) return;
      auto found = self->_connections.find(events[i].data.u64);
      if (found != self->_connections.end()) self->pullLeased(*found->second);
    }
  });
}

void StreamTransport::pullLeased(Connection& connection) {
  if (connection.state != Connection::State::open || !connection.lease) return;
  std::shared_ptr<ReadLease> lease = connection.lease;
  std::vector<uint8_t> returned;
  bool reAdd = false;
  int failed = 0;
  {
    std::lock_guard lock(lease->mutex);
    if (lease->leased || lease->closed) return;  // the lessee's now; or a stale readiness
    lease->loopReading = true;
    returned.swap(lease->returned);
    reAdd = !lease->inSet;
    failed = lease->failed;
  }
  if (failed != 0) {
    // A lessee could not hand back what it read: the stream lost bytes.
    {
      std::lock_guard lock(lease->mutex);
      lease->loopReading = false;
    }
    log(FERRY_LOG_WARN, describeConnection(connection.id) +
                            " closed: a waiting thread could not hand back what it read: " +
                            uv_strerror(failed));
    closeConnection(connection, Connection::Report::closed, failed);
    return;
  }
  if (reAdd) {
    // The lessee could not put the socket back in the set: the loop tries, and closes the
    // connection if it cannot either (it could never be read again).
    int err = 0;
    {
      std::lock_guard lock(lease->mutex);
      lease->inSet = addToSet(_readSetFd, *lease, connection.id);
      if (!lease->inSet) {
        err = -errno;
        lease->loopReading = false;
      }
    }
    if (err != 0) {
      log(FERRY_LOG_WARN, describeConnection(connection.id) +
                              " closed: its socket cannot be watched again: " + uv_strerror(err));
      closeConnection(connection, Connection::Report::closed, err);
      return;
    }
  }
  // What a lessee returned comes before anything still in the socket.
  if (!returned.empty()) {
    bytesArrived(connection, returned.data(), returned.size(), ReadInto::elsewhere);
  }
  if (connection.state == Connection::State::open) {
    ReadInto into;
    std::span<uint8_t> target = readSpace(connection, into);
    ssize_t n;
    do {
      n = recv(lease->fd, target.data(), target.size(), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      bytesArrived(connection, target.data(), static_cast<size_t>(n), into);
    } else if (n == 0) {
      streamEnded(connection, UV_EOF);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      streamEnded(connection, -errno);
    }
  }
  std::lock_guard lock(lease->mutex);
  lease->loopReading = false;
  lease->midMessage = connection.state == Connection::State::open && connection.reader.midFrame();
}

int StreamTransport::receiveAnyThread(ferry_conn_id conn, const uint8_t* data, size_t size,
                                      int wakeFd, uint32_t timeoutMs, Take take, void* context) {
  std::shared_ptr<ReadLease> lease;
  {
    std::lock_guard lock(_directMutex);
    auto entry = _direct.find(conn);
    if (entry == _direct.end()) return UV_ENOTCONN;
    lease = entry->second.lease;
  }
  if (!lease) return UV_ENOTSUP;
  {
    std::lock_guard lock(lease->mutex);
    if (lease->closed) return UV_ENOTCONN;
    if (lease->leased || lease->loopReading || lease->midMessage || !lease->returned.empty() ||
        !lease->inSet) {
      return UV_EBUSY;
    }
    if (epoll_ctl(_readSetFd, EPOLL_CTL_DEL, lease->fd, nullptr) != 0) return UV_EBUSY;
    lease->inSet = false;
    lease->leased = true;
  }
  // Back to the loop: the socket into the set, and `rest` (bytes read and not taken) ahead of
  // what the loop reads next. False when the loop closed the connection meanwhile.
  // Never throws: without memory for what it hands back, the connection ends (the loop reads
  // the end of the stream, after what it was handed, and closes it with the error).
  auto release = [&](const uint8_t* rest, size_t restSize) noexcept {
    bool kick = false;
    {
      std::lock_guard lock(lease->mutex);
      lease->leased = false;
      if (lease->closed) return false;
      if (restSize > 0) {
        try {
          lease->returned.assign(rest, rest + restSize);
        } catch (const std::bad_alloc&) {
          lease->failed = UV_ENOMEM;
          shutdown(lease->fd, SHUT_RDWR);
        }
        kick = true;
      }
      lease->inSet = addToSet(_readSetFd, *lease, conn);
      if (!lease->inSet) kick = true;  // the loop tries again, or closes the connection
    }
    if (kick) {
      std::lock_guard lock(_directMutex);
      if (_handoverOpen) {
        try {
          _returnedReads.push_back(conn);
          uv_async_send(&_handoverAsync);
        } catch (const std::bad_alloc&) {
          std::lock_guard leaseLock(lease->mutex);
          lease->failed = UV_ENOMEM;
          shutdown(lease->fd, SHUT_RDWR);
        }
      }
    }
    return true;
  };
  if (data != nullptr) {
    // The request goes out once its reply can no longer reach the loop. Nothing was sent when
    // this fails (sendAnyThread ends the connection if it wrote part of the message and could
    // not queue the rest).
    int err;
    try {
      err = sendAnyThread(conn, data, size);
    } catch (...) {
      release(nullptr, 0);
      throw;
    }
    if (err != 0) {
      release(nullptr, 0);
      return err;
    }
  }

  LeaseBuffer& buffer = t_leaseBuffer;
  size_t have = 0;     // bytes read into the buffer
  size_t handled = 0;  // of them, the messages taken
  int taken = 0;
  int result = 0;
  // Polled before the first read: a reply has seldom come by the time its caller waits for it,
  // and the loop would have been reading the socket if bytes had been there (no lease then).
  bool readable = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  try {
    for (;;) {
      // Every whole message read is offered, up to the first refused; the lease ends after them.
      // A length above the maximum ends it too: the loop's reader refuses it, closes the
      // connection and says why.
      bool stop = false;
      while (!stop && have - handled >= kFrameHeaderSize) {
        const uint8_t* at = buffer.bytes.get() + handled;
        size_t length = decodeFrameHeader(at);
        if (length > _limits.maxMessageSize) stop = true;
        if (stop || have - handled - kFrameHeaderSize < length) break;
        if (take(context, at + kFrameHeaderSize, length) == 0) {
          stop = true;
          break;
        }
        handled += kFrameHeaderSize + length;
        ++taken;
        _counters.messages_received.fetch_add(1, std::memory_order_relaxed);
        _counters.messages_read_by_caller.fetch_add(1, std::memory_order_relaxed);
      }
      if (stop || taken > 0) break;
      if (readable) {
        // Nothing is handled yet: the message being read starts the buffer.
        size_t wanted = have >= kFrameHeaderSize
                            ? kFrameHeaderSize + decodeFrameHeader(buffer.bytes.get())
                            : kFrameHeaderSize;
        uint8_t* into = buffer.reserve(std::max(wanted, have + kLeaseReadSize), have);
        ssize_t n = recv(lease->fd, into + have, buffer.capacity - have, MSG_DONTWAIT);
        if (n > 0) {
          have += static_cast<size_t>(n);
          continue;
        }
        if (n == 0) break;  // the end of the stream: the loop reads it again and closes
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) break;  // the loop meets the error too
        readable = false;
      }
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline -
                                                               std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd fds[2] = {{lease->fd, POLLIN, 0}, {wakeFd, POLLIN, 0}};
      int ready = poll(fds, wakeFd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(
                                                       left.count(), 60 * 60 * 1000)));
      if (ready < 0 && errno != EINTR) break;
      if (ready > 0 && wakeFd >= 0 && fds[1].revents != 0) break;  // the caller is woken
      readable = ready > 0;
    }
  } catch (const std::bad_alloc&) {
    result = UV_ENOMEM;
  }
  bool open = release(buffer.bytes.get() + handled, have - handled);
  buffer.trim();
  // Once `data` went out, the caller hears of the closed connection from the loop, as of any.
  if (result < 0 && data == nullptr) return result;
  return open || taken > 0 || data != nullptr ? taken : UV_ENOTCONN;
}

}  // namespace ferry::transports
