#include "address.h"

#include <netinet/in.h>
#include <unistd.h>

#include <cstring>

#include "wire.h"

namespace ferry::transports::udp {

namespace {

uint64_t fnv1a(const uint8_t* data, size_t size) noexcept {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i) {
    hash ^= data[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

}  // namespace

socklen_t addressLength(const sockaddr_storage& address) noexcept {
  return address.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

bool sameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b) noexcept {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
  const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port &&
         std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0 &&
         x.sin6_scope_id == y.sin6_scope_id;
}

std::string hostKey(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    return std::string("4") + std::string(reinterpret_cast<const char*>(&in.sin_addr), 4);
  }
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
  return std::string("6") + std::string(reinterpret_cast<const char*>(&in6.sin6_addr), 16);
}

uint64_t prefixHash(const sockaddr_storage& address) noexcept {
  uint8_t key[8] = {};
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    key[0] = 4;
    std::memcpy(key + 1, &in.sin_addr, 3);  // /24
  } else {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    key[0] = 6;
    std::memcpy(key + 1, &in6.sin6_addr, 7);  // /56
  }
  return fnv1a(key, sizeof(key));
}

size_t pathMaxDatagram(const sockaddr_storage& peer) noexcept {
  int fd = socket(peer.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return kBaseDatagramSize;
  size_t result = kBaseDatagramSize;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&peer), addressLength(peer)) == 0) {
    int mtu = 0;
    socklen_t length = sizeof(mtu);
    bool v4 = peer.ss_family == AF_INET;
    int rc = v4 ? getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &length)
                : getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &length);
    size_t headers = v4 ? 20 + 8 : 40 + 8;
    if (rc == 0 && static_cast<size_t>(mtu) > headers) {
      result = static_cast<size_t>(mtu) - headers;
      if (result > kMaxDatagramSize) result = kMaxDatagramSize;
    }
  }
  close(fd);
  return result;
}

bool RateLimiter::allow(const sockaddr_storage& from, uint64_t nowNs) noexcept {
  if (_perSecond == 0) return false;
  Bucket& bucket = _buckets[_scope == Scope::whole ? 0 : prefixHash(from) % kBuckets];
  double capacity = static_cast<double>(_perSecond);
  if (bucket.last == 0) {
    bucket.tokens = capacity;
  } else if (nowNs > bucket.last) {
    bucket.tokens += static_cast<double>(nowNs - bucket.last) * capacity / 1e9;
    if (bucket.tokens > capacity) bucket.tokens = capacity;
  }
  bucket.last = nowNs;
  if (bucket.tokens < 1.0) return false;
  bucket.tokens -= 1.0;
  return true;
}

}  // namespace ferry::transports::udp
