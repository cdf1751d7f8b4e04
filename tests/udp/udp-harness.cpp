#include "udp-harness.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace ferry::udptest {

namespace {

// Log lines at or above FERRY_UDP_TEST_LOG (error, warn, info, debug; default warn) go to stderr.
int logThreshold() {
  static const int threshold = [] {
    const char* level = std::getenv("FERRY_UDP_TEST_LOG");
    if (level == nullptr) return FERRY_LOG_WARN;
    if (std::strcmp(level, "debug") == 0) return FERRY_LOG_DEBUG;
    if (std::strcmp(level, "info") == 0) return FERRY_LOG_INFO;
    if (std::strcmp(level, "error") == 0) return FERRY_LOG_ERROR;
    return FERRY_LOG_WARN;
  }();
  return threshold;
}

void hostLog(void*, int level, const char* plugin, const char* message) {
  if (level > logThreshold()) return;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::fprintf(stderr, "[%s %d] %s\n", plugin, level, message);
}

}  // namespace

ScopedEnv::ScopedEnv(const char* name, const std::string& value) : _name(name) {
  if (const char* old = std::getenv(name)) _old = old;
  if (value.empty()) {
    unsetenv(name);
  } else {
    setenv(name, value.c_str(), 1);
  }
}

ScopedEnv::~ScopedEnv() {
  if (_old) {
    setenv(_name, _old->c_str(), 1);
  } else {
    unsetenv(_name);
  }
}

const ferry_host_v1* host() {
  static const ferry_host_v1 services = [] {
    ferry_host_v1 h{};
    h.struct_size = sizeof(h);
    h.abi_version = FERRY_PLUGIN_ABI_VERSION;
    h.log = &hostLog;
    h.runtime_dir = "/tmp";
    return h;
  }();
  return &services;
}

namespace {

// The module named by the `index`th path after `--` on the command line.
std::string modulePath(size_t index) {
  auto& suite = boost::unit_test::framework::master_test_suite();
  std::vector<std::string> paths;
  for (int i = 1; i < suite.argc; ++i) {
    std::string arg = suite.argv[i];
    if (arg != "--" && !arg.empty() && arg[0] != '-') paths.push_back(arg);
  }
  BOOST_REQUIRE_MESSAGE(paths.size() > index,
                        "name the udp modules after --: the test-only build with the fault layer, "
                        "then the shipping one (udp-test -- fault-layer/ferry-transport-udp.so "
                        "ferry-transport-udp.so)");
  return paths[index];
}

Plugin load(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  BOOST_REQUIRE_MESSAGE(handle != nullptr, "dlopen " << path << ": " << dlerror());
  auto entry = reinterpret_cast<ferry_plugin_entry_v1_fn>(dlsym(handle, FERRY_PLUGIN_ENTRY_V1_SYMBOL));
  BOOST_REQUIRE(entry != nullptr);
  const ferry_plugin_v1* descriptor = entry(host());
  BOOST_REQUIRE(descriptor != nullptr);
  BOOST_REQUIRE(descriptor->kind == FERRY_PLUGIN_TRANSPORT);
  BOOST_REQUIRE(std::strcmp(descriptor->name, "udp") == 0);
  Plugin p;
  p.table = static_cast<const ferry_transport_v1*>(descriptor->table);
  BOOST_REQUIRE(p.table->struct_size >= offsetof(ferry_transport_v1, counters) + sizeof(void*));
  BOOST_REQUIRE(p.table->counters != nullptr);
  BOOST_REQUIRE(p.table->create_with_settings != nullptr);
  p.setFault = reinterpret_cast<ferry_udp_test_set_fault_v1_fn>(
      dlsym(handle, FERRY_UDP_TEST_SET_FAULT_V1_SYMBOL));
  // Never dlclose: the ABI says plugins stay loaded.
  return p;
}

}  // namespace

const Plugin& plugin() {
  static const Plugin loaded = [] {
    Plugin p = load(modulePath(0));
    BOOST_REQUIRE_MESSAGE(p.setFault != nullptr,
                          "the first module is not the udp plugin's test-only build: it does not "
                          "export " FERRY_UDP_TEST_SET_FAULT_V1_SYMBOL);
    return p;
  }();
  return loaded;
}

const Plugin& shippingPlugin() {
  static const Plugin loaded = load(modulePath(1));
  return loaded;
}

std::vector<ferry_counter_v1> readCounters(const Plugin& plugin, ferry_transport* transport) {
  std::vector<ferry_counter_v1> list(128);
  int count = plugin.table->counters(transport, list.data(), list.size());
  BOOST_REQUIRE(count >= 0);
  if (static_cast<size_t>(count) > list.size()) {
    list.resize(static_cast<size_t>(count));
    count = plugin.table->counters(transport, list.data(), list.size());
    BOOST_REQUIRE(count >= 0 && static_cast<size_t>(count) == list.size());
  }
  list.resize(static_cast<size_t>(count));
  return list;
}

Bytes tagged(uint32_t stream, uint32_t index, size_t size) {
  Bytes message = pattern(size < 8 ? 0 : size - 8, stream * 100003u + index);
  Bytes tag(8);
  for (int i = 0; i < 4; ++i) {
    tag[i] = static_cast<uint8_t>(stream >> (8 * i));
    tag[4 + i] = static_cast<uint8_t>(index >> (8 * i));
  }
  message.insert(message.begin(), tag.begin(), tag.end());
  return message;
}

// --- Instance. ---

Instance::Instance(Harness& harness, const Plugin& module, const std::string& options,
                   const std::string& fault)
    : transporttest::Instance(harness, *module.table, host(), options), _module(module) {
  if (!fault.empty()) setFault(fault);
}

std::string Instance::listen(const std::string& address, const std::string& endpoint) {
  return transporttest::Instance::listen(address, endpoint);
}

UdpCounters Instance::counters() const {
  BOOST_REQUIRE(!destroyCalled);
  UdpCounters out;
  size_t known = 0;
  std::vector<ferry_counter_v1> list = readCounters(_module, transport());
  for (const ferry_counter_v1& counter : list) {
    std::string name = counter.name;
#define FERRY_UDP_TEST_READ(field)  \
  if (name == #field) {             \
    out.field = counter.value;      \
    ++known;                        \
  }
    FERRY_UDP_COUNTERS(FERRY_UDP_TEST_READ)
    FERRY_UDP_FAULT_COUNTERS(FERRY_UDP_TEST_READ)
#undef FERRY_UDP_TEST_READ
  }
  BOOST_REQUIRE_MESSAGE(known == list.size(), "the plugin reports counters this test does not know");
  return out;
}

void Instance::setFault(const std::string& spec) {
  BOOST_REQUIRE_MESSAGE(_module.setFault != nullptr, "this module has no fault layer");
  BOOST_REQUIRE(_module.setFault(transport(), spec.c_str()) == 0);
}

// --- Harness. ---

Harness::Harness() { (void)plugin(); }

Instance& Harness::instance(const std::string& options, const std::string& fault) {
  return adopt(std::make_unique<Instance>(*this, plugin(), options, fault));
}

Instance& Harness::shippingInstance(const std::string& options) {
  return adopt(std::make_unique<Instance>(*this, shippingPlugin(), options, ""));
}

Link connectPair(Harness& harness, Instance& server, Instance& client, const std::string& port,
                 milliseconds patience) {
  return transporttest::connectPair(harness, server, client, "127.0.0.1", port, patience);
}

// --- RawSocket. ---

RawSocket::RawSocket() {
  _fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(_fd >= 0);
  sockaddr_in name{};
  name.sin_family = AF_INET;
  name.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(bind(_fd, reinterpret_cast<sockaddr*>(&name), sizeof(name)) == 0);
  socklen_t length = sizeof(name);
  BOOST_REQUIRE(getsockname(_fd, reinterpret_cast<sockaddr*>(&name), &length) == 0);
  _port = ntohs(name.sin_port);
  int size = 4 << 20;
  setsockopt(_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

RawSocket::~RawSocket() {
  if (_fd >= 0) ::close(_fd);
}

void RawSocket::sendTo(const std::string& port, const Bytes& datagram) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  ssize_t n = sendto(_fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof(to));
  BOOST_REQUIRE_MESSAGE(n == static_cast<ssize_t>(datagram.size()),
                        "raw send: " << std::strerror(errno));
  bytesSent += datagram.size();
  ++datagramsSent;
}

std::vector<Bytes> RawSocket::receiveAll() {
  std::vector<Bytes> out;
  for (;;) {
    uint8_t buffer[65536];
    ssize_t n = recv(_fd, buffer, sizeof(buffer), 0);
    if (n < 0) break;
    out.emplace_back(buffer, buffer + n);
    bytesReceived += static_cast<uint64_t>(n);
    ++datagramsReceived;
  }
  return out;
}

}  // namespace ferry::udptest
