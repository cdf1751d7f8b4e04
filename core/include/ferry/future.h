// Result<T> and Future<T>: the asynchronous form of a call.
//
// Every generated method `R foo(args)` has a companion `Future<R> fooAsync(args)`. On a proxy it
// sends the request and returns at once; on a real object it runs the method at once and returns a
// ready future. Two ways to consume it:
//
//   get()         waits for the result (an STA keeps dispatching incoming calls meanwhile, an MTA
//                 thread blocks), bounded by the call's deadline; returns the value or throws.
//   then(cb)      `cb(Result<R>)` runs later on the apartment that made the call (the STA's own
//                 thread; for the MTA, a pool thread). Never inline inside then().
//
// A future is consumed once: get() or then(), not both.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include <ferry/api.h>
#include <ferry/error.h>

namespace ferry {

template <typename T>
class Result {
public:
  Result(T value) : _value(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : _value(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return _value.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  // The value, or throws the error.
  T& value() & {
    if (!ok()) std::get<1>(_value).rethrow();
    return std::get<0>(_value);
  }
  T value() && {
    if (!ok()) std::get<1>(_value).rethrow();
    return std::move(std::get<0>(_value));
  }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }

  // Precondition: !ok().
  const Error& error() const { return std::get<1>(_value); }

private:
  std::variant<T, Error> _value;
};

template <>
class Result<void> {
public:
  Result() = default;
  Result(Error error) : _error(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return !_error.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  void value() const {
    if (_error) _error->rethrow();
  }
  const Error& error() const { return *_error; }

private:
  std::optional<Error> _error;
};

namespace detail {

class PendingCall;
class ClientResponse;

// Implemented in core: wait (apartment-aware, bounded by the call's deadline) for a pending call,
// then hand its response to `read`, on the calling thread.
FERRY_API void waitPendingCall(PendingCall& call, const std::function<void(ClientResponse&)>& read);
// Asks the server to cancel the call (see Future::cancel).
FERRY_API void cancelPendingCall(PendingCall& call) noexcept;
// Arrange for `onDone` to run on the calling apartment once the call completes.
FERRY_API void onPendingCallDone(const std::shared_ptr<PendingCall>& call,
                       std::function<void(ClientResponse*, const Error*)> onDone);
// Post `fn` to the calling thread's apartment (throws notInitialized if it has none).
FERRY_API void postToCurrentApartment(std::function<void()> fn);
// The exception in flight as an Error: an Error as it is; anything else as serverFault with its
// what(), as a servant's exception reaches a remote caller.
FERRY_API Error currentExceptionAsError();

}  // namespace detail

template <typename T>
class Future {
public:
  using Reader = T (*)(detail::ClientResponse&);

  // A future for a call in flight; `read` turns the response into the value (run in the caller's
  // apartment, where interface results are unmarshaled).
  Future(std::shared_ptr<detail::PendingCall> call, Reader read)
      : _call(std::move(call)), _read(read) {}

  // A future that is already complete.
  static Future ready(Result<T> result) { return Future(std::move(result)); }

  Future(Future&&) noexcept = default;
  Future& operator=(Future&&) noexcept = default;

  bool isReady() const noexcept { return _ready.has_value(); }

  // Asks the server to cancel the call. The outcome still comes from the server: a call still
  // queued there never runs and completes with Errc::canceled; a running one is told
  // (ferry::callCanceled()) and completes with whatever its servant makes of it. Best effort: a
  // call that completed meanwhile, or whose cancel request is lost with its connection, is not
  // affected. A no-op on a ready future.
  void cancel() noexcept {
    if (_call) detail::cancelPendingCall(*_call);
  }

  T get() {
    if (!_ready) {
      FERRY_REQUIRE(_call, Errc::invalidArgument,
                    "Future::get on a future whose result was already taken (by get or then); "
                    "a future's result is read once");
      auto call = std::move(_call);
      std::optional<Result<T>> out;
      detail::waitPendingCall(*call, [&](detail::ClientResponse& r) { out.emplace(readInto(r)); });
      _ready = std::move(out);
    }
    Result<T> result = std::move(*_ready);
    _ready.reset();
    if constexpr (std::is_void_v<T>) {
      result.value();
    } else {
      return std::move(result).value();
    }
  }

  template <typename Callback>
    requires std::is_invocable_v<Callback, Result<T>>
  void then(Callback&& callback) {
    if (_ready) {
      auto result = std::make_shared<Result<T>>(std::move(*_ready));
      _ready.reset();
      detail::postToCurrentApartment(
          [result, cb = std::forward<Callback>(callback)]() mutable { cb(std::move(*result)); });
      return;
    }
    FERRY_REQUIRE(_call, Errc::invalidArgument,
                  "Future::then on a future whose result was already taken (by get or then); "
                  "a future's result is read once");
    auto call = _call;  // kept, so cancel() still reaches it
    detail::onPendingCallDone(
        call, [read = _read, cb = std::forward<Callback>(callback)](
                  detail::ClientResponse* response, const Error* error) mutable {
          if (error != nullptr) {
            cb(Result<T>(*error));
          } else {
            cb(readWith(read, *response));
          }
        });
  }

private:
  explicit Future(Result<T> result) : _ready(std::move(result)) {}

  Result<T> readInto(detail::ClientResponse& response) { return readWith(_read, response); }

  static Result<T> readWith(Reader read, detail::ClientResponse& response) {
    try {
      if constexpr (std::is_void_v<T>) {
        read(response);
        return Result<T>();
      } else {
        return Result<T>(read(response));
      }
    } catch (...) {
      return Result<T>(detail::currentExceptionAsError());
    }
  }

  std::shared_ptr<detail::PendingCall> _call;
  Reader _read = nullptr;
  std::optional<Result<T>> _ready;
};

namespace detail {
// The async form on a real object: run now, capture the outcome.
template <typename T, typename Fn>
Future<T> runNow(Fn&& fn) {
  try {
    if constexpr (std::is_void_v<T>) {
      fn();
      return Future<T>::ready(Result<T>());
    } else {
      return Future<T>::ready(Result<T>(fn()));
    }
  } catch (...) {
    return Future<T>::ready(Result<T>(currentExceptionAsError()));
  }
}
}  // namespace detail

}  // namespace ferry
