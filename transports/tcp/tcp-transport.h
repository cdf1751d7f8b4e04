// The tcp transport's instance: StreamTransport over TCP sockets (tcp-transport.cpp is the
// plugin). A header so that a transport that is TCP with a rule on top (the test-only loopback
// transport, tests/plugins/loopback) derives from it rather than copying it.
//
// Bindings: the address is a numeric IPv4 or IPv6 address ("127.0.0.1", "::1"; no brackets, no
// host names), the endpoint a decimal port. Listening on "" or "0" picks a free port and reports
// it. IPv6 listeners are IPv6-only, so "::" and "0.0.0.0" are two separate listeners. Every
// connection has TCP_NODELAY: ferry's messages are whole requests and replies, and waiting to
// coalesce them only adds latency. Peers are described as "1.2.3.4:port" or "[::1]:port".
// connection_info reports the kernel's TCP_INFO (RTT, its deviation, segments retransmitted).
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "inet-binding.h"
#include "stream-transport.h"

namespace ferry::transports {

class TcpTransport : public StreamTransport {
public:
  static constexpr const char* kName = "tcp";

  TcpTransport(const ferry_host_v1* host, uv_loop_t* loop, const ferry_transport_events_v1& events,
               const StreamLimits& limits, const char* name = kName)
      : StreamTransport(name, host, loop, events, limits) {}

protected:
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

  // The kernel's TCP_INFO: its smoothed RTT and deviation (microseconds) and the segments it
  // retransmitted over the connection's life.
  int pathInfo(Connection& connection, ferry_connection_info_v1& out) override {
    uv_os_fd_t fd;
    int err = uv_fileno(reinterpret_cast<const uv_handle_t*>(&connection.handle.tcp), &fd);
    if (err != 0) return err;
    tcp_info info{};
    socklen_t length = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) {
      return uv_translate_sys_error(errno);
    }
    out.rtt_us = info.tcpi_rtt;
    out.rtt_var_us = info.tcpi_rttvar;
    out.packets_lost = info.tcpi_total_retrans;
    return 0;
  }
};

}  // namespace ferry::transports
