// The log: FERRY_LOG's levels, the line format, the sink for embedding services, a debug line per
// call on both sides, and servant exceptions logged with their method.
#define BOOST_TEST_MODULE log
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <mutex>
#include <regex>

#include <ferry/log.h>

#include "servants.h"

using namespace ferry;
using namespace ferry::test;
using testing::iface::Probe;

namespace {

struct Captured {
  LogLevel level;
  std::string apartment;
  CausalityId causality;
  std::string message;
};

// Captures every record while it lives, at `level`; restores stderr and warn after.
class LogCapture {
public:
  explicit LogCapture(LogLevel level) {
    setLogLevel(level);
    setLogSink([this](const LogRecord& record) {
      std::lock_guard lock(_mutex);
      _records.push_back({record.level, std::string(record.apartment), record.causality,
                          std::string(record.message)});
    });
  }
  ~LogCapture() {
    setLogSink(nullptr);
    setLogLevel(LogLevel::warn);
  }

  // The records whose message contains `text`.
  std::vector<Captured> containing(const std::string& text) {
    std::lock_guard lock(_mutex);
    std::vector<Captured> found;
    for (const Captured& record : _records) {
      if (record.message.find(text) != std::string::npos) found.push_back(record);
    }
    return found;
  }

private:
  std::mutex _mutex;
  std::vector<Captured> _records;
};

}  // namespace

BOOST_AUTO_TEST_CASE(the_documented_levels_parse_and_nothing_else_does) {
  BOOST_CHECK(tryParseLogLevel("error") == LogLevel::error);
  BOOST_CHECK(tryParseLogLevel("warn") == LogLevel::warn);
  BOOST_CHECK(tryParseLogLevel("info") == LogLevel::info);
  BOOST_CHECK(tryParseLogLevel("debug") == LogLevel::debug);
  BOOST_CHECK(!tryParseLogLevel("warning"));
  BOOST_CHECK(!tryParseLogLevel("DEBUG"));
  BOOST_CHECK(!tryParseLogLevel(""));
  BOOST_CHECK_EQUAL(toString(LogLevel::info), "info");
}

BOOST_AUTO_TEST_CASE(a_runtime_refuses_to_start_when_FERRY_LOG_names_no_level) {
  setenv("FERRY_LOG", "verbose", 1);
  std::string said;
  try {
    Runtime runtime;
  } catch (const Error& e) {
    if (e.code() == Errc::invalidArgument) said = e.what();
  }
  unsetenv("FERRY_LOG");
  BOOST_CHECK_MESSAGE(said.find("FERRY_LOG is set to 'verbose'") != std::string::npos, said);
  BOOST_CHECK_MESSAGE(said.find("error, warn, info or debug") != std::string::npos, said);
  Runtime fine;  // unset again: starts
}

BOOST_AUTO_TEST_CASE(lines_carry_a_utc_timestamp_or_under_the_journal_a_priority) {
  LogRecord record{LogLevel::warn, std::chrono::system_clock::time_point(std::chrono::seconds(86400 * 365)) +
                                       std::chrono::microseconds(123456),
                   "sta:main", CausalityId(), "the message"};
  BOOST_CHECK_EQUAL(formatLogLine(record, false),
                    "1971-01-01T00:00:00.123456Z ferry warn [sta:main] the message");
  BOOST_CHECK_EQUAL(formatLogLine(record, true), "<4>ferry warn [sta:main] the message");
  record.level = LogLevel::debug;
  record.causality = CausalityId(0x0102030405060708ull, 0x090a0b0c0d0e0f10ull);
  std::string line = formatLogLine(record, true);
  BOOST_CHECK_MESSAGE(line.rfind("<7>ferry debug [sta:main " + toString(record.causality) + "] the message", 0) == 0, line);
}

BOOST_FIXTURE_TEST_SUITE(calls, RuntimeFixture)

BOOST_AUTO_TEST_CASE(at_debug_each_call_logs_a_line_on_the_caller_and_one_on_the_server) {
  LogCapture log(LogLevel::debug);
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  BOOST_CHECK_EQUAL(probe->count(), 1u);

  auto called = log.containing("call testing.capnp:Probe.count on ");
  auto served = log.containing("served testing.capnp:Probe.count for this process: ok in ");
  BOOST_REQUIRE_EQUAL(called.size(), 1u);
  BOOST_REQUIRE_EQUAL(served.size(), 1u);
  BOOST_CHECK_MESSAGE(called[0].message.find(" over inproc: ok in ") != std::string::npos,
                      called[0].message);
  BOOST_CHECK(called[0].level == LogLevel::debug);
  BOOST_CHECK_EQUAL(served[0].apartment, "sta:server");
  // Both lines name the call by its causality id.
  BOOST_CHECK(static_cast<bool>(served[0].causality));
  BOOST_CHECK(called[0].causality == served[0].causality);
}

BOOST_AUTO_TEST_CASE(a_failed_call_logs_its_error_and_at_warn_no_call_lines) {
  LogCapture log(LogLevel::warn);
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  probe->count();
  BOOST_CHECK(log.containing("Probe.count").empty());
  BOOST_CHECK_THROW(probe->fail("the disk is full"), Error);
  // The servant's exception is logged where it ran, with the method it ran in.
  auto threw = log.containing("the servant of testing.capnp:Probe.fail threw: the disk is full");
  BOOST_REQUIRE_EQUAL(threw.size(), 1u);
  BOOST_CHECK(threw[0].level == LogLevel::warn);
  BOOST_CHECK_EQUAL(threw[0].apartment, "sta:server");
}

BOOST_AUTO_TEST_CASE(a_debug_call_line_says_how_the_call_failed) {
  LogCapture log(LogLevel::debug);
  auto mta = rt().joinMta();
  Sta sta = rt().newSta("server");
  Ref<Probe> probe = exportFrom<Probe, ProbeImpl>(sta);
  BOOST_CHECK_THROW(probe->fail("no"), Error);
  auto called = log.containing("call testing.capnp:Probe.fail on ");
  BOOST_REQUIRE_EQUAL(called.size(), 1u);
  BOOST_CHECK_MESSAGE(called[0].message.find(": failed: serverFault: no in ") != std::string::npos,
                      called[0].message);
}

BOOST_AUTO_TEST_SUITE_END()
