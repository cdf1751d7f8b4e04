#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "plugin-loader.h"

namespace ferry::conformance {

namespace {

// A socket address for a numeric IPv4/IPv6 address and a port.
bool socketAddress(const std::string& address, uint16_t port, sockaddr_storage& out,
                   socklen_t& length) {
  std::memset(&out, 0, sizeof(out));
  auto* in = reinterpret_cast<sockaddr_in*>(&out);
  if (inet_pton(AF_INET, address.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    length = sizeof(sockaddr_in);
    return true;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (inet_pton(AF_INET6, address.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// A port on `address` that was free a moment ago, or 0 when nothing can be bound there.
uint16_t freePort(const std::string& address) {
  sockaddr_storage name;
  socklen_t length;
  if (!socketAddress(address, 0, name, length)) return 0;
  int fd = socket(name.ss_family, (overDatagrams() ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&name), length) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&name), &length) == 0) {
    port = ntohs(name.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&name)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&name)->sin6_port);
  }
  ::close(fd);
  return port;
}

bool ipv6LoopbackWorks() {
  static const bool works = [] {
    bool ok = freePort("::1") != 0;
    if (!ok) {
      std::cerr << "conformance: this machine has no working IPv6 loopback (::1); "
                   "the tcp cases on ::1 are skipped\n";
    }
    return ok;
  }();
  return works;
}

}  // namespace

// --- The plugin under test. ---

const std::string& pluginName() {
  static const std::string name = [] {
    auto& suite = boost::unit_test::framework::master_test_suite();
    for (int i = 1; i < suite.argc; ++i) {
      std::string arg = suite.argv[i];
      if (arg != "--" && !arg.empty() && arg[0] != '-') return arg;
    }
    return std::string();
  }();
  return name;
}


const ferry_transport_v1& table() {
  BOOST_REQUIRE_MESSAGE(!pluginName().empty(),
                        "name the transport to test after --, e.g. transport-conformance -- tcp");
  const ferry_transport_v1* found =
      detail::PluginRegistry::instance().tryFindTransport(pluginName());
  BOOST_REQUIRE_MESSAGE(found != nullptr, "transport plugin '" << pluginName()
                                              << "' is not loaded; check FERRY_PLUGIN_PATH");
  return *found;
}

const ferry_host_v1* host() { return detail::PluginRegistry::host(); }

const detail::TransportTraits& traits() {
  static const detail::TransportTraits declared = detail::traitsOf(table());
  return declared;
}

bool pathAddresses() { return traits().pathAddresses; }
bool overDatagrams() { return traits().datagram; }

std::vector<std::string> listenAddresses() {
  if (!pathAddresses()) {
    std::vector<std::string> addresses{"127.0.0.1"};
    if (ipv6LoopbackWorks()) addresses.push_back("::1");
    return addresses;
  }
  return {""};
}

std::string deadEndpoint(const std::string& address) {
  if (!pathAddresses()) {
    uint16_t port = freePort(address);
    BOOST_REQUIRE_MESSAGE(port != 0, "cannot find a free port on " << address);
    return std::to_string(port);
  }
  return "conformance-nobody-" + std::to_string(getpid());
}

std::string runtimePath(const std::string& endpoint) {
  return std::string(host()->runtime_dir) + "/" + endpoint;
}

Bytes frameHeader(uint64_t length) {
  return {static_cast<uint8_t>(length), static_cast<uint8_t>(length >> 8),
          static_cast<uint8_t>(length >> 16), static_cast<uint8_t>(length >> 24)};
}

Instance& Harness::instance() {
  return adopt(std::make_unique<Instance>(*this, table(), host()));
}

Instance& Harness::instance(const std::string& settings) {
  return adopt(std::make_unique<Instance>(*this, table(), host(), settings));
}

uint64_t counter(Instance& instance, const std::string& name) {
  BOOST_REQUIRE(table().counters != nullptr);
  std::vector<ferry_counter_v1> out(128);
  int n = table().counters(instance.transport(), out.data(), out.size());
  BOOST_REQUIRE(n >= 0 && static_cast<size_t>(n) <= out.size());
  for (int i = 0; i < n; ++i) {
    if (name == out[i].name) return out[i].value;
  }
  BOOST_FAIL("the instance has no counter " << name);
  return 0;
}

// --- RawPeer. ---

RawPeer::RawPeer(const std::string& address, const std::string& endpoint,
                 const std::string& source) {
  if (pathAddresses()) {
    std::string path = runtimePath(endpoint);
    sockaddr_un name{};
    name.sun_family = AF_UNIX;
    BOOST_REQUIRE(path.size() < sizeof(name.sun_path));
    std::memcpy(name.sun_path, path.c_str(), path.size() + 1);
    _fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(_fd >= 0);
    BOOST_REQUIRE_MESSAGE(::connect(_fd, reinterpret_cast<sockaddr*>(&name), sizeof(name)) == 0,
                          "raw connect to " << path << ": " << std::strerror(errno));
    return;
  }
  sockaddr_storage name{};
  socklen_t length = 0;
  BOOST_REQUIRE(socketAddress(address, static_cast<uint16_t>(std::stoi(endpoint)), name, length));
  _fd = socket(name.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(_fd >= 0);
  if (!source.empty()) {
    sockaddr_storage local{};
    socklen_t localLength = 0;
    BOOST_REQUIRE(socketAddress(source, 0, local, localLength));
    BOOST_REQUIRE_MESSAGE(::bind(_fd, reinterpret_cast<sockaddr*>(&local), localLength) == 0,
                          "raw bind to " << source << ": " << std::strerror(errno));
  }
  BOOST_REQUIRE_MESSAGE(::connect(_fd, reinterpret_cast<sockaddr*>(&name), length) == 0,
                        "raw connect to " << address << " port " << endpoint << ": "
                                          << std::strerror(errno));
}

RawPeer::~RawPeer() { close(); }

void RawPeer::close() {
  if (_fd >= 0) ::close(_fd);
  _fd = -1;
}

void RawPeer::write(const Bytes& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(_fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    BOOST_REQUIRE_MESSAGE(n > 0, "raw write: " << std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

size_t RawPeer::writeSome(const Bytes& bytes) {
  for (;;) {
    ssize_t n = ::send(_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
}

bool RawPeer::readAvailable(Bytes& into) {
  uint8_t buffer[4096];
  for (;;) {
    ssize_t n = ::recv(_fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n > 0) {
      into.insert(into.end(), buffer, buffer + n);
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    return false;  // ECONNRESET and the like: closed too
  }
}

void forEachAddress(const std::function<void(Harness&, const std::string&)>& body) {
  for (const std::string& address : listenAddresses()) {
    BOOST_TEST_CONTEXT("listening on '" << address << "'") {
      Harness harness;
      body(harness, address);
    }
  }
}

}  // namespace ferry::conformance
