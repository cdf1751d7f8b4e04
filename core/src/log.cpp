#include "log.h"

#include <sys/stat.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

#include <ferry/error.h>

#include "thread-state.h"

namespace ferry {

namespace {

constexpr std::string_view kLevelNames[] = {"error", "warn", "info", "debug"};
// syslog priorities (sd-daemon(3)): err, warning, info, debug.
constexpr int kJournalPriorities[] = {3, 4, 6, 7};

constexpr int kUnread = -1;
std::atomic<int> gLevel{kUnread};

LogLevel levelFromEnvironment() noexcept {
  const char* value = std::getenv("FERRY_LOG");
  if (value == nullptr) return LogLevel::warn;
  return tryParseLogLevel(value).value_or(LogLevel::warn);
}

// The sink and the one-at-a-time rule. `inSink` drops what a sink logs through ferry (it would
// deadlock on the mutex).
std::mutex gSinkMutex;
LogSink gSink;
thread_local bool tInSink = false;

// Whether stderr is the journal's stream: $JOURNAL_STREAM is "<device>:<inode>" of it.
bool stderrIsJournal() noexcept {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  struct stat status {};
  if (fstat(2, &status) != 0) return false;
  unsigned long long device = 0, inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
  return device == status.st_dev && inode == status.st_ino;
}

}  // namespace

std::string_view toString(LogLevel level) noexcept {
  auto index = static_cast<size_t>(level);
  return index < std::size(kLevelNames) ? kLevelNames[index] : "?";
}

std::optional<LogLevel> tryParseLogLevel(std::string_view name) noexcept {
  for (size_t i = 0; i < std::size(kLevelNames); ++i) {
    if (name == kLevelNames[i]) return static_cast<LogLevel>(i);
  }
  return std::nullopt;
}

LogLevel logLevel() noexcept {
  int level = gLevel.load(std::memory_order_relaxed);
  if (level == kUnread) {
    // Read at the first use, so that a program may set FERRY_LOG before it uses ferry.
    int expected = kUnread;
    gLevel.compare_exchange_strong(expected, static_cast<int>(levelFromEnvironment()),
                                   std::memory_order_relaxed);
    level = gLevel.load(std::memory_order_relaxed);
  }
  return static_cast<LogLevel>(level);
}

void setLogLevel(LogLevel level) noexcept {
  gLevel.store(static_cast<int>(level), std::memory_order_relaxed);
}

void setLogSink(LogSink sink) {
  std::lock_guard lock(gSinkMutex);
  gSink = std::move(sink);
}

std::string formatLogLine(const LogRecord& record, bool journal) {
  std::string line;
  line.reserve(64 + record.message.size());
  char buffer[64];
  if (journal) {
    std::snprintf(buffer, sizeof buffer, "<%d>", kJournalPriorities[static_cast<int>(record.level)]);
    line += buffer;
  } else {
    auto since = record.time.time_since_epoch();
    auto seconds = std::chrono::floor<std::chrono::seconds>(since);
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since - seconds).count();
    std::time_t whole = static_cast<std::time_t>(seconds.count());
    std::tm utc{};
    gmtime_r(&whole, &utc);
    size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(buffer + length, sizeof buffer - length, ".%06" PRId64 "Z ",
                  static_cast<int64_t>(micros));
    line += buffer;
  }
  line += "ferry ";
  line += toString(record.level);
  line += " [";
  line += record.apartment;
  if (record.causality) {
    line += ' ';
    line += toString(record.causality);
  }
  line += "] ";
  line += record.message;
  return line;
}

namespace detail {

void logLine(LogLevel level, std::string_view message) noexcept {
  if (tInSink) return;
  try {
    LogRecord record{level, std::chrono::system_clock::now(), currentApartmentName(),
                     threadState().causality, message};
    std::lock_guard lock(gSinkMutex);
    if (gSink) {
      tInSink = true;
      try {
        gSink(record);
      } catch (...) {
        // A sink that throws loses its record; logging never fails the caller.
      }
      tInSink = false;
      return;
    }
    static const bool journal = stderrIsJournal();
    std::string line = formatLogLine(record, journal);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
  } catch (...) {
    // Out of memory while logging: the line is lost, the caller goes on.
  }
}

void checkLogEnvironment() {
  const char* value = std::getenv("FERRY_LOG");
  if (value == nullptr || tryParseLogLevel(value)) return;
  FERRY_FAIL(Errc::invalidArgument,
             "FERRY_LOG is set to '{}', which is not a log level: set it to error, warn, info or "
             "debug (or unset it for warn)",
             value);
}

}  // namespace detail

}  // namespace ferry
