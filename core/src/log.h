// Logging. The level comes from FERRY_LOG (error, warn, info, debug; default warn). Lines go to
// stderr as "ferry <level> [<apartment>] <message>".
#pragma once

#include <sstream>
#include <string_view>

namespace ferry::detail {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3 };

bool logEnabled(LogLevel level) noexcept;
void logLine(LogLevel level, std::string_view message) noexcept;

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
