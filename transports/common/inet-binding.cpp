#include "inet-binding.h"

#include <uv.h>

#include <cstring>

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

}  // namespace

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

int checkInetBinding(const char* address, const char* endpoint) noexcept {
  try {
    sockaddr_storage socketAddress;
    std::string why;
    return parseBinding(address, endpoint, false, socketAddress, why);
  } catch (...) {
    return UV_ENOMEM;
  }
}

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

uint16_t portOf(const sockaddr_storage& address) noexcept {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
}

}  // namespace ferry::transports
