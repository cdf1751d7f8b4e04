// The test-only `loopback` transport: tcp restricted to loopback addresses (127.0.0.0/8, ::1),
// so it reaches this host only. It declares itself local-only, over a stream, with a cost rank
// between pipe's and udp's, and is otherwise unknown to core: the tests that load it
// (tests/unit/transport-choice-test, tests/integration/fourth-transport-test) show that core picks
// transports from what their tables declare, never from their names, so that a fourth transport
// needs no change in core. Installed nowhere, and not on the build tree's FERRY_PLUGIN_PATH.
#include <arpa/inet.h>

#include "tcp-transport.h"

namespace ferry::transports {
namespace {

bool isLoopback(const char* address) {
  in_addr v4{};
  if (address != nullptr && inet_pton(AF_INET, address, &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  return address != nullptr && inet_pton(AF_INET6, address, &v6) == 1 &&
         IN6_IS_ADDR_LOOPBACK(&v6);
}

class LoopbackTransport final : public TcpTransport {
public:
  static constexpr const char* kName = "loopback";

  LoopbackTransport(const ferry_host_v1* host, uv_loop_t* loop,
                    const ferry_transport_events_v1& events, const StreamLimits& limits)
      : TcpTransport(host, loop, events, limits, kName) {}

private:
  int bindListener(Listener& listener, const char* address, const char* endpoint,
                   std::string& bound) override {
    if (!isLoopback(address)) {
      log(FERRY_LOG_WARN, "cannot listen on " + quoted(address) + ": not a loopback address");
      return UV_EINVAL;
    }
    return TcpTransport::bindListener(listener, address, endpoint, bound);
  }

  int startConnect(Connection& connection, const char* address, const char* endpoint) override {
    if (!isLoopback(address)) return UV_EINVAL;
    return TcpTransport::startConnect(connection, address, endpoint);
  }
};

int checkBinding(const char* address, const char* endpoint) noexcept {
  if (!isLoopback(address)) return UV_EINVAL;
  return checkInetBinding(address, endpoint);
}

constexpr ferry_transport_v1 kTable =
    streamTable<LoopbackTransport>(&checkBinding, FERRY_TRANSPORT_LOCAL_ONLY, 150);

const ferry_plugin_v1 kDescriptor = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_TRANSPORT,
    .name = LoopbackTransport::kName,
    .description = "test only: TCP on loopback addresses; local-only, ranked between pipe and udp",
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
