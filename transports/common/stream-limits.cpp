#include "stream-limits.h"

#include <utility>

#include "abi-glue.h"
#include "settings.h"

namespace ferry::transports {

void parseStreamLimits(const char* text, StreamLimits& limits, std::vector<std::string>& problems) {
  const std::pair<const char*, uint64_t StreamLimits::*> keys[] = {
      {"max_message_size", &StreamLimits::maxMessageSize},
      {"receive_budget", &StreamLimits::receiveBudget},
      {"send_queue_limit", &StreamLimits::sendQueueLimit},
      {"send_budget", &StreamLimits::sendBudget},
      {"idle_timeout_ms", &StreamLimits::idleTimeoutMs},
      {"frame_timeout_ms", &StreamLimits::frameTimeoutMs},
      {"max_connections", &StreamLimits::maxConnections},
      {"max_connections_per_peer", &StreamLimits::maxConnectionsPerPeer},
      {"connection_reserve", &StreamLimits::connectionReserve},
  };
  parseNumbers(text, keys, "stream transport", limits, problems);
  if (limits.maxMessageSize == 0 || limits.maxMessageSize > kMaxMessageSize) {
    limits.maxMessageSize = kMaxMessageSize;
  }
  if (limits.sendQueueLimit == 0) problems.push_back("send_queue_limit=0 would refuse every send");
  if (limits.sendBudget == 0) problems.push_back("send_budget=0 would refuse every send");
  if (limits.maxConnections == 0) problems.push_back("max_connections=0 would refuse every peer");
  if (limits.maxConnectionsPerPeer == 0) {
    problems.push_back("max_connections_per_peer=0 would refuse every peer");
  }
  if (limits.connectionReserve >= limits.maxConnections && limits.maxConnections > 0) {
    problems.push_back("connection_reserve=" + std::to_string(limits.connectionReserve) +
                       " leaves nothing of max_connections=" +
                       std::to_string(limits.maxConnections) + "; make it smaller");
  }
  // Milliseconds stay far from overflowing once added to the loop's clock.
  constexpr uint64_t kDayMs = 24ull * 3600 * 1000;
  for (uint64_t* ms : {&limits.idleTimeoutMs, &limits.frameTimeoutMs}) {
    if (*ms > kDayMs) *ms = kDayMs;
  }
}

}  // namespace ferry::transports
