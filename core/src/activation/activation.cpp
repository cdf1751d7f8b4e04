// The public activation API (ferry/activation.h) over the activation service (service.h).
#include <ferry/activation.h>

#include <ferry/naming.h>

#include "../apartment-impl.h"
#include <ferry/error.h>

#include "../error-impl.h"
#include "../interface-registry.h"
#include "../log.h"
#include "../orpc/endpoint.h"
#include "../resolver/names.h"
#include "../runtime-impl.h"
#include "../thread-state.h"
#include "service.h"

namespace ferry {

namespace {

detail::ActivationService* tryActivation() noexcept {
  detail::RuntimeImpl* runtime = detail::tryCurrentRuntime();
  if (runtime == nullptr || runtime->endpoint() == nullptr) return nullptr;
  return &runtime->endpoint()->resolver().activation();
}

void requireClassName(const Clsid& clsid, const char* what) {
  std::string_view why = detail::whyBadObjectName(clsid.name);
  FERRY_REQUIRE(why.empty(), Errc::invalidArgument,
                "cannot {} '{}': {} (a class name is 1 to 128 characters: segments of letters, "
                "digits, '.', '_', '~' and '-', separated by single '/')",
                what, clsid.name, why);
}

}  // namespace

ClassObjectRegistration::ClassObjectRegistration(ClassObjectRegistration&& other) noexcept
    : _clsid(std::move(other._clsid)), _token(other._token) {
  other._token = 0;
}

ClassObjectRegistration& ClassObjectRegistration::operator=(ClassObjectRegistration&& other) noexcept {
  if (this != &other) {
    revoke();
    _clsid = std::move(other._clsid);
    _token = other._token;
    other._token = 0;
  }
  return *this;
}

ClassObjectRegistration::~ClassObjectRegistration() { revoke(); }

void ClassObjectRegistration::revoke() noexcept {
  if (_token == 0) return;
  uint64_t token = _token;
  _token = 0;
  if (detail::ActivationService* service = tryActivation()) service->revokeClassObject(token);
}

ClassObjectRegistration registerClassObject(Clsid clsid, ClassFactory factory, ClassUse use) {
  requireClassName(clsid, "register a class object for");
  FERRY_REQUIRE(factory != nullptr, Errc::invalidArgument,
                "registerClassObject of '{}' needs a factory and was given none", clsid.name);
  detail::ApartmentImpl& apartment = detail::requireCurrentApartment();
  detail::ActivationService* service = tryActivation();
  FERRY_REQUIRE(service != nullptr, Errc::unavailable,
                "cannot register a class object for '{}': this process runs no transport "
                "(RuntimeOptions::outOfProcess is false), so no other process can activate it; "
                "use Runtime::registerClass for classes of this process",
                clsid.name);
  uint64_t token = service->registerClassObject(clsid.name, std::move(factory), use,
                                                apartment.shared_from_this());
  return ClassObjectRegistration(std::move(clsid), token);
}

bool waitForExitRequest(std::chrono::milliseconds limit) {
  detail::ActivationService* service = tryActivation();
  FERRY_REQUIRE(service != nullptr, Errc::notInitialized,
                "waitForExitRequest needs a running ferry::Runtime with a transport; create one "
                "first");
  return service->waitForExitRequest(limit);
}

namespace detail {

void* unmarshalActivated(const ObjRefBytes& objref, Iid iid) {
  try {
    return unmarshalInterfaceErased(objref, iid);
  } catch (...) {
    try {
      releaseMarshalData(objref);
    } catch (const Error&) {
      // Consumed by the failed unmarshal already, or the server is gone.
    }
    throw;
  }
}

void* createInstanceErased(const Clsid& clsid, const ActivationOptions& options, Iid iid) {
  requireClassName(clsid, "create an instance of");
  RuntimeImpl& runtime = currentRuntime();
  if (options.host.empty() && has(options.context, ClassContext::inProcess)) {
    bool registered = true;
    try {
      runtime.findClass(clsid);
    } catch (const Error& e) {
      if (e.code() != Errc::classNotRegistered) throw;
      registered = false;
    }
    if (registered) {
      Ref<Interface> object = Runtime::current().createInstance<Interface>(clsid);
      void* itf = object->queryInterface(iid);
      FERRY_REQUIRE(itf != nullptr, Errc::noInterface, "class '{}' does not implement {}",
                    clsid.name, describeInterface(iid));
      return itf;
    }
  }
  ObjectUri uri;
  uri.kind = ObjectUri::Kind::klass;
  uri.target = clsid.name;
  uri.host = options.host;
  uri.port = options.port;
  if (options.host.empty()) {
    FERRY_REQUIRE(has(options.context, ClassContext::localServer), Errc::classNotRegistered,
                  "class '{}' is not registered in this process (Runtime::registerClass), and the "
                  "context excludes ClassContext::localServer, so no server process is asked",
                  clsid.name);
  } else {
    FERRY_REQUIRE(has(options.context, ClassContext::remoteServer), Errc::classNotRegistered,
                  "createInstance of '{}' names host '{}', but its context excludes "
                  "ClassContext::remoteServer; include it, or name no host",
                  clsid.name, options.host);
    // The same checks as a ferry:// reference's.
    uri = ObjectUri::parse(uri.toString());
  }
  return unmarshalActivated(activateReference(uri, iid), iid);
}

}  // namespace detail

}  // namespace ferry
