// Host names where users write hosts (ferry:// references): looked up with libuv's getaddrinfo
// on a thread of its own, so that the caller's wait is bounded even when the system's resolver
// is not.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace ferry::detail {

// The numeric addresses of `host` (IPv4 first, then IPv6; each once): `host` itself when it is
// an IPv4 or IPv6 address. Throws unavailable when the name does not resolve, or does not within
// `timeout` (the lookup then finishes on its thread, unseen).
std::vector<std::string> lookupHost(const std::string& host, std::chrono::milliseconds timeout);

}  // namespace ferry::detail
