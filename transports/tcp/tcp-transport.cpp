// The tcp transport plugin: framed messages over TCP connections.
//
// Bindings: the address is a numeric IPv4 or IPv6 address ("127.0.0.1", "::1"; no brackets, no
// host names), the endpoint a decimal port. Listening on "" or "0" picks a free port and reports
// it. IPv6 listeners are IPv6-only, so "::" and "0.0.0.0" are two separate listeners. Every
// connection has TCP_NODELAY: ferry's messages are whole requests and replies, and waiting to
// coalesce them only adds latency. Peers are described as "1.2.3.4:port" or "[::1]:port".
#include <cstring>
#include <string>

#include "stream-transport.h"

namespace ferry::transports {
namespace {

// A decimal port. Listening also takes "" and "0" (any free port); connecting needs 1-65535.
bool parsePort(const char* text, bool forListen, uint16_t& port) {
  if (*text == '\0') {
    port = 0;
    return forListen;
  }
  size_t length = std::strlen(text);
  if (length > 5) return false;
  unsigned value = 0;
  for (size_t i = 0; i < length; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + static_cast<unsigned>(text[i] - '0');
  }
  if (value > 65535 || (value == 0 && !forListen)) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

// Parses a binding into a socket address; 0, or UV_EINVAL with the reason in `why`.
int parseBinding(const char* address, const char* endpoint, bool forListen,
                 sockaddr_storage& out, std::string& why) {
  if (address == nullptr || endpoint == nullptr) {
    why = "null address or endpoint";
    return UV_EINVAL;
  }
  uint16_t port = 0;
  if (!parsePort(endpoint, forListen, port)) {
    why = "endpoint " + quoted(endpoint) + " is not a port number from 1 to 65535" +
          (forListen ? " (or \"\" or \"0\" for any free port)" : "");
    return UV_EINVAL;
  }
  std::memset(&out, 0, sizeof(out));
  if (uv_ip4_addr(address, port, reinterpret_cast<sockaddr_in*>(&out)) == 0) return 0;
  if (uv_ip6_addr(address, port, reinterpret_cast<sockaddr_in6*>(&out)) == 0) return 0;
  why = "address " + quoted(address) + " is not a numeric IPv4 or IPv6 address";
  return UV_EINVAL;
}

// "1.2.3.4:port" or "[::1]:port".
std::string formatAddress(const sockaddr_storage& address) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    uv_ip4_name(&in, host, sizeof(host));
    return std::string(host) + ":" + std::to_string(ntohs(in.sin_port));
  }
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
  uv_ip6_name(&in6, host, sizeof(host));
  return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6.sin6_port));
}

uint16_t portOf(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
}

class TcpTransport final : public StreamTransport {
public:
  TcpTransport(const ferry_host_v1* host, uv_loop_t* loop, const ferry_transport_events_v1& events)
      : StreamTransport("tcp", host, loop, events) {}

private:
  int initHandle(StreamHandle& handle) override { return uv_tcp_init(loop(), &handle.tcp); }

  int bindListener(Listener& listener, const char* address, const char* endpoint,
                   std::string& bound) override {
    sockaddr_storage socketAddress;
    std::string why;
    int err = parseBinding(address, endpoint, true, socketAddress, why);
    if (err != 0) {
      log(FERRY_LOG_WARN, "cannot listen: " + why);
      return err;
    }
    err = openHandle(listener);
    if (err != 0) return err;
    unsigned flags = socketAddress.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    err = uv_tcp_bind(&listener.handle.tcp, reinterpret_cast<const sockaddr*>(&socketAddress),
                      flags);
    if (err != 0) {
      log(FERRY_LOG_WARN, "cannot bind " + formatAddress(socketAddress) + ": " + uv_strerror(err));
      return err;
    }
    // The port the system picked when the endpoint was "" or "0".
    sockaddr_storage name;
    int length = sizeof(name);
    err = uv_tcp_getsockname(&listener.handle.tcp, reinterpret_cast<sockaddr*>(&name), &length);
    if (err != 0) return err;
    bound = std::to_string(portOf(name));
    return 0;
  }

  int startConnect(Connection& connection, const char* address, const char* endpoint) override {
    sockaddr_storage socketAddress;
    std::string why;
    int err = parseBinding(address, endpoint, false, socketAddress, why);
    if (err != 0) {
      log(FERRY_LOG_WARN, "cannot connect: " + why);
      return err;
    }
    err = openHandle(connection);
    if (err != 0) return err;
    return uv_tcp_connect(&connection.connectRequest, &connection.handle.tcp,
                          reinterpret_cast<const sockaddr*>(&socketAddress), &onConnectDone);
  }

  int establish(Connection& connection, const Listener*, PeerDescription& peer) override {
    int err = uv_tcp_nodelay(&connection.handle.tcp, 1);
    if (err != 0) return err;
    sockaddr_storage name;
    int length = sizeof(name);
    err = uv_tcp_getpeername(&connection.handle.tcp, reinterpret_cast<sockaddr*>(&name), &length);
    if (err != 0) return err;
    peer.address = formatAddress(name);
    return 0;
  }
};

int create(const ferry_host_v1* host, uv_loop_t* loop, const ferry_transport_events_v1* events,
           ferry_transport** out) noexcept {
  int err = validateCreate(host, loop, events, out);
  if (err != 0) return err;
  try {
    *out = streamabi::wrap(new TcpTransport(host, loop, *events));
    return 0;
  } catch (...) {
    return UV_ENOMEM;
  }
}

int checkBinding(const char* address, const char* endpoint) noexcept {
  try {
    sockaddr_storage socketAddress;
    std::string why;
    return parseBinding(address, endpoint, false, socketAddress, why);
  } catch (...) {
    return UV_ENOMEM;
  }
}

const ferry_transport_v1 kTable = {
    .struct_size = sizeof(ferry_transport_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .max_message_size = kMaxMessageSize,
    .create = &create,
    .destroy = &streamabi::destroy,
    .listen = &streamabi::listen,
    .connect = &streamabi::connect,
    .send = &streamabi::send,
    .close = &streamabi::close,
    .check_binding = &checkBinding,
    .strerror = &transportStrerror,
    .send_any_thread = &streamabi::sendAnyThread,
};

const ferry_plugin_v1 kDescriptor = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_TRANSPORT,
    .name = "tcp",
    .description = "TCP: numeric IPv4/IPv6 address, decimal port; length-prefixed messages",
    .table = &kTable,
};

}  // namespace
}  // namespace ferry::transports

FERRY_PLUGIN_EXPORT const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1* host) {
  using namespace ferry::transports;
  if (!hostCovers(host, offsetof(ferry_host_v1, log) + sizeof(host->log))) return nullptr;
  ignoreSigpipe();
  return &kDescriptor;
}
