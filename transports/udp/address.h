// Socket addresses for the udp plugin: bindings as the ABI hands them in (a numeric IPv4/IPv6
// address and a decimal port, like tcp), their printable form, comparison, the prefix a rate
// limit keys on, and what the local route lets a datagram be.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace ferry::transports::udp {

// Parses a binding into a socket address: 0, or UV_EINVAL with the reason in `why`. Listening
// also takes the endpoints "" and "0" (any free port).
int parseBinding(const char* address, const char* endpoint, bool forListen,
                 sockaddr_storage& out, std::string& why);

// "1.2.3.4:port" or "[::1]:port".
std::string formatAddress(const sockaddr_storage& address);
uint16_t portOf(const sockaddr_storage& address) noexcept;
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
  // `perSecond` events per second and prefix, with a burst of as many.
  explicit RateLimiter(uint64_t perSecond) noexcept : _perSecond(perSecond) {}

  bool allow(const sockaddr_storage& from, uint64_t nowNs) noexcept;

private:
  struct Bucket {
    double tokens = 0;
    uint64_t last = 0;
  };
  static constexpr size_t kBuckets = 1024;

  uint64_t _perSecond;
  Bucket _buckets[kBuckets];
};

}  // namespace ferry::transports::udp
