// The udp plugin's C ABI: settings, create, the table and the descriptor.
#include "udp-transport.h"

#ifdef FERRY_UDP_FAULT_LAYER
#include "fault-layer.h"
#endif

namespace ferry::transports::udp {

namespace {

// --- The ABI. ---

// The table functions that only forward to the instance.
using UdpAbi = AbiGlue<UdpTransport>;

// The options `settings` (RuntimeOptions::transportSettings) and `override` (FERRY_UDP_OPTIONS,
// or null) give, or the first problem (a phrase that names the setting) and where it was.
bool readOptions(const char* settings, const char* override, Options& options, std::string& why) {
  std::vector<std::string> problems;
  parseOptions(settings, options, problems);
  if (!problems.empty()) {
    why = problems.front();
    return false;
  }
  if (override != nullptr) {
    parseOptions(override, options, problems);
    if (!problems.empty()) {
      why = "FERRY_UDP_OPTIONS: " + problems.front();
      return false;
    }
  }
  return true;
}

int checkSettings(const char* settings, char* whyOut, size_t whyCap) noexcept {
  return checkSettingsText(settings, whyOut, whyCap,
                           [](const char* text, std::vector<std::string>& problems) {
                             Options options;
                             parseOptions(text, options, problems);
                           });
}

void hostLog(const ferry_host_v1* host, int level, const std::string& line) noexcept {
  host->log(host->context, level, "udp", line.c_str());
}

int createWithSettings(const ferry_host_v1* host, uv_loop_t* loop,
                       const ferry_transport_events_v1* events, const char* settings,
                       ferry_transport** out) noexcept {
  int err = validateCreate(host, loop, events, out);
  if (err != 0) return err;
  try {
    Options options;
    std::string why;
    // Read once: what is logged is what was applied.
    const char* override = std::getenv("FERRY_UDP_OPTIONS");
    if (!readOptions(settings, override, options, why)) {
      hostLog(host, FERRY_LOG_ERROR, "settings refused, no instance created: " + why);
      return UV_EINVAL;
    }
    if (override != nullptr) {
      hostLog(host, FERRY_LOG_INFO,
              std::string("FERRY_UDP_OPTIONS overrides the settings: ") + override);
    }
    auto transport = std::make_unique<UdpTransport>(host, loop, *events, options);
#ifdef FERRY_UDP_FAULT_LAYER
    if (const char* spec = std::getenv("FERRY_UDP_FAULT")) {
      if (!transport->setFault(spec, why)) {
        hostLog(host, FERRY_LOG_ERROR, "FERRY_UDP_FAULT refused, no instance created: " + why);
        return UV_EINVAL;
      }
      if (*spec != '\0') {
        hostLog(host, FERRY_LOG_WARN, std::string("fault injection is on: FERRY_UDP_FAULT=") + spec);
      }
    }
#else
    if (std::getenv("FERRY_UDP_FAULT") != nullptr) {
      hostLog(host, FERRY_LOG_WARN,
              "FERRY_UDP_FAULT is ignored: this udp plugin has no fault layer (that is the "
              "test-only build in the build tree's transports/udp/fault-layer)");
    }
#endif
    err = transport->start();
    if (err != 0) return err;
    *out = UdpAbi::wrap(transport.release());
    return 0;
  } catch (const std::bad_alloc&) {
    return UV_ENOMEM;
  } catch (...) {
    return UV_EIO;
  }
}

int create(const ferry_host_v1* host, uv_loop_t* loop, const ferry_transport_events_v1* events,
           ferry_transport** out) noexcept {
  return createWithSettings(host, loop, events, "", out);
}

int counters(ferry_transport* transport, ferry_counter_v1* out, size_t cap) noexcept {
  UdpTransport* self = UdpAbi::unwrap(transport);
  if (self == nullptr || (out == nullptr && cap > 0)) return UV_EINVAL;
  return guardedCall(self, "counters",
                     [&] { return static_cast<int>(self->reportCounters(out, cap)); });
}

const ferry_transport_v1 kTable = {
    .struct_size = sizeof(ferry_transport_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .max_message_size = kMaxMessageSize,
    .create = &create,
    .destroy = &UdpAbi::destroy,
    .listen = &UdpAbi::listen,
    .connect = &UdpAbi::connect,
    .send = &UdpAbi::send,
    .close = &UdpAbi::close,
    .check_binding = &checkInetBinding,
    .strerror = &transportStrerror,
    .send_any_thread = &UdpAbi::sendAnyThread,
    .listen_with_flags = nullptr,
    // A network transport over datagrams: cheaper than tcp (no handshake per connection beyond
    // the cookie's, no head-of-line blocking between messages), dearer than a local pipe.
    .capabilities = FERRY_TRANSPORT_DATAGRAM,
    .cost_rank = 200,
    .create_with_settings = &createWithSettings,
    .check_settings = &checkSettings,
    .counters = &counters,
    .connection_info = &UdpAbi::connectionInfo,
    // Not offered: a udp socket serves every session of the instance, and its datagrams carry
    // acknowledgements and retransmissions that the loop must see; a waiting thread cannot take
    // one session's reads.
    .receive_any_thread = nullptr,
};

const ferry_plugin_v1 kDescriptor = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_TRANSPORT,
    .name = "udp",
#ifdef FERRY_UDP_FAULT_LAYER
    .description = "UDP with a fault layer (test-only build): reliable ordered sessions",
#else
    .description = "UDP: numeric IPv4/IPv6 address, decimal port; reliable ordered sessions",
#endif
    .table = &kTable,
};

}  // namespace
}  // namespace ferry::transports::udp

FERRY_PLUGIN_EXPORT const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1* host) {
  using namespace ferry::transports;
  if (!hostCovers(host, offsetof(ferry_host_v1, log) + sizeof(host->log))) return nullptr;
  return &udp::kDescriptor;
}

#ifdef FERRY_UDP_FAULT_LAYER
FERRY_PLUGIN_EXPORT int ferry_udp_test_set_fault_v1(ferry_transport* transport, const char* spec) {
  using namespace ferry::transports;
  using namespace ferry::transports::udp;
  if (transport == nullptr) return UV_EINVAL;
  UdpTransport* self = UdpAbi::unwrap(transport);
  return guardedCall(self, "set fault", [&] {
    std::string why;
    if (self->setFault(spec != nullptr ? spec : "", why)) return 0;
    self->logLine(FERRY_LOG_WARN, "test fault spec refused: " + why);
    return static_cast<int>(UV_EINVAL);
  });
}
#endif
