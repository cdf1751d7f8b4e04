#include <ferry/error.h>

#include <uv.h>

#include "error-impl.h"

namespace ferry {

namespace {
constexpr std::string_view kNames[] = {
    "ok",           "noInterface",        "classNotRegistered", "notInitialized",
    "wrongApartment", "invalidArgument",  "objectNotConnected", "disconnected",
    "objectNotRegistered", "invalidObjRef", "serverFault",      "callRejected",
    "retryLater",   "deadlineExceeded",   "canceled",           "outcomeUnknown",
    "protocolError", "accessDenied",      "unavailable",        "shuttingDown",
    "internal",     "changedMode",        "nameInUse",          "serverStartFailed",
    "applicationError",
};
}  // namespace

std::string_view errcName(Errc code) noexcept {
  auto index = static_cast<size_t>(code);
  return index < std::size(kNames) ? kNames[index] : std::string_view("unknownError");
}

bool isKnownErrc(uint16_t value) noexcept { return value < std::size(kNames); }

Error::Error(Errc code, std::string message) : Error(code, std::move(message), nullptr) {}

Error::Error(Errc code, std::string message, std::shared_ptr<const ErrorDetail> detail)
    : _code(code), _message(std::move(message)), _detail(std::move(detail)) {
  _what.reserve(_message.size() + 24);
  _what.append(errcName(code)).append(": ").append(_message);
}

namespace detail {

void throwError(Errc code, const char* file, int line, std::string message) {
  if (code == Errc::internal) {
    // Our own bug: say where, so the report can be acted on.
    message.append(" at ").append(file).append(":").append(std::to_string(line));
  }
  throw Error(code, std::move(message));
}

std::string_view kjReason(std::string_view description) noexcept {
  if (description.substr(0, 9) != "expected ") return description;
  size_t end = description.find("; ");
  if (end == std::string_view::npos) return "the condition it needs does not hold";
  return description.substr(end + 2);
}

void failUv(int uvError, const char* expr, const char* file, int line) {
  std::string message = std::string(expr) + " failed: " + uv_err_name(uvError) + " (" +
                        uv_strerror(uvError) + ")";
  throwError(Errc::internal, file, line, std::move(message));
}

}  // namespace detail
}  // namespace ferry
