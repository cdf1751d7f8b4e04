// peer-raw: the floors of the matrix, the least a request/response round trip can cost on each
// transport, with the same tests and checks as the systems (harness.h).
//   tcp, unix   a stream socket (TCP over loopback with TCP_NODELAY, or Unix-domain): each
//               message is a 4-byte length and the payload; the client writes a call's (or 32
//               calls') requests with one writev; the server, a thread per connection with
//               blocking I/O, answers all messages one read brought with one writev.
//   udp         a datagram socket: each message is split into datagrams of at most 60,000 bytes,
//               each with an 8-byte header (request index, fragment, fragment count); the server
//               echoes each datagram as it came (no reassembly, no recovery: a lost datagram
//               fails the run).
//   inproc      a hand-off to another thread of the same process through two futex words
//               (bench/futex.h); the other thread copies each request into its reply.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "futex.h"
#include "harness.h"

namespace {

using peers::Failure;

// Every blocking receive of the client gives up after this long: a lost reply fails the run.
constexpr int kReplyTimeoutSeconds = 10;
constexpr size_t kDatagramChunk = 60000;

struct DatagramHeader {
  uint32_t request;
  uint16_t fragment;
  uint16_t fragments;
};

[[noreturn]] void systemFailure(const std::string& what) {
  throw Failure(what + ": " + std::strerror(errno));
}

void setReceiveTimeout(int fd) {
  timeval timeout{kReplyTimeoutSeconds, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) {
    systemFailure("cannot set the socket's receive timeout");
  }
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return address;
}

sockaddr_un unixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    throw Failure("the socket path " + path + " is too long for a Unix-domain socket; give a "
                  "shorter --socket-dir");
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

void setNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Writes all of `parts` (gathered), resuming after short writes.
void writeAll(int fd, std::vector<iovec>& parts) {
  iovec* part = parts.data();
  size_t count = parts.size();
  while (count > 0) {
    ssize_t n = writev(fd, part, static_cast<int>(std::min<size_t>(count, IOV_MAX)));
    if (n < 0) {
      if (errno == EINTR) continue;
      systemFailure("cannot write to the socket");
    }
    for (size_t written = static_cast<size_t>(n); count > 0 && (written > 0 || part->iov_len == 0);) {
      size_t step = std::min(written, part->iov_len);
      part->iov_base = static_cast<uint8_t*>(part->iov_base) + step;
      part->iov_len -= step;
      written -= step;
      if (part->iov_len == 0) {
        ++part;
        --count;
      }
    }
  }
}

// Messages on a stream: each is its 4-byte length, then the payload. Reads take whatever the
// socket has (so a burst of messages costs one read), and a batch of messages goes out in one
// gathered write.
class Framing {
public:
  explicit Framing(int fd) : _fd(fd), _buffer(256 * 1024) {}

  // The next whole message, valid until the next call; false at the end of the stream.
  bool next(std::span<const uint8_t>& message) {
    for (;;) {
      size_t have = _end - _start;
      uint32_t length = 0;
      if (have >= sizeof length) {
        std::memcpy(&length, _buffer.data() + _start, sizeof length);
        if (have >= sizeof length + length) {
          message = {_buffer.data() + _start + sizeof length, length};
          _start += sizeof length + length;
          return true;
        }
      }
      if (!fill(sizeof length + length)) return false;
    }
  }

  // Whether a whole message is already here (no read needed for it).
  bool buffered() const {
    uint32_t length = 0;
    if (_end - _start < sizeof length) return false;
    std::memcpy(&length, _buffer.data() + _start, sizeof length);
    return _end - _start >= sizeof length + length;
  }

  // Queues a message (its bytes must stay valid until send()).
  void add(std::span<const uint8_t> payload) {
    _lengths.push_back(static_cast<uint32_t>(payload.size()));
    _parts.push_back({nullptr, sizeof(uint32_t)});
    if (!payload.empty()) _parts.push_back({const_cast<uint8_t*>(payload.data()), payload.size()});
  }

  // Writes every queued message.
  void send() {
    size_t index = 0;
    for (auto& part : _parts) {
      if (part.iov_base == nullptr) part.iov_base = &_lengths[index++];
    }
    writeAll(_fd, _parts);
    _parts.clear();
    _lengths.clear();
  }

private:
  // Reads more, so that at least `need` bytes are buffered from _start; false at end of stream
  // with nothing buffered.
  bool fill(size_t need) {
    if (_start > 0 && _start == _end) _start = _end = 0;
    if (_buffer.size() - _start < need) {
      std::memmove(_buffer.data(), _buffer.data() + _start, _end - _start);
      _end -= _start;
      _start = 0;
      if (_buffer.size() < need) _buffer.resize(need);
    }
    for (;;) {
      ssize_t n = recv(_fd, _buffer.data() + _end, _buffer.size() - _end, 0);
      if (n > 0) {
        _end += static_cast<size_t>(n);
        return true;
      }
      if (n == 0) {
        if (_end == _start) return false;
        throw Failure("the peer closed the connection in the middle of a message");
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        throw Failure("no reply within " + std::to_string(kReplyTimeoutSeconds) + " s");
      }
      if (errno != EINTR) systemFailure("cannot read from the socket");
    }
  }

  int _fd;
  std::vector<uint8_t> _buffer;
  size_t _start = 0;
  size_t _end = 0;
  std::vector<iovec> _parts;
  std::vector<uint32_t> _lengths;
};

class StreamServer final : public peers::Server {
public:
  explicit StreamServer(const peers::ServeArgs& args) : _tcp(args.transport == "tcp") {
    _listener = socket(_tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (_listener < 0) systemFailure("cannot make a socket");
    if (_tcp) {
      sockaddr_in address = loopback(0);
      socklen_t length = sizeof address;
      if (bind(_listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
          getsockname(_listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        systemFailure("cannot bind a TCP socket on 127.0.0.1");
      }
      _address = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
    } else {
      _address = args.socketDir + "/raw.sock";
      unlink(_address.c_str());
      sockaddr_un address = unixAddress(_address);
      if (bind(_listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        systemFailure("cannot bind the Unix-domain socket " + _address);
      }
    }
    if (listen(_listener, 16) != 0) systemFailure("cannot listen");
  }

  ~StreamServer() override {
    for (auto& thread : _threads) thread.join();
    close(_listener);
    if (!_tcp) unlink(_address.c_str());
  }

  std::string address() const override { return _address; }

  void run() override {
    for (;;) {
      int fd = accept4(_listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        break;  // stop() shut the listener down
      }
      if (_tcp) setNoDelay(fd);
      std::lock_guard lock(_mutex);
      if (_stopping) {
        close(fd);
        break;
      }
      _connections.push_back(fd);
      _threads.emplace_back([fd] { serveConnection(fd); });
    }
  }

  void stop() override {
    std::lock_guard lock(_mutex);
    _stopping = true;
    shutdown(_listener, SHUT_RDWR);
    for (int fd : _connections) shutdown(fd, SHUT_RDWR);
  }

private:
  // Echoes the messages of one connection until it ends: every message that one read brought in
  // is answered by one gathered write (the replies point into the read buffer).
  static void serveConnection(int fd) {
    Framing framing(fd);
    try {
      std::span<const uint8_t> message;
      while (framing.next(message)) {
        framing.add(message);
        while (framing.buffered() && framing.next(message)) framing.add(message);
        framing.send();
      }
    } catch (const Failure&) {
      // The client went away mid-message (stop() shuts connections down too).
    }
    close(fd);
  }

  bool _tcp;
  int _listener = -1;
  std::string _address;
  std::mutex _mutex;
  bool _stopping = false;
  std::vector<int> _connections;
  std::vector<std::thread> _threads;
};

int connectStream(const std::string& transport, const std::string& address) {
  bool tcp = transport == "tcp";
  int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) systemFailure("cannot make a socket");
  int rc;
  if (tcp) {
    size_t colon = address.rfind(':');
    sockaddr_in to = loopback(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    rc = connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
    setNoDelay(fd);
  } else {
    sockaddr_un to = unixAddress(address);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  if (rc != 0) systemFailure("cannot connect to " + address);
  setReceiveTimeout(fd);
  return fd;
}

// The client: a call's request goes out in one gathered write; 32 in flight, all 32 in one.
class StreamConnection final : public peers::Connection {
public:
  StreamConnection(const std::string& transport, const std::string& address)
      : _fd(connectStream(transport, address)), _framing(_fd) {}
  ~StreamConnection() override { close(_fd); }

  void ping() override {
    _framing.add({});
    _framing.send();
    std::span<const uint8_t> reply;
    if (!_framing.next(reply) || !reply.empty()) throw Failure("a ping got no empty reply");
  }

  void echo(std::span<const uint8_t> request, const peers::ReplyCheck& check) override {
    _framing.add(request);
    _framing.send();
    receive(0, check);
  }

  void echoInFlight(const std::vector<std::vector<uint8_t>>& requests,
                    const peers::ReplyCheck& check) override {
    for (const auto& request : requests) _framing.add(request);
    _framing.send();
    for (size_t i = 0; i < requests.size(); ++i) receive(i, check);
  }

private:
  void receive(size_t index, const peers::ReplyCheck& check) {
    std::span<const uint8_t> reply;
    if (!_framing.next(reply)) throw Failure("the server closed the connection");
    check(index, reply);
  }

  int _fd;
  Framing _framing;
};

class DatagramServer final : public peers::Server {
public:
  DatagramServer() {
    _fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    _self = loopback(0);
    socklen_t length = sizeof _self;
    if (_fd < 0 || bind(_fd, reinterpret_cast<sockaddr*>(&_self), sizeof _self) != 0 ||
        getsockname(_fd, reinterpret_cast<sockaddr*>(&_self), &length) != 0) {
      systemFailure("cannot bind a UDP socket on 127.0.0.1");
    }
  }
  ~DatagramServer() override { close(_fd); }

  std::string address() const override {
    return "127.0.0.1:" + std::to_string(ntohs(_self.sin_port));
  }

  void run() override {
    std::vector<uint8_t> datagram(65536);
    for (;;) {
      sockaddr_in from{};
      socklen_t length = sizeof from;
      ssize_t n = recvfrom(_fd, datagram.data(), datagram.size(), 0,
                           reinterpret_cast<sockaddr*>(&from), &length);
      if (_stopping.load()) return;
      if (n < 0) {
        if (errno == EINTR) continue;
        systemFailure("cannot receive a datagram");
      }
      sendto(_fd, datagram.data(), static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from),
             length);
    }
  }

  // Wakes run() with an empty datagram to the server's own address.
  void stop() override {
    _stopping.store(true);
    int waker = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sendto(waker, nullptr, 0, 0, reinterpret_cast<const sockaddr*>(&_self), sizeof _self);
    close(waker);
  }

private:
  int _fd = -1;
  sockaddr_in _self{};
  std::atomic<bool> _stopping{false};
};

class DatagramConnection final : public peers::Connection {
public:
  explicit DatagramConnection(const std::string& address) {
    _fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    size_t colon = address.rfind(':');
    sockaddr_in to = loopback(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    if (_fd < 0 || connect(_fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      systemFailure("cannot connect a UDP socket to " + address);
    }
    setReceiveTimeout(_fd);
    _datagram.resize(65536);
  }
  ~DatagramConnection() override { close(_fd); }

  void ping() override {
    DatagramHeader header{0, 0, 1};
    if (send(_fd, &header, sizeof header, 0) != sizeof header) systemFailure("cannot send");
    if (receiveDatagram() != sizeof header) throw Failure("a ping's reply is not an empty datagram");
  }

  void echo(std::span<const uint8_t> request, const peers::ReplyCheck& check) override {
    std::span<const uint8_t> one[1] = {request};
    exchange(one, check);
  }

  void echoInFlight(const std::vector<std::vector<uint8_t>>& requests,
                    const peers::ReplyCheck& check) override {
    std::vector<std::span<const uint8_t>> views(requests.begin(), requests.end());
    exchange(views, check);
  }

private:
  size_t receiveDatagram() {
    ssize_t n = recv(_fd, _datagram.data(), _datagram.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      throw Failure("a datagram was lost: no reply within " +
                    std::to_string(kReplyTimeoutSeconds) + " s (raw udp does not recover)");
    }
    if (n < static_cast<ssize_t>(sizeof(DatagramHeader))) systemFailure("cannot receive a reply");
    return static_cast<size_t>(n);
  }

  // Sends every request's datagrams, then gathers the echoed fragments of each.
  void exchange(std::span<const std::span<const uint8_t>> requests, const peers::ReplyCheck& check) {
    size_t expected = 0;
    _replies.resize(std::max(_replies.size(), requests.size()));
    _missing.assign(requests.size(), 0);
    for (size_t r = 0; r < requests.size(); ++r) {
      std::span<const uint8_t> request = requests[r];
      size_t fragments = std::max<size_t>(1, (request.size() + kDatagramChunk - 1) / kDatagramChunk);
      _replies[r].resize(request.size());
      _missing[r] = fragments;
      expected += fragments;
      for (size_t f = 0; f < fragments; ++f) {
        DatagramHeader header{static_cast<uint32_t>(r), static_cast<uint16_t>(f),
                              static_cast<uint16_t>(fragments)};
        size_t offset = f * kDatagramChunk;
        size_t size = std::min(kDatagramChunk, request.size() - std::min(offset, request.size()));
        iovec parts[2] = {{&header, sizeof header},
                          {const_cast<uint8_t*>(request.data()) + offset, size}};
        if (writev(_fd, parts, size == 0 ? 1 : 2) != static_cast<ssize_t>(sizeof header + size)) {
          systemFailure("cannot send a datagram");
        }
      }
    }
    for (; expected > 0; --expected) {
      size_t n = receiveDatagram();
      DatagramHeader header;
      std::memcpy(&header, _datagram.data(), sizeof header);
      if (header.request >= requests.size() || _missing[header.request] == 0) {
        throw Failure("a datagram came for a request that was not asked for or is complete");
      }
      std::vector<uint8_t>& reply = _replies[header.request];
      size_t offset = size_t{header.fragment} * kDatagramChunk;
      size_t size = n - sizeof header;
      if (offset + size > reply.size()) throw Failure("a reply fragment lies outside its request");
      std::memcpy(reply.data() + offset, _datagram.data() + sizeof header, size);
      if (--_missing[header.request] == 0) check(header.request, reply);
    }
  }

  int _fd = -1;
  std::vector<uint8_t> _datagram;
  std::vector<std::vector<uint8_t>> _replies;
  std::vector<size_t> _missing;
};

// Both sides in one process: the caller posts a batch and sleeps on `_done`; the other thread
// copies each request into its reply, then wakes the caller.
class HandOffConnection final : public peers::Connection {
public:
  HandOffConnection() : _thread([this] { serve(); }) {}
  ~HandOffConnection() override {
    _stopping.store(true);
    _posted.fetch_add(1, std::memory_order_release);
    bench::futexWake(_posted);
    _thread.join();
  }

  void ping() override { handOff(); }

  void echo(std::span<const uint8_t> request, const peers::ReplyCheck& check) override {
    _batch.assign(1, request);
    handOff();
    check(0, _replies[0]);
  }

  void echoInFlight(const std::vector<std::vector<uint8_t>>& requests,
                    const peers::ReplyCheck& check) override {
    _batch.assign(requests.begin(), requests.end());
    handOff();
    for (size_t i = 0; i < requests.size(); ++i) check(i, _replies[i]);
  }

private:
  void handOff() {
    uint32_t mine = _posted.fetch_add(1, std::memory_order_release) + 1;
    bench::futexWake(_posted);
    for (uint32_t seen = _done.load(std::memory_order_acquire); seen != mine;
         seen = _done.load(std::memory_order_acquire)) {
      bench::futexWait(_done, seen);
    }
    _batch.clear();
  }

  void serve() {
    uint32_t served = 0;
    for (;;) {
      uint32_t next = _posted.load(std::memory_order_acquire);
      if (next == served) {
        bench::futexWait(_posted, served);
        continue;
      }
      if (_stopping.load()) return;
      served = next;
      _replies.resize(std::max(_replies.size(), _batch.size()));
      for (size_t i = 0; i < _batch.size(); ++i) _replies[i].assign(_batch[i].begin(), _batch[i].end());
      _done.store(served, std::memory_order_release);
      bench::futexWake(_done);
    }
  }

  std::atomic<uint32_t> _posted{0};
  std::atomic<uint32_t> _done{0};
  std::atomic<bool> _stopping{false};
  // Written by the caller before it posts, read by the other thread until it is done.
  std::vector<std::span<const uint8_t>> _batch;
  std::vector<std::vector<uint8_t>> _replies;
  std::thread _thread;
};

}  // namespace

int main(int argc, char** argv) {
  peers::System system;
  system.name = "raw";
  system.transports = {{"tcp", ""}, {"unix", ""}, {"udp", ""}, {"inproc", ""}};
  system.serve = [](const peers::ServeArgs& args) -> std::unique_ptr<peers::Server> {
    if (args.transport == "udp") return std::make_unique<DatagramServer>();
    return std::make_unique<StreamServer>(args);
  };
  system.connect = [](const std::string& transport,
                      const std::string& address) -> std::unique_ptr<peers::Connection> {
    if (transport == "udp") return std::make_unique<DatagramConnection>(address);
    if (transport == "inproc") return std::make_unique<HandOffConnection>();
    return std::make_unique<StreamConnection>(transport, address);
  };
  return peers::main(argc, argv, system);
}
