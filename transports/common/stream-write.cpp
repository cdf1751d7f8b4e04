// StreamTransport's write path: send() and sendAnyThread, the write queue on the loop, the
// handovers of what other threads could not write to the loop, and the send-queue accounting with
// the read pause it drives. The rest of the class is in stream-transport.cpp.
#include "stream-internal.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>

namespace ferry::transports {

namespace {

// One queued message: the libuv request and the framed bytes it writes, freed together in
// onWritten (which libuv calls for every accepted uv_write, with UV_ECANCELED on close).
struct WriteRequest {
  uv_write_t request{};
  std::unique_ptr<uint8_t[]> bytes;
  size_t size = 0;
  ferry_conn_id conn = 0;
};

}  // namespace

int StreamTransport::send(ferry_conn_id conn, const uint8_t* data, size_t size) {
  if (size > _limits.maxMessageSize) return UV_EMSGSIZE;
  if (data == nullptr && size > 0) return UV_EINVAL;
  auto found = _connections.find(conn);
  if (found == _connections.end() || found->second->state != Connection::State::open) {
    return UV_ENOTCONN;
  }
  if (queueFull(found->second->queuedBytes)) return UV_ENOBUFS;
  std::unique_ptr<uint8_t[]> bytes(new uint8_t[kFrameHeaderSize + size]);
  encodeFrameHeader(bytes.get(), size);
  if (size > 0) std::memcpy(bytes.get() + kFrameHeaderSize, data, size);
  // In one step under the lock: this write is counted, so no other thread writes to the socket
  // directly from now until it is written, and the frames other threads handed over before it
  // (a direct write's rest among them) are taken, to be queued ahead of it. Counting after taking
  // would let a direct write start in between and this frame split it from its rest.
  std::deque<Handover> before;
  {
    std::lock_guard lock(_directMutex);
    auto entry = _direct.find(conn);
    if (entry != _direct.end()) ++entry->second.loopWrites;
    before.swap(_handovers);
  }
  queueHandovers(before);
  found = _connections.find(conn);
  if (found == _connections.end() || found->second->state != Connection::State::open) {
    loopWriteFinished(conn);  // a handed-over write failed and closed it
    return UV_ENOTCONN;
  }
  Connection& connection = *found->second;
  addQueued(connection.queuedBytes, kFrameHeaderSize + size);
  int err = queueWrite(connection, std::move(bytes), kFrameHeaderSize + size, true);
  if (err == 0) pauseIfUnread(connection);
  return err;
}

bool StreamTransport::queueFull(const std::atomic<size_t>& queued) noexcept {
  if (queued.load(std::memory_order_relaxed) < _limits.sendQueueLimit &&
      _counters.now_send_queue_bytes.load(std::memory_order_relaxed) < _limits.sendBudget) {
    return false;
  }
  _counters.sends_refused_queue_full.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void StreamTransport::addQueued(std::atomic<size_t>& queued, size_t bytes) noexcept {
  queued.fetch_add(bytes, std::memory_order_relaxed);
  _counters.now_send_queue_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void StreamTransport::removeQueued(std::atomic<size_t>* queued, size_t bytes) noexcept {
  if (queued != nullptr) queued->fetch_sub(bytes, std::memory_order_relaxed);
  _counters.now_send_queue_bytes.fetch_sub(bytes, std::memory_order_relaxed);
}

void StreamTransport::pauseIfUnread(Connection& connection) {
  if (!connection.accepted || connection.readPaused ||
      connection.state != Connection::State::open ||
      connection.queuedBytes.load(std::memory_order_relaxed) < _limits.sendQueueLimit / 2) {
    return;
  }
  if (uv_read_stop(&connection.handle.stream) != 0) return;
  connection.readPaused = true;
  _counters.reads_paused.fetch_add(1, std::memory_order_relaxed);
  log(FERRY_LOG_INFO, describeConnection(connection.id) + ": stopped reading from the peer: " +
                          std::to_string(connection.queuedBytes.load()) +
                          " bytes of what was sent to it are unread (send_queue_limit " +
                          std::to_string(_limits.sendQueueLimit) + ")");
}

void StreamTransport::resumeIfRead(Connection& connection) {
  if (!connection.readPaused || connection.state != Connection::State::open ||
      connection.queuedBytes.load(std::memory_order_relaxed) > _limits.sendQueueLimit / 4) {
    return;
  }
  int err = uv_read_start(&connection.handle.stream, &onAlloc, &onRead);
  if (err != 0) {
    closeConnection(connection, Connection::Report::closed, err);
    return;
  }
  connection.readPaused = false;
}

int StreamTransport::queueWrite(Connection& connection, std::unique_ptr<uint8_t[]> bytes,
                                size_t size, bool counted) {
  auto write = std::make_unique<WriteRequest>();
  write->bytes = std::move(bytes);
  write->size = size;
  write->conn = connection.id;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(write->bytes.get()),
                             static_cast<unsigned int>(size));
  write->request.data = write.get();
  if (!counted) {
    std::lock_guard lock(_directMutex);
    auto entry = _direct.find(connection.id);
    if (entry != _direct.end()) ++entry->second.loopWrites;
  }
  int err = uv_write(&write->request, &connection.handle.stream, &buf, 1, &onWritten);
  if (err != 0) {
    loopWriteFinished(connection.id);
    removeQueued(&connection.queuedBytes, size);
    return err;
  }
  write.release();  // onWritten frees it
  return 0;
}

void StreamTransport::loopWriteFinished(ferry_conn_id conn) {
  std::lock_guard lock(_directMutex);
  auto entry = _direct.find(conn);
  if (entry != _direct.end() && entry->second.loopWrites > 0) --entry->second.loopWrites;
}

int StreamTransport::sendAnyThread(ferry_conn_id conn, const uint8_t* data, size_t size) {
  if (size > _limits.maxMessageSize) return UV_EMSGSIZE;
  if (data == nullptr && size > 0) return UV_EINVAL;
  uint8_t header[kFrameHeaderSize];
  encodeFrameHeader(header, size);
  std::lock_guard lock(_directMutex);
  auto entry = _direct.find(conn);
  if (entry == _direct.end()) return UV_ENOTCONN;
  if (queueFull(*entry->second.queued)) return UV_ENOBUFS;
  size_t total = kFrameHeaderSize + size;
  size_t written = 0;
  if (entry->second.loopWrites == 0) {
    // Nothing queued ahead: write on this thread. The descriptor stays open while the entry
    // exists (closeDirect removes it, under this lock, before the loop closes the handle).
    iovec parts[2] = {{header, kFrameHeaderSize}, {const_cast<uint8_t*>(data), size}};
    ssize_t n;
    do {
      n = writev(entry->second.fd, parts, size > 0 ? 2 : 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    written = n > 0 ? static_cast<size_t>(n) : 0;
    if (written == total) return 0;
  }
  // The rest goes through the loop, behind whatever is queued there.
  if (!_handoverOpen) return UV_ENOTCONN;
  try {
    std::unique_ptr<uint8_t[]> rest(new uint8_t[total - written]);
    size_t fromHeader = written < kFrameHeaderSize ? kFrameHeaderSize - written : 0;
    if (fromHeader > 0) std::memcpy(rest.get(), header + written, fromHeader);
    size_t dataOffset = written > kFrameHeaderSize ? written - kFrameHeaderSize : 0;
    if (size > dataOffset) {
      std::memcpy(rest.get() + fromHeader, data + dataOffset, size - dataOffset);
    }
    _handovers.push_back({conn, std::move(rest), total - written});
  } catch (const std::bad_alloc&) {
    if (written == 0) throw;  // nothing went out: the caller hears UV_ENOMEM
    // Part of the frame is out and its rest cannot be kept: the stream is torn. It ends here, and
    // the peer and the loop see it end; the message counts as sent, and is lost with the
    // connection, as any message in flight when a connection fails.
    shutdown(entry->second.fd, SHUT_RDWR);
    return 0;
  }
  ++entry->second.loopWrites;
  addQueued(*entry->second.queued, total - written);
  // Under the lock: destroy() closes the handle under it too.
  uv_async_send(&_handoverAsync);
  return 0;
}

void StreamTransport::drainHandovers() {
  std::deque<Handover> batch;
  std::vector<ferry_conn_id> returned;
  {
    std::lock_guard lock(_directMutex);
    batch.swap(_handovers);
    returned.swap(_returnedReads);
  }
  queueHandovers(batch);
  // Bytes a waiting thread read and did not take (stream-lease.cpp).
  for (ferry_conn_id conn : returned) {
    auto found = _connections.find(conn);
    if (found != _connections.end()) pullLeased(*found->second);
  }
}

void StreamTransport::queueHandovers(std::deque<Handover>& batch) {
  for (Handover& h : batch) {
    auto found = _connections.find(h.conn);
    if (found == _connections.end() || found->second->state != Connection::State::open) {
      loopWriteFinished(h.conn);  // the connection went; the frame with it
      removeQueued(nullptr, h.size);
      continue;
    }
    int err = queueWrite(*found->second, std::move(h.bytes), h.size, true);
    if (err == 0) pauseIfUnread(*found->second);
    if (err != 0) {
      log(FERRY_LOG_INFO, describeConnection(h.conn) + ": handed-over write failed: " +
                              uv_strerror(err));
      closeConnection(*found->second, Connection::Report::closed, err);
    }
  }
}

void StreamTransport::onHandover(uv_async_t* handle) noexcept {
  auto* self = static_cast<StreamTransport*>(handle->data);
  guarded(self, "handover", [&] { self->drainHandovers(); });
}

void StreamTransport::openDirect(Connection& connection) {
  uv_os_fd_t fd;
  if (uv_fileno(&connection.handle.handle, &fd) != 0) return;  // any-thread sends refused
  std::lock_guard lock(_directMutex);
  _direct[connection.id] = DirectEntry{fd, 0, &connection.queuedBytes, connection.lease};
}

void StreamTransport::closeDirect(ferry_conn_id conn) {
  std::lock_guard lock(_directMutex);
  _direct.erase(conn);
}

// --- libuv callbacks. ---

void StreamTransport::onWritten(uv_write_t* request, int status) noexcept {
  std::unique_ptr<WriteRequest> write(static_cast<WriteRequest*>(request->data));
  // The stream is still open: libuv runs write callbacks before the stream's close callback.
  auto* connection = static_cast<Connection*>(request->handle->data);
  StreamTransport* self = connection->owner;
  self->loopWriteFinished(write->conn);
  self->removeQueued(&connection->queuedBytes, write->size);
  if (status == UV_ECANCELED) return;
  if (status >= 0) {
    connection->lastActivityMs = uv_now(self->_loop);
    guarded(self, "write", [&] { self->resumeIfRead(*connection); });
    return;
  }
  guarded(self, "write", [&] {
    if (connection->state != Connection::State::open) return;
    self->log(FERRY_LOG_INFO, describeConnection(connection->id) + ": write failed: " +
                                  uv_strerror(status));
    self->closeConnection(*connection, Connection::Report::closed, status);
  });
}

}  // namespace ferry::transports
