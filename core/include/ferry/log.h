// ferry's log: levels, the line a record becomes, and a sink for services that embed ferry.
//
// The level comes from the environment variable FERRY_LOG (error, warn, info, debug; unset:
// warn) or from setLogLevel(). A Runtime refuses to start when FERRY_LOG names no level. At
// debug, every call a proxy makes logs one line when it completes (interface, method, target,
// channel, duration, outcome), and every call a stub serves logs one when it ends.
//
// By default records go to stderr, one line each:
//
//     2026-12-04T23:40:01.123456Z ferry warn [sta:main] message
//     2026-12-04T23:40:01.123456Z ferry debug [mta 0f3a…c2] message   (serving a call)
//
// where the bracket names the apartment of the thread that logged ("sta:<name>", "mta", or "-"
// for ferry's own threads) and, inside a call, the call's causality id. Under systemd (stderr is
// the journal's stream, $JOURNAL_STREAM) lines carry a syslog priority prefix ("<4>") instead of
// a timestamp, which the journal adds itself.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>

#include <ferry/api.h>
#include <ferry/ids.h>

namespace ferry {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3 };

// "error", "warn", "info", "debug".
FERRY_API std::string_view toString(LogLevel level) noexcept;
// The level a name (as FERRY_LOG takes it) names; nullopt for any other text.
FERRY_API std::optional<LogLevel> tryParseLogLevel(std::string_view name) noexcept;

// The level in force: setLogLevel()'s, else FERRY_LOG's, else warn.
FERRY_API LogLevel logLevel() noexcept;
// Overrides FERRY_LOG for the rest of the process.
FERRY_API void setLogLevel(LogLevel level) noexcept;

struct LogRecord {
  LogLevel level;
  std::chrono::system_clock::time_point time;
  // "sta:<name>", "mta" or "-" (a thread of no apartment: ferry's I/O thread, a plugin's).
  std::string_view apartment;
  // The call the logging thread was serving (zero outside one).
  CausalityId causality;
  std::string_view message;
};

// Where records go instead of stderr (a null sink restores stderr). The sink runs on the thread
// that logged, one record at a time (calls are serialized), and must not block for long; what
// it logs through ferry itself is dropped. Records of a level above logLevel() are not made.
using LogSink = std::function<void(const LogRecord&)>;
FERRY_API void setLogSink(LogSink sink);

// The line the default sink writes for `record` (without the newline); `journal`: the form for
// systemd's journal.
FERRY_API std::string formatLogLine(const LogRecord& record, bool journal);

}  // namespace ferry
