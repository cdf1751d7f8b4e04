// Bindings of the IP transports (tcp, udp): a numeric IPv4 or IPv6 address ("127.0.0.1", "::1";
// no brackets, no host names) and a decimal port, as the ABI hands them in, and the printable
// form of a socket address.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace ferry::transports {

// Parses a binding into a socket address: 0, or UV_EINVAL with the reason in `why` (for the
// log). Listening also takes the endpoints "" and "0" (any free port); connecting needs a port
// from 1 to 65535.
int parseBinding(const char* address, const char* endpoint, bool forListen,
                 sockaddr_storage& out, std::string& why);

// The check_binding of an IP transport: parseBinding for a connect, the reason dropped.
int checkInetBinding(const char* address, const char* endpoint) noexcept;

// "1.2.3.4:port" or "[::1]:port".
std::string formatAddress(const sockaddr_storage& address);

uint16_t portOf(const sockaddr_storage& address) noexcept;

}  // namespace ferry::transports
