// ferry::Error, the one exception type of the broker, and the macros that raise it.
//
// Every failure a caller can observe is an `Error` carrying an `Errc`. The codes are COM-flavoured
// and travel unchanged on the wire (core/schema/orpc.capnp, `ErrorCode`), so a client sees the
// same code whether the failure happened in its own apartment or in another process.
//
// Expected absence is not an exception: lookups that may miss are named `tryFind…` and return a
// pointer or std::optional. Exceptions never cross a libuv callback or the plugin ABI: each of
// those entry points catches everything its body throws and logs it (a plugin's table function
// returns it as an error code).
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include <ferry/api.h>

namespace ferry {

class ErrorDetail;

// The numeric values are part of the wire protocol (orpc.capnp ErrorCode); never renumber.
enum class Errc : uint16_t {
  ok = 0,
  // Object model.
  noInterface = 1,          // the object does not implement the requested interface
  classNotRegistered = 2,   // createInstance of an unknown class
  notInitialized = 3,       // the calling thread belongs to no apartment
  wrongApartment = 4,       // a proxy was used outside the apartment that unmarshaled it
  invalidArgument = 5,      // a null or malformed argument from the caller
  // References and lifetime.
  objectNotConnected = 6,   // the packet was consumed, or the proxy's apartment shut down
  disconnected = 7,         // the object behind the proxy was disconnected or released
  objectNotRegistered = 8,  // a tableWeak packet names an object that has died
  invalidObjRef = 9,        // an OBJREF failed validation
  // Calls.
  serverFault = 10,         // the servant threw; the message carries what it said
  callRejected = 11,        // the server's message filter rejected the call
  retryLater = 12,          // the server's message filter asked to retry later
  deadlineExceeded = 13,    // the call did not complete before its deadline
  canceled = 14,            // the call was canceled
  outcomeUnknown = 15,      // the call may or may not have executed (connection lost mid-call)
  protocolError = 16,       // the peer sent something the protocol forbids
  // Environment.
  accessDenied = 17,        // a security provider refused the peer
  unavailable = 18,         // no route to the exporter (resolver or transport failure)
  shuttingDown = 19,        // the runtime or apartment is being torn down
  internal = 20,            // a bug in ferry; the message says where
  changedMode = 21,         // the thread is in the other kind of apartment (STA vs MTA)
  nameInUse = 22,           // another process published an object under that name
  serverStartFailed = 23,   // ferryd launched a class's server and it exited before registering
  applicationError = 24,    // the servant threw an error its schema declares ($Ferry.exception)
};

// The code's name as written in DESIGN.md, e.g. "noInterface".
FERRY_API std::string_view errcName(Errc code) noexcept;

// True if `value` is a defined Errc (used when decoding codes from the wire).
FERRY_API bool isKnownErrc(uint16_t value) noexcept;

class FERRY_API Error : public std::exception {
public:
  Error(Errc code, std::string message);

  Errc code() const noexcept { return _code; }
  // Without the code prefix; what() is "<codeName>: <message>".
  const std::string& message() const noexcept { return _message; }
  const char* what() const noexcept override { return _what.c_str(); }

  // Throws this error as the most derived type it was raised as: an error with a schema-declared
  // detail (Errc::applicationError) as its generated exception class when that schema is compiled
  // into the process, else as ApplicationError (ferry/application-error.h); any other as Error.
  [[noreturn]] void rethrow() const;

  // The fields of a schema-declared error (null for any other): see ApplicationError.
  const std::shared_ptr<const ErrorDetail>& detail() const noexcept { return _detail; }

protected:
  Error(Errc code, std::string message, std::shared_ptr<const ErrorDetail> detail);

private:
  Errc _code;
  std::string _message;
  std::string _what;
  std::shared_ptr<const ErrorDetail> _detail;
};

namespace detail {

// A FERRY_REQUIRE/FERRY_FAIL message: a sentence for the user, in which each "{}" is replaced by
// the next value, in order. The sentence names the values in words ("the OBJREF has {} bytes"),
// so no source expression reaches the user. Built from a string literal only; a count of "{}"
// different from the count of values does not compile.
template <typename... Values>
class Message {
public:
  template <size_t N>
  consteval Message(const char (&text)[N]) : _text(text, N - 1) {
    size_t slots = 0;
    for (size_t at = _text.find("{}"); at != std::string_view::npos; at = _text.find("{}", at)) {
      ++slots;
      at += 2;
    }
    if (slots != sizeof...(Values)) messageNeedsOneValuePerBraces();
  }

  std::string_view text() const noexcept { return _text; }

private:
  // Not constexpr: reaching it in a constant evaluation is the compile error.
  static void messageNeedsOneValuePerBraces() {}

  std::string_view _text;
};

// Appends the values a FERRY_ASSERT names, comma separated.
inline void appendValues(std::ostringstream&) {}

template <typename T, typename... Rest>
void appendValues(std::ostringstream& out, const T& value, const Rest&... rest) {
  out << value;
  if constexpr (sizeof...(Rest) > 0) out << ", ";
  appendValues(out, rest...);
}

// Throws Error(code, message); an Errc::internal message also gets " at file:line".
[[noreturn]] FERRY_API void throwError(Errc code, const char* file, int line, std::string message);

template <typename... Values>
[[noreturn]] void fail(Errc code, const char* file, int line,
                       std::type_identity_t<Message<Values...>> message, const Values&... values) {
  std::string_view text = message.text();
  if constexpr (sizeof...(Values) == 0) {
    throwError(code, file, line, std::string(text));
  } else {
    std::ostringstream out;
    size_t from = 0;
    auto put = [&](const auto& value) {
      size_t slot = text.find("{}", from);
      out << text.substr(from, slot - from) << value;
      from = slot + 2;
    };
    (put(values), ...);
    out << text.substr(from);
    throwError(code, file, line, out.str());
  }
}

// FERRY_ASSERT's failure: our own bug, so the report carries the condition and the values as
// written in the source.
template <typename... Values>
[[noreturn]] void assertFailed(const char* file, int line, const char* condition, const char* names,
                               const Values&... values) {
  std::ostringstream out;
  out << "assertion failed: " << condition;
  if constexpr (sizeof...(Values) > 0) {
    out << " (" << names << " = ";
    appendValues(out, values...);
    out << ")";
  }
  throwError(Errc::internal, file, line, out.str());
}

}  // namespace detail
}  // namespace ferry

// FERRY_REQUIRE(cond, code, message, values...): a caller's or peer's error. Throws
// ferry::Error(code) with `message`, a sentence whose "{}" are replaced by `values` in order:
//
//     FERRY_REQUIRE(size <= kMax, Errc::invalidObjRef,
//                   "the OBJREF has {} bytes; an OBJREF has at most 64 KiB", size);
//
// The sentence says what failed, why, and what to change (the setting, flag or call).
#define FERRY_REQUIRE(cond, code, ...)                                                       \
  do {                                                                                       \
    if (!(cond)) [[unlikely]]                                                                \
      ::ferry::detail::fail((code), __FILE__, __LINE__, __VA_ARGS__);                        \
  } while (false)

// FERRY_FAIL(code, message, values...): FERRY_REQUIRE without a condition.
#define FERRY_FAIL(code, ...) ::ferry::detail::fail((code), __FILE__, __LINE__, __VA_ARGS__)

// FERRY_ASSERT(cond, values...): our own invariant. Throws Errc::internal naming the condition,
// the values named after it (as written in the source), and the file and line: a bug report.
#define FERRY_ASSERT(cond, ...)                                                              \
  do {                                                                                       \
    if (!(cond)) [[unlikely]]                                                                \
      ::ferry::detail::assertFailed(__FILE__, __LINE__, #cond,                               \
                                    #__VA_ARGS__ __VA_OPT__(, ) __VA_ARGS__);                \
  } while (false)

// FERRY_UV(expr): a libuv call that must succeed; a negative return becomes Errc::internal with
// libuv's error name.
#define FERRY_UV(expr)                                                                       \
  do {                                                                                       \
    int ferryUvResult_ = (expr);                                                             \
    if (ferryUvResult_ < 0) [[unlikely]]                                                     \
      ::ferry::detail::failUv(ferryUvResult_, #expr, __FILE__, __LINE__);                    \
  } while (false)

namespace ferry::detail {
[[noreturn]] FERRY_API void failUv(int uvError, const char* expr, const char* file, int line);
}
