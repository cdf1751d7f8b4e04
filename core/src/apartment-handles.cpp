// The public apartment handles (runtime.h): Apartment, Sta, CurrentSta, AttachedSta, MtaScope,
// CallTimeout, and the current apartment of a thread.

#include <ferry/runtime.h>

#include <exception>
#include <utility>

#include "log.h"
#include "pending-call.h"
#include "runtime-impl.h"
#include "thread-state.h"

namespace ferry {

std::string_view toString(ApartmentKind kind) noexcept {
  return kind == ApartmentKind::sta ? "sta" : "mta";
}

std::string_view toString(ThreadingModel model) noexcept {
  switch (model) {
    case ThreadingModel::apartment:
      return "apartment";
    case ThreadingModel::free:
      return "free";
    case ThreadingModel::both:
      return "both";
  }
  return "unknown";
}

ApartmentKind Apartment::kind() const { return _impl->kind(); }
Oxid Apartment::oxid() const { return _impl->oxid(); }
const std::string& Apartment::name() const { return _impl->name(); }
bool Apartment::isCurrent() const {
  return _impl != nullptr && detail::threadState().apartment == _impl.get();
}

void Apartment::post(std::function<void()> fn) const {
  FERRY_REQUIRE(_impl != nullptr, Errc::invalidArgument,
                "post on an empty Apartment handle (default-constructed or moved from)");
  std::unique_ptr<detail::WorkItem> task = detail::makeTask(std::move(fn));
  FERRY_REQUIRE(_impl->post(task), Errc::shuttingDown,
                "cannot queue work in apartment '{}': it is shutting down", _impl->label());
}

void Apartment::invokeErased(const std::function<void()>& fn) const {
  FERRY_REQUIRE(_impl != nullptr, Errc::invalidArgument,
                "invoke on an empty Apartment handle (default-constructed or moved from)");
  if (isCurrent()) {
    fn();
    return;
  }
  // The task is waited for like a call: an STA caller keeps dispatching, an MTA thread or a
  // thread in no apartment blocks; the wait is bounded either way.
  detail::ApartmentImpl* current = detail::threadState().apartment;
  detail::ApartmentImpl& here =
      current != nullptr ? *current : static_cast<detail::ApartmentImpl&>(detail::currentRuntime().mta());
  auto call = std::make_shared<detail::PendingCall>(here.shared_from_this(),
                                                    detail::callDeadline(), CausalityId());
  auto failure = std::make_shared<std::exception_ptr>();
  std::unique_ptr<detail::WorkItem> task = detail::makeTask([fn, call, failure] {
    if (call->done()) return;  // the caller gave up before the task started
    try {
      fn();
    } catch (...) {
      *failure = std::current_exception();
    }
    call->deliverReceived(nullptr);
  });
  FERRY_REQUIRE(_impl->post(task), Errc::shuttingDown,
                "cannot queue work in apartment '{}': it is shutting down", _impl->label());
  if (!call->done()) here.wait(*call);
  call->throwIfFailed();
  // Taken out, so that the task, destroyed later on the apartment's thread, holds no reference
  // to the exception this thread goes on to read.
  if (std::exception_ptr thrown = std::exchange(*failure, nullptr)) std::rethrow_exception(thrown);
}

Sta& Sta::operator=(Sta&& other) noexcept {
  if (this != &other) {
    stop();
    Apartment::operator=(std::move(other));
  }
  return *this;
}

Sta::~Sta() { stop(); }

uv_loop_t* Sta::loop() const { return static_cast<detail::StaImpl*>(impl())->loop(); }

void Sta::stop() {
  if (impl() == nullptr) return;
  detail::stopSpawnedSta(*static_cast<detail::StaImpl*>(impl()));
}

CurrentSta::~CurrentSta() {
  auto* sta = static_cast<detail::StaImpl*>(impl());
  if (sta == nullptr) return;
  if (_nested) {
    sta->unnest();
    return;
  }
  try {
    sta->leave();
  } catch (const std::exception& e) {
    FERRY_LOG(error, "leaving the STA failed: " << e.what());
  }
}

uv_loop_t* CurrentSta::loop() const { return static_cast<detail::StaImpl*>(impl())->loop(); }
void CurrentSta::run() {
  FERRY_REQUIRE(!_nested, Errc::invalidArgument,
                "this handle is a nested entry into an STA the thread already was, and the loop "
                "is run by whoever entered it first; call run() on that handle instead");
  static_cast<detail::StaImpl*>(impl())->runLoop();
}
void CurrentSta::stop() { static_cast<detail::StaImpl*>(impl())->stop(); }

AttachedSta::~AttachedSta() {
  if (impl() == nullptr) return;
  try {
    static_cast<detail::StaImpl*>(impl())->leave();
  } catch (const std::exception& e) {
    FERRY_LOG(error, "detaching the STA failed: " << e.what());
  }
}

MtaScope::MtaScope() {
  detail::RuntimeImpl& runtime = detail::currentRuntime();
  detail::ThreadState& state = detail::threadState();
  FERRY_REQUIRE(state.apartment == nullptr || state.apartment == &runtime.mta(),
                Errc::changedMode,
                "this thread is the STA {} and cannot also join the MTA; make MTA calls from "
                "another thread",
                state.apartment->label());
  _previous = std::exchange(state.apartment, &runtime.mta());
}

MtaScope::~MtaScope() { detail::threadState().apartment = _previous; }

CallTimeout::CallTimeout(std::chrono::milliseconds timeout)
    : _previous(detail::threadState().callTimeout) {
  // Checked before the thread's timeout changes: a refused CallTimeout has no destructor to
  // restore it.
  FERRY_REQUIRE(timeout.count() > 0, Errc::invalidArgument,
                "ferry::CallTimeout was given {} ms; it must be positive", timeout.count());
  detail::threadState().callTimeout = timeout;
}

CallTimeout::~CallTimeout() { detail::threadState().callTimeout = _previous; }

Apartment currentApartment() {
  return Apartment(detail::requireCurrentApartment().shared_from_this());
}

Apartment tryCurrentApartment() noexcept {
  detail::ApartmentImpl* apartment = detail::threadState().apartment;
  return apartment == nullptr ? Apartment() : Apartment(apartment->shared_from_this());
}

}  // namespace ferry
