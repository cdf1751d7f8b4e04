#include "log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "thread-state.h"

namespace ferry::detail {

namespace {

LogLevel levelFromEnvironment() noexcept {
  const char* value = std::getenv("FERRY_LOG");
  if (value == nullptr) return LogLevel::warn;
  if (std::strcmp(value, "error") == 0) return LogLevel::error;
  if (std::strcmp(value, "info") == 0) return LogLevel::info;
  if (std::strcmp(value, "debug") == 0) return LogLevel::debug;
  return LogLevel::warn;
}

// Read at the first log call, so that a program may set FERRY_LOG before it uses ferry (ferryd's
// --verbose).
LogLevel level() noexcept {
  static const LogLevel fromEnvironment = levelFromEnvironment();
  return fromEnvironment;
}

std::mutex gLogMutex;

constexpr const char* kLevelNames[] = {"error", "warn", "info", "debug"};

}  // namespace

bool logEnabled(LogLevel wanted) noexcept { return wanted <= level(); }

void logLine(LogLevel level, std::string_view message) noexcept {
  std::string_view where = currentApartmentName();
  std::lock_guard lock(gLogMutex);
  std::fprintf(stderr, "ferry %s [%.*s] %.*s\n", kLevelNames[static_cast<int>(level)],
               static_cast<int>(where.size()), where.data(), static_cast<int>(message.size()),
               message.data());
}

}  // namespace ferry::detail
