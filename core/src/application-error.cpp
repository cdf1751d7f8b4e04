#include <ferry/application-error.h>

#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <capnp/message.h>
#include <kj/exception.h>

#include "error-detail.h"
#include "message.h"
#include "stats.h"

namespace ferry {

ErrorDetail::ErrorDetail(uint64_t typeId, capnp::AnyStruct::Reader fields) : _typeId(typeId) {
  _message.getRoot<capnp::AnyPointer>().setAs<capnp::AnyStruct>(fields);
}

capnp::AnyStruct::Reader ErrorDetail::fields() const {
  // getRoot() of a builder is not const; the message is never changed after construction.
  auto& message = const_cast<capnp::MallocMessageBuilder&>(_message);
  return message.getRoot<capnp::AnyPointer>().asReader().getAs<capnp::AnyStruct>();
}

namespace {

struct Registry {
  std::mutex mutex;
  std::unordered_map<uint64_t, detail::ApplicationErrorRethrow> byType;
};

// Function-local static: registrations run from static initializers of other translation units.
Registry& registry() {
  static Registry instance;
  return instance;
}

std::string hexId(uint64_t id) {
  char text[20];
  std::snprintf(text, sizeof text, "%016" PRIx64, id);
  return text;
}

detail::ApplicationErrorRethrow tryFindRethrow(uint64_t typeId) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.byType.find(typeId);
  return it == r.byType.end() ? nullptr : it->second;
}

}  // namespace

ApplicationError::ApplicationError(uint64_t typeId, capnp::AnyStruct::Reader fields,
                                   std::string text)
    : Error(Errc::applicationError, std::move(text),
            std::make_shared<const ErrorDetail>(typeId, fields)) {}

ApplicationError::ApplicationError(const Error& error)
    : Error(Errc::applicationError, error.message(), error.detail()) {
  FERRY_ASSERT(error.detail() != nullptr);
}

uint64_t ApplicationError::typeId() const noexcept { return detail()->typeId(); }

capnp::AnyStruct::Reader ApplicationError::fields() const { return detail()->fields(); }

void Error::rethrow() const {
  if (_detail == nullptr) throw *this;
  ApplicationError received(*this);
  if (detail::ApplicationErrorRethrow typed = tryFindRethrow(_detail->typeId())) typed(received);
  throw received;
}

namespace detail {

OutgoingResponse errorResponse(const Error& error) {
  OutgoingResponse response = errorResponse(error.code(), error.message());
  if (const ErrorDetail* detail = error.detail().get()) {
    auto info = response.root.getError();
    info.setDetailType(detail->typeId());
    info.initDetail().setAs<capnp::AnyStruct>(detail->fields());
  }
  return response;
}

void throwReceivedError(wire::ErrorInfo::Reader info) {
  uint16_t code = info.getCode();
  Errc errc = isKnownErrc(code) && code != 0 ? static_cast<Errc>(code) : Errc::protocolError;
  std::string message(info.getMessage().cStr(), info.getMessage().size());
  if (errc != Errc::applicationError || info.getDetailType() == 0) throw Error(errc, std::move(message));
  std::optional<ApplicationError> received;
  try {
    received.emplace(info.getDetailType(), info.getDetail().getAs<capnp::AnyStruct>(),
                     std::move(message));
  } catch (const kj::Exception& e) {
    stats().protocolErrors.fetch_add(1, std::memory_order_relaxed);
    FERRY_FAIL(Errc::protocolError,
               "the servant's error of type {} came with fields that are not a valid Cap'n Proto "
               "struct ({}); the peer does not follow the protocol",
               hexId(info.getDetailType()), kjReason(e.getDescription().cStr()));
  }
  received->rethrow();
}

ApplicationErrorRegistration::ApplicationErrorRegistration(uint64_t typeId,
                                                           ApplicationErrorRethrow rethrow) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.byType.emplace(typeId, rethrow);
}

}  // namespace detail

}  // namespace ferry
