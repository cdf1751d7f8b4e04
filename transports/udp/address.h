// Socket addresses for the udp plugin: comparison, the prefix a rate limit keys on, and what
// the local route lets a datagram be. Bindings as the ABI hands them in (a numeric IPv4/IPv6
// address and a decimal port) and their printable form are tcp's: inet-binding.h, included here.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "inet-binding.h"

namespace ferry::transports::udp {

// The size of the sockaddr_in or sockaddr_in6 in `address`.
socklen_t addressLength(const sockaddr_storage& address) noexcept;

// Same family, address and port.
bool sameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b) noexcept;

// The remote IP address alone, as bytes, for keying per-host state (congestion control).
std::string hostKey(const sockaddr_storage& address);

// A hash of the /24 (IPv4) or /56 (IPv6) prefix, for rate limits.
uint64_t prefixHash(const sockaddr_storage& address) noexcept;

// The largest UDP payload the local route to `peer` carries (its MTU minus IP and UDP headers),
// from a throwaway connected socket; a conservative default when the kernel does not say.
size_t pathMaxDatagram(const sockaddr_storage& peer) noexcept;

// Token buckets keyed by address prefix, in a fixed table: a flood of spoofed sources costs no
// allocation, and prefixes that collide share a bucket.
class RateLimiter {
public:
  // Whom one bucket counts: each address prefix, or every sender together.
  enum class Scope { perPrefix, whole };

  // `perSecond` events per second and prefix (or in all), with a burst of as many.
  explicit RateLimiter(uint64_t perSecond, Scope scope = Scope::perPrefix) noexcept
      : _perSecond(perSecond), _scope(scope) {}

  bool allow(const sockaddr_storage& from, uint64_t nowNs) noexcept;

private:
  struct Bucket {
    double tokens = 0;
    uint64_t last = 0;
  };
  static constexpr size_t kBuckets = 1024;

  uint64_t _perSecond;
  Scope _scope;
  Bucket _buckets[kBuckets];
};

}  // namespace ferry::transports::udp
