// The part of the tcp and pipe transport plugins that does not care which kind of stream socket
// it runs on: connection bookkeeping, framed messages (framing.h), the write queue, the connect
// timeout, the event rules of core/include/ferry/plugin/transport.h, and teardown.
//
// A plugin derives from StreamTransport, implements its few hooks (how to initialize a handle,
// bind a listener, start a connect and describe a peer), and takes its ferry_transport_v1 table
// from streamTable() below, handing in its own check_binding.
//
// Event rules kept here, once for both plugins:
//   - every event is raised from a libuv callback, never from a table function;
//   - the last event of a connection (`connected` with an error, or `closed`) is raised from the
//     close callback of its stream handle, so nothing can follow it;
//   - after destroy() no event is raised at all.
//
// Choices the ABI leaves open, made here:
//   - close() and destroy() are abortive: messages still queued in the process are dropped
//     (what the kernel already took is delivered). close() of a connection still connecting
//     reports `connected` with UV_ECANCELED, since `closed` never follows a failed connect;
//   - an error returned by listen() or connect() means no event about it ever follows;
//   - a connect timeout of 0 expires on the next loop iteration, before any connect completes.
//
// Errors are libuv's (negative errno values, UV_E*); transportStrerror names them: UV_EINVAL
// for a malformed binding, UV_EMSGSIZE for an oversized message (sent or announced by the peer),
// UV_ENOTCONN for send on an unknown or closed connection, UV_ETIMEDOUT for a connect timeout (and
// for a connection closed as idle or with a stalled message), UV_EPROTO for a stream that ends
// inside a message, UV_ENOBUFS for a send refused because the connection's queue is full and for a
// connection closed because the receive budget is (stream-limits.h).
//
// Hostile peers: every limit of stream-limits.h holds whatever a peer sends or leaves unread, and
// every refusal is counted (counters()).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <uv.h>

#include <ferry/plugin/transport.h>

#include "abi-glue.h"
#include "framing.h"
#include "stream-limits.h"

namespace ferry::transports {

// Either kind of stream handle. All members begin with the uv_handle_t/uv_stream_t fields, so
// `handle` and `stream` may be used whichever member was initialized.
union StreamHandle {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
};

// Who is at the other end, as the plugin found out once the connection was up.
struct PeerDescription {
  std::string address;
  bool hasCredentials = false;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int32_t pid = 0;
  // Whom the connection caps count an accepted connection against: filled in by the common code
  // (the user, for a peer with credentials; else the address without its port).
  std::string source;
};

class StreamTransport;

// The reads of an outgoing connection, which a waiting thread may take from the loop for a while
// (receive_any_thread, stream-lease.cpp). Such a connection is not read through libuv: its socket
// is in the instance's read set (an epoll set the loop watches), and the loop reads it from there
// while no thread holds the lease; a thread that takes the lease removes it from the set first.
// Shared by the connection and the thread holding the lease: `fd` is a duplicate of the socket,
// open while either has it, so that a thread that still polls it after the loop closed the
// connection never polls a reused descriptor.
struct ReadLease {
  explicit ReadLease(int fd) noexcept : fd(fd) {}
  ReadLease(const ReadLease&) = delete;
  ~ReadLease();

  const int fd;
  std::mutex mutex;  // guards what follows
  bool leased = false;       // a thread reads the socket; it is out of the read set
  bool loopReading = false;  // the loop is reading it or delivering what it read
  bool midMessage = false;   // the loop's reader holds part of a message
  bool closed = false;       // the loop closed the connection (the socket is shut down)
  bool inSet = false;        // the socket is in the read set
  int failed = 0;            // a lessee lost bytes (no memory to hand them back): the loop closes
  // What a thread read and did not take: the loop delivers it before reading the socket again.
  std::vector<uint8_t> returned;
};

// One listening socket. Owned by its transport until uv_close, then by its close callback.
struct Listener {
  explicit Listener(StreamTransport* owner) noexcept : owner(owner) {}

  StreamTransport* owner;
  StreamHandle handle{};
  bool handleOpen = false;
  // For the plugin: the pipe plugin keeps the socket path here (its accepted peers' address).
  std::string path;
  // FERRY_LISTEN_* flags it was asked for (only those listenFlags() offers).
  uint32_t flags = 0;
};

// One connection, outgoing or accepted. Owned by its transport while it is in the id map; from
// its first uv_close on, by the close callbacks of its handles (freed after the last one).
struct Connection {
  enum class State { connecting, open, closing };
  // What the stream's close callback reports to the host.
  enum class Report { nothing, connectFailed, closed };

  Connection(StreamTransport* owner, ferry_conn_id id, size_t maxMessageSize,
             ReceiveBudget* budget) noexcept
      : owner(owner), id(id), reader(maxMessageSize, budget) {}

  StreamTransport* owner;
  ferry_conn_id id;
  State state = State::connecting;
  StreamHandle handle{};
  uv_connect_t connectRequest{};
  uv_timer_t connectTimer{};    // bounds a pending connect; closed once it is decided
  bool timerOpen = false;
  int openHandles = 0;          // handles initialized and not yet through their close callback
  Report report = Report::nothing;
  int reportStatus = 0;
  FrameReader reader;
  // For the plugin: the pipe plugin keeps the socket path it connects to here.
  std::string target;
  // Accepted connections count against the caps of stream-limits.h, as `source`.
  bool accepted = false;
  std::string source;
  uint64_t lastActivityMs = 0;  // uv_now when bytes last came or were written
  uint64_t frameStartMs = 0;    // uv_now when the message being received began; 0: none
  bool readPaused = false;      // reading stopped: the peer leaves its queue unread
  // Bytes send() and sendAnyThread took for it and the kernel has not (any thread).
  std::atomic<size_t> queuedBytes{0};
  // An outgoing connection read through the read set (ReadLease); null: read through libuv.
  std::shared_ptr<ReadLease> lease;
};

class StreamTransport {
public:
  StreamTransport(const StreamTransport&) = delete;
  StreamTransport& operator=(const StreamTransport&) = delete;

  // The table functions, for the trampolines of StreamAbi. Each may throw (std::bad_alloc);
  // the trampolines turn that into an error.
  // send() and sendAnyThread refuse with UV_ENOBUFS while the connection's queue holds
  // send_queue_limit bytes (a message is taken whole below it, whatever its size).
  int listen(const char* address, const char* endpoint, char* endpointOut, size_t endpointCap,
             uint32_t flags = 0);
  int connect(const char* address, const char* endpoint, uint32_t timeoutMs,
              ferry_conn_id* connOut);
  int send(ferry_conn_id conn, const uint8_t* data, size_t size);
  // send() from any thread: writes the frame on the calling thread when nothing is queued ahead
  // of it on the connection; hands what is left to the loop otherwise (ferry_transport_v1
  // send_any_thread).
  int sendAnyThread(ferry_conn_id conn, const uint8_t* data, size_t size);
  void close(ferry_conn_id conn);
  void destroy(void (*done)(void*), void* arg);
  // receive_any_thread: a waiting thread reads an outgoing connection itself (stream-lease.cpp).
  using Take = int (*)(void* context, const uint8_t* data, size_t size);
  int receiveAnyThread(ferry_conn_id conn, const uint8_t* data, size_t size, int wakeFd,
                       uint32_t timeoutMs, Take take, void* context);
  // ferry_transport_v1 counters: FERRY_STREAM_COUNTERS, in that order.
  int counters(ferry_counter_v1* out, size_t cap);
  // ferry_transport_v1 connection_info: what pathInfo() measures of an open connection;
  // UV_ENOTCONN for one that is not open.
  int connectionInfo(ferry_conn_id conn, ferry_connection_info_v1& out);

  // Logs one line through the host, prefixed with nothing: the host adds the plugin's name.
  void log(int level, const std::string& message) const noexcept;

protected:
  // `events` must already be validated (validateCreate). The instance deletes itself once
  // destroy() has closed all its handles.
  StreamTransport(const char* pluginName, const ferry_host_v1* host, uv_loop_t* loop,
                  const ferry_transport_events_v1& events, const StreamLimits& limits);
  virtual ~StreamTransport();

  uv_loop_t* loop() const noexcept { return _loop; }
  const ferry_host_v1* host() const noexcept { return _host; }

  // Initializes the handle of a listener or connection through initHandle and counts it, so that
  // the common code closes it whatever happens next. Hooks call these before binding/connecting.
  int openHandle(Listener& listener);
  int openHandle(Connection& connection);

  // The connect callback a plugin's startConnect passes to uv_tcp_connect/uv_pipe_connect, with
  // `&connection.connectRequest` as the request.
  static void onConnectDone(uv_connect_t* request, int status) noexcept;

  // --- Hooks. Each returns 0 or a UV_E* error and logs the reason for a refused binding. ---

  // The FERRY_LISTEN_* flags this transport offers; listen() refuses others with UV_ENOTSUP.
  virtual uint32_t listenFlags() const noexcept { return 0; }
  // uv_tcp_init or uv_pipe_init on the instance's loop.
  virtual int initHandle(StreamHandle& handle) = 0;
  // Validates the binding, calls openHandle(listener), binds; writes the endpoint bound to
  // `bound`. The common code then calls uv_listen, and closes the handle on any failure.
  virtual int bindListener(Listener& listener, const char* address, const char* endpoint,
                           std::string& bound) = 0;
  // Validates the binding, calls openHandle(connection), starts connecting with onConnectDone.
  // A failure after openHandle is cleaned up by the common code; no event follows a failure.
  virtual int startConnect(Connection& connection, const char* address, const char* endpoint) = 0;
  // Prepares an established connection (socket options) and describes its peer. `listener` is
  // the one that accepted it, or null for an outgoing connection.
  virtual int establish(Connection& connection, const Listener* listener,
                        PeerDescription& peer) = 0;
  // What the socket's protocol measures of an open connection's path (round-trip time,
  // retransmissions) into `out`, whose fields stay 0 where it measures nothing (the default).
  virtual int pathInfo(Connection& /*connection*/, ferry_connection_info_v1& /*out*/) {
    return 0;
  }

private:
  static void onConnection(uv_stream_t* server, int status) noexcept;
  static void onConnectTimeout(uv_timer_t* timer) noexcept;
  static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void onWritten(uv_write_t* request, int status) noexcept;
  static void onListenerClosed(uv_handle_t* handle) noexcept;
  static void onConnectionHandleClosed(uv_handle_t* handle) noexcept;
  static void onFinalClosed(uv_handle_t* handle) noexcept;
  static void onHandover(uv_async_t* handle) noexcept;
  static void onSweep(uv_timer_t* timer) noexcept;
  static bool deliver(void* context, const uint8_t* data, size_t size);

  // Any-thread sends. An open connection's socket is listed in _direct while it may be written
  // from other threads; `loopWrites` counts its frames queued on the loop (uv_write, or handed
  // over and not yet written), so a direct write never overtakes them.
  void openDirect(Connection& connection);
  void closeDirect(ferry_conn_id conn);
  // Queues framed bytes on the loop (the loop thread only); `counted`: already in loopWrites.
  int queueWrite(Connection& connection, std::unique_ptr<uint8_t[]> bytes, size_t size,
                 bool counted);
  void drainHandovers();
  void loopWriteFinished(ferry_conn_id conn);
  // Send-queue accounting (send_queue_limit, send_budget) and the read pause it drives. queueFull
  // counts the refusal it reports.
  bool queueFull(const std::atomic<size_t>& queued) noexcept;
  void addQueued(std::atomic<size_t>& queued, size_t bytes) noexcept;
  void removeQueued(std::atomic<size_t>* queued, size_t bytes) noexcept;
  void pauseIfUnread(Connection& connection);
  void resumeIfRead(Connection& connection);
  // Whether an accepted connection from `source` fits the connection caps; counts a refusal.
  bool admit(const std::string& source);
  // Closes the connections idle or stalled past the timeouts of stream-limits.h.
  void sweep();

  void accept(Listener& listener);
  void connectDone(Connection& connection, int status);
  void readDone(Connection& connection, ssize_t nread, const uv_buf_t* buf);
  // Where bytes that came from the peer lie: the shared read buffer (which a split message may
  // adopt), the split message's own buffer (read there directly), or elsewhere (a lease's rest).
  enum class ReadInto { sharedBuffer, splitMessage, elsewhere };
  // Where the connection's next bytes are read to, and what that space is (the split message's
  // own buffer, or the shared read buffer, allocated again if a split message took it). Throws
  // std::bad_alloc.
  std::span<uint8_t> readSpace(Connection& connection, ReadInto& into);
  // Feeds bytes that came from the peer to the connection's reader, which delivers the whole
  // messages; closes the connection on a refused length or budget.
  void bytesArrived(Connection& connection, const uint8_t* data, size_t size, ReadInto into);
  // The peer's stream ended (UV_EOF) or failed (an error): closes the connection.
  void streamEnded(Connection& connection, int status);

  // The read set (stream-lease.cpp). startLeasedReads puts an outgoing connection's socket in it
  // (false: it cannot, and libuv reads the connection instead); pullLeased reads what a lease
  // returned and then the socket, on the loop, unless a thread holds the lease.
  bool startLeasedReads(Connection& connection);
  void pullLeased(Connection& connection);
  void endLeasedReads(Connection& connection) noexcept;
  static void onReadSet(uv_poll_t* handle, int status, int events) noexcept;
  // The argument of an accepted/connected event; valid while `peer` is.
  static ferry_peer_info_v1 peerInfo(const PeerDescription& peer) noexcept;
  // Starts closing a connection: it leaves the id map, and the stream's close callback reports
  // `report` with `status` (unless the instance is being destroyed by then).
  void closeConnection(Connection& connection, Connection::Report report, int status);
  void closeListener(Listener& listener);
  // Every close callback ends here; the last one after destroy() frees the instance.
  void handleClosed();

  const char* _pluginName;
  const ferry_host_v1* _host;
  uv_loop_t* _loop;
  ferry_transport_events_v1 _events;
  const StreamLimits _limits;
  StreamCounters _counters;
  ReceiveBudget _receiveBudget;
  std::unordered_map<std::string, size_t> _acceptedBySource;  // open accepted connections
  size_t _acceptedOpen = 0;
  // Runs sweep() while a timeout is set; unreferenced, so it never keeps the loop alive.
  uv_timer_t _sweepTimer{};
  bool _sweepOpen = false;
  ferry_conn_id _nextId = 1;
  std::unordered_map<ferry_conn_id, Connection*> _connections;  // connecting and open only
  std::vector<Listener*> _listeners;
  int _liveHandles = 0;
  // One read buffer serves every connection: libuv calls alloc then read for one stream at a
  // time, and onRead is done with the bytes before it returns (or a large message split at its
  // end takes the buffer as its own, and onAlloc allocates another).
  ByteBuffer _readBuffer;
  bool _destroying = false;
  void (*_done)(void*) = nullptr;
  void* _doneArg = nullptr;
  // Closed by destroy() so that `done` always comes from a close callback, even when the
  // instance had no handle open.
  uv_idle_t _finalHandle{};

  struct DirectEntry {
    int fd;
    int loopWrites;
    std::atomic<size_t>* queued;  // the connection's queuedBytes, alive while the entry is
    std::shared_ptr<ReadLease> lease;  // the connection's, or null
  };
  struct Handover {
    ferry_conn_id conn;
    std::unique_ptr<uint8_t[]> bytes;
    size_t size;
  };
  // Queues handed-over frames on their connections, in order (on the loop).
  void queueHandovers(std::deque<Handover>& batch);
  std::mutex _directMutex;  // guards _direct, _handovers, _returnedReads, _handoverOpen
  std::unordered_map<ferry_conn_id, DirectEntry> _direct;
  std::deque<Handover> _handovers;
  // Connections whose lease ended with bytes for the loop (ReadLease::returned), to pull.
  std::vector<ferry_conn_id> _returnedReads;
  // The read set: an epoll descriptor with the sockets of the outgoing connections no thread
  // holds, watched by the loop (-1: none could be made; libuv reads every connection then).
  int _readSetFd = -1;
  uv_poll_t _readSetWatch{};
  bool _readSetOpen = false;
  uv_async_t _handoverAsync{};
  bool _handoverOpen = false;
};

// The table functions shared by both plugins: they unwrap the instance and catch everything.
using StreamAbi = AbiGlue<StreamTransport>;

// check_settings of every stream plugin (stream-limits.h).
int checkStreamSettings(const char* settings, char* whyOut, size_t whyCap) noexcept;

// The create_with_settings() of a stream plugin: a `Plugin` (derived from StreamTransport)
// constructed from the host, the loop, the events and its limits once validateCreate and
// parseStreamLimits have accepted them.
template <typename Plugin>
int createStreamWithSettings(const ferry_host_v1* host, uv_loop_t* loop,
                             const ferry_transport_events_v1* events, const char* settings,
                             ferry_transport** out) noexcept {
  int err = validateCreate(host, loop, events, out);
  if (err != 0) return err;
  try {
    StreamLimits limits;
    std::vector<std::string> problems;
    parseStreamLimits(settings, limits, problems);
    if (!problems.empty()) {
      std::string line = "settings refused, no instance created: " + problems.front();
      host->log(host->context, FERRY_LOG_ERROR, Plugin::kName, line.c_str());
      return UV_EINVAL;
    }
    *out = StreamAbi::wrap(new Plugin(host, loop, *events, limits));
    return 0;
  } catch (...) {
    return UV_ENOMEM;
  }
}

// The create() of a stream plugin: the default limits.
template <typename Plugin>
int createStream(const ferry_host_v1* host, uv_loop_t* loop,
                 const ferry_transport_events_v1* events, ferry_transport** out) noexcept {
  return createStreamWithSettings<Plugin>(host, loop, events, "", out);
}

// The ferry_transport_v1 table of a stream plugin `Plugin`: all shared but check_binding and
// what the transport is (FERRY_TRANSPORT_* capabilities and its cost rank). Stream plugins take
// the settings of stream-limits.h.
template <typename Plugin>
constexpr ferry_transport_v1 streamTable(decltype(ferry_transport_v1::check_binding) checkBinding,
                                         uint32_t capabilities, uint32_t costRank) {
  return {
      .struct_size = sizeof(ferry_transport_v1),
      .abi_version = FERRY_PLUGIN_ABI_VERSION,
      .max_message_size = kMaxMessageSize,
      .create = &createStream<Plugin>,
      .destroy = &StreamAbi::destroy,
      .listen = &StreamAbi::listen,
      .connect = &StreamAbi::connect,
      .send = &StreamAbi::send,
      .close = &StreamAbi::close,
      .check_binding = checkBinding,
      .strerror = &transportStrerror,
      .send_any_thread = &StreamAbi::sendAnyThread,
      .listen_with_flags = &StreamAbi::listenWithFlags,
      .capabilities = capabilities,
      .cost_rank = costRank,
      .create_with_settings = &createStreamWithSettings<Plugin>,
      .check_settings = &checkStreamSettings,
      .counters = &StreamAbi::counters,
      .connection_info = &StreamAbi::connectionInfo,
      .receive_any_thread = &StreamAbi::receiveAnyThread,
  };
}

}  // namespace ferry::transports
