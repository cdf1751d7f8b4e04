// The tcp transport plugin: framed messages over TCP connections (tcp-transport.h).
#include "tcp-transport.h"

namespace ferry::transports {
namespace {

// A network stream transport: after pipe and udp (a connection costs a handshake and its
// messages wait behind each other's lost segments).
constexpr ferry_transport_v1 kTable =
    streamTable<TcpTransport>(&checkInetBinding, 0, 300);

const ferry_plugin_v1 kDescriptor = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_TRANSPORT,
    .name = TcpTransport::kName,
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
