#include "options.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

namespace ferry::transports::udp {
namespace {

// Calls `each(key, value)` for every "key=value" item of a comma-separated list.
template <typename Each>
void forEachItem(const char* text, std::vector<std::string>& problems, Each&& each) {
  if (text == nullptr) return;
  std::string_view rest(text);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    size_t equals = item.find('=');
    if (equals == std::string_view::npos || equals == 0) {
      problems.push_back("'" + std::string(item) + "' is not key=value");
      continue;
    }
    each(std::string(item.substr(0, equals)), std::string(item.substr(equals + 1)));
  }
}

bool parseUnsigned(const std::string& text, uint64_t& out) {
  if (text.empty() || text.size() > 19) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  out = value;
  return true;
}

bool parseProbability(const std::string& text, double& out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !(value >= 0.0 && value <= 1.0)) {
    return false;
  }
  out = value;
  return true;
}

// Sets one impairment of `direction`; false when `key` names none.
bool setFault(FaultDirection& direction, const std::string& key, const std::string& value,
              std::vector<std::string>& problems) {
  double* probability = key == "drop"       ? &direction.drop
                        : key == "dup"      ? &direction.dup
                        : key == "reorder"  ? &direction.reorder
                        : key == "truncate" ? &direction.truncate
                        : key == "corrupt"  ? &direction.corrupt
                                            : nullptr;
  if (probability != nullptr) {
    if (!parseProbability(value, *probability)) {
      problems.push_back(key + "=" + value + ": not a probability from 0 to 1");
    }
    return true;
  }
  uint64_t* amount = key == "delay_ms"     ? &direction.delayMs
                     : key == "reorder_ms" ? &direction.reorderMs
                     : key == "max_size"   ? &direction.maxSize
                                           : nullptr;
  if (amount != nullptr) {
    if (!parseUnsigned(value, *amount)) problems.push_back(key + "=" + value + ": not a number");
    return true;
  }
  return false;
}

}  // namespace

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
      {"cookie_rate", &Options::cookieRate},
      {"reject_rate", &Options::rejectRate},
      {"cookie_lifetime_ms", &Options::cookieLifetimeMs},
      {"cookie_rotate_ms", &Options::cookieRotateMs},
      {"pmtu", &Options::pmtu},
      {"pmtu_raise_ms", &Options::pmtuRaiseMs},
      {"socket_buffer", &Options::socketBuffer},
  };
  forEachItem(text, problems, [&](const std::string& key, const std::string& value) {
    for (const auto& [name, member] : keys) {
      if (key != name) continue;
      if (!parseUnsigned(value, options.*member)) {
        problems.push_back(key + "=" + value + ": not a non-negative integer");
      }
      return;
    }
    problems.push_back("unknown option '" + key + "'");
  });
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
  if (options.cookieLifetimeMs < 1000) options.cookieLifetimeMs = 1000;
  if (options.cookieRotateMs < options.cookieLifetimeMs) {
    options.cookieRotateMs = options.cookieLifetimeMs;
  }
}

void parseFault(const char* text, FaultConfig& fault, std::vector<std::string>& problems) {
  // Unprefixed keys apply to the directions `dir` names, which may come anywhere in the list.
  std::vector<std::pair<std::string, std::string>> unprefixed;
  bool tx = true;
  bool rx = true;
  forEachItem(text, problems, [&](const std::string& key, const std::string& value) {
    if (key == "seed") {
      if (!parseUnsigned(value, fault.seed)) problems.push_back("seed=" + value + ": not a number");
    } else if (key == "dir") {
      if (value == "tx" || value == "rx" || value == "both") {
        tx = value != "rx";
        rx = value != "tx";
      } else {
        problems.push_back("dir=" + value + ": expected tx, rx or both");
      }
    } else if (key == "blackhole") {
      if (value == "1") {
        fault.tx.drop = 1.0;
        fault.rx.drop = 1.0;
      } else if (value != "0") {
        problems.push_back("blackhole=" + value + ": expected 0 or 1");
      }
    } else if (key.rfind("tx.", 0) == 0) {
      if (!setFault(fault.tx, key.substr(3), value, problems)) {
        problems.push_back("unknown fault '" + key + "'");
      }
    } else if (key.rfind("rx.", 0) == 0) {
      if (!setFault(fault.rx, key.substr(3), value, problems)) {
        problems.push_back("unknown fault '" + key + "'");
      }
    } else {
      unprefixed.emplace_back(key, value);
    }
  });
  for (const auto& [key, value] : unprefixed) {
    FaultDirection probe;
    if (!setFault(probe, key, value, problems)) {
      problems.push_back("unknown fault '" + key + "'");
      continue;
    }
    std::vector<std::string> reported;  // already reported through `probe`
    if (tx) setFault(fault.tx, key, value, reported);
    if (rx) setFault(fault.rx, key, value, reported);
  }
}

}  // namespace ferry::transports::udp
