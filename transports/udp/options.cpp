#include "options.h"

#include <utility>

#include "settings.h"

namespace ferry::transports::udp {

void parseOptions(const char* text, Options& options, std::vector<std::string>& problems) {
  const std::pair<const char*, uint64_t Options::*> keys[] = {
      {"idle_timeout_ms", &Options::idleTimeoutMs},
      {"keepalive_ms", &Options::keepaliveMs},
      {"initial_rtt_ms", &Options::initialRttMs},
      {"max_ack_delay_ms", &Options::maxAckDelayMs},
      {"handshake_timeout_ms", &Options::handshakeTimeoutMs},
      {"max_message_size", &Options::maxMessageSize},
      {"session_window", &Options::sessionWindow},
      {"global_budget", &Options::globalBudget},
      {"unscheduled_bytes", &Options::unscheduledBytes},
      {"message_window", &Options::messageWindow},
      {"max_open_messages", &Options::maxOpenMessages},
      {"half_open_max", &Options::halfOpenMax},
      {"half_open_per_address", &Options::halfOpenPerAddress},
      {"sessions_per_address", &Options::sessionsPerAddress},
      {"cookie_rate", &Options::cookieRate},
      {"reject_rate", &Options::rejectRate},
      {"cookie_lifetime_ms", &Options::cookieLifetimeMs},
      {"cookie_rotate_ms", &Options::cookieRotateMs},
      {"pmtu", &Options::pmtu},
      {"pmtu_raise_ms", &Options::pmtuRaiseMs},
      {"socket_buffer", &Options::socketBuffer},
  };
  parseNumbers(text, keys, "udp", options, problems);
  // Limits that keep the protocol working whatever was asked for (and keep milliseconds from
  // overflowing once scaled to nanoseconds).
  constexpr uint64_t kDayMs = 24ull * 3600 * 1000;
  for (uint64_t* ms : {&options.idleTimeoutMs, &options.keepaliveMs, &options.handshakeTimeoutMs,
                       &options.cookieLifetimeMs, &options.cookieRotateMs, &options.pmtuRaiseMs}) {
    if (*ms > kDayMs) *ms = kDayMs;
  }
  if (options.initialRttMs > 60000) options.initialRttMs = 60000;
  if (options.maxAckDelayMs > 1000) options.maxAckDelayMs = 1000;  // what peers accept
  if (options.initialRttMs == 0) options.initialRttMs = 1;
  if (options.idleTimeoutMs < 100) options.idleTimeoutMs = 100;
  if (options.unscheduledBytes < 1200) options.unscheduledBytes = 1200;
  if (options.messageWindow < 1200) options.messageWindow = 1200;
  if (options.maxOpenMessages < 1) options.maxOpenMessages = 1;
  if (options.halfOpenPerAddress < 1) options.halfOpenPerAddress = 1;
  if (options.sessionsPerAddress < 1) options.sessionsPerAddress = 1;
  if (options.cookieLifetimeMs < 1000) options.cookieLifetimeMs = 1000;
  if (options.cookieRotateMs < options.cookieLifetimeMs) {
    options.cookieRotateMs = options.cookieLifetimeMs;
  }
}

}  // namespace ferry::transports::udp
