// The log's internal side: the FERRY_LOG macro and the environment check. The public side
// (levels, records, the sink) is core/include/ferry/log.h.
#pragma once

#include <sstream>
#include <string_view>

#include <ferry/log.h>

namespace ferry::detail {

using LogLevel = ::ferry::LogLevel;

inline bool logEnabled(LogLevel level) noexcept { return level <= logLevel(); }
void logLine(LogLevel level, std::string_view message) noexcept;

// Throws invalidArgument when FERRY_LOG is set to something that is not a level (a Runtime checks
// at start, so that a misspelt level is not silently read as warn).
void checkLogEnvironment();

}  // namespace ferry::detail

// FERRY_LOG(warn, "text " << value): the stream expression is only evaluated when enabled.
#define FERRY_LOG(level, expr)                                                     \
  do {                                                                             \
    if (::ferry::detail::logEnabled(::ferry::detail::LogLevel::level)) {           \
      std::ostringstream ferryLogStream_;                                          \
      ferryLogStream_ << expr;                                                     \
      ::ferry::detail::logLine(::ferry::detail::LogLevel::level,                   \
                               ferryLogStream_.str());                             \
    }                                                                              \
  } while (false)
