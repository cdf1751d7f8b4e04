// Activation: creating an object by its class, in this process, in a server process of this host,
// or on another host (COM's CoCreateInstanceEx, CoRegisterClassObject and the SCM).
//
// A server process registers a class object for each class it serves:
//
//     ferry::ClassObjectRegistration registered = ferry::registerClassObject(
//         {"demo.Calculator"}, [] { return ferry::Ref<ferry::Interface>(make<CalculatorImpl>()); },
//         ferry::ClassUse::multipleUse);
//
// and a client anywhere asks for an instance:
//
//     auto calculator = ferry::createInstance<Calculator>({"demo.Calculator"}, {.host = "192.0.2.7"});
//     auto same = ferry::bind<Calculator>("ferry://192.0.2.7/class/demo.Calculator");
//
// The request goes to the host's ferryd (its pipe for this host, its well-known port 7135 for
// another), which asks a running server that registered the class, or launches the server its
// class file names (RuntimeOptions::classDirectory; the README's "Activation" section), waits
// (bounded) for it to register, then asks it. The instance is created in the apartment that
// registered the class object and marshaled to the client, whose proxy's transport follows the
// distance rule.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include <ferry/api.h>
#include <ferry/ids.h>
#include <ferry/object.h>
#include <ferry/runtime.h>

namespace ferry {

// Where an instance may be created (COM's CLSCTX_*); combine with |.
enum class ClassContext : uint8_t {
  inProcess = 1,     // a class of this process (Runtime::registerClass)
  localServer = 2,   // a server process of this host, through its ferryd
  remoteServer = 4,  // a server process of ActivationOptions::host, through its ferryd
  all = 7,
};

constexpr ClassContext operator|(ClassContext a, ClassContext b) noexcept {
  return static_cast<ClassContext>(static_cast<uint8_t>(a) | static_cast<uint8_t>(b));
}
constexpr bool has(ClassContext set, ClassContext flag) noexcept {
  return (static_cast<uint8_t>(set) & static_cast<uint8_t>(flag)) != 0;
}

struct ActivationOptions {
  // "" : this host (in-process first, then its ferryd's pipe). Otherwise an address or a host
  // name (looked up within the call timeout), whose ferryd is asked over tcp, then udp.
  std::string host{};
  // Where that host's ferryd listens; "" : 7135.
  std::string port{};
  ClassContext context = ClassContext::all;
};

// How many activations one class object serves (COM's REGCLS_SINGLEUSE / REGCLS_MULTIPLEUSE).
enum class ClassUse : uint8_t {
  singleUse,    // one: then it is withdrawn, and ferryd launches another server for the next
  multipleUse,  // every activation until it is revoked
};

// A class object registered with registerClassObject. Revokes it when destroyed.
class FERRY_API ClassObjectRegistration {
public:
  ClassObjectRegistration() = default;
  ClassObjectRegistration(ClassObjectRegistration&& other) noexcept;
  ClassObjectRegistration& operator=(ClassObjectRegistration&& other) noexcept;
  ClassObjectRegistration(const ClassObjectRegistration&) = delete;
  ClassObjectRegistration& operator=(const ClassObjectRegistration&) = delete;
  ~ClassObjectRegistration();

  const Clsid& clsid() const noexcept { return _clsid; }
  explicit operator bool() const noexcept { return _token != 0; }

  // Withdraws the class object here and at ferryd. Idempotent; any thread of a process whose
  // runtime still runs.
  void revoke() noexcept;

private:
  friend FERRY_API ClassObjectRegistration registerClassObject(Clsid, ClassFactory, ClassUse);
  ClassObjectRegistration(Clsid clsid, uint64_t token) noexcept
      : _clsid(std::move(clsid)), _token(token) {}

  Clsid _clsid;
  uint64_t _token = 0;
};

// Registers a class object for `clsid` in the calling apartment: activation requests for the
// class (from this host's ferryd, or, without one, sent to this process's own endpoints) run
// `factory` in this apartment and hand the caller a reference to the object. Tells this host's
// ferryd when the process registers with one (RuntimeOptions::resolver), again after ferryd
// restarts; the class object is withdrawn at revoke, after one activation for singleUse, and
// when the process exits. Throws invalidArgument for a malformed class name (the rule of
// published names) or no factory, nameInUse when this process registered the class already,
// notInitialized outside an apartment, unavailable when the runtime runs no transport.
FERRY_API ClassObjectRegistration registerClassObject(Clsid clsid, ClassFactory factory,
                                                      ClassUse use);

namespace detail {
FERRY_API void* createInstanceErased(const Clsid& clsid, const ActivationOptions& options, Iid iid);
}

// Creates an instance of `clsid` as options say and returns it as I: in this process when the
// class is registered here (Runtime::registerClass) and options allow inProcess; else through
// the ferryd of options.host (this host without one). Throws classNotRegistered (no class
// object, no class file, or no context allowed reaches one), serverStartFailed (the launched
// server exited before registering: its exit status and last lines of standard error),
// deadlineExceeded (it did not register within its class file's start timeout, or the call
// timeout passed), accessDenied (ferryd's level rule or access check refused the requester),
// unavailable (the host's ferryd cannot be reached), noInterface.
template <InterfaceType I>
Ref<I> createInstance(const Clsid& clsid, const ActivationOptions& options = {}) {
  return Ref<I>::adopt(static_cast<I*>(detail::createInstanceErased(clsid, options, I::iid)));
}

// In a server process that ferryd launched: waits until ferryd asks it to exit, because it has
// held no references for other processes for its class file's idle timeout (COM's local-server
// lifetime rule), or until `limit` passes. True when asked: revoke the class objects and return
// from main. Any thread.
FERRY_API bool waitForExitRequest(std::chrono::milliseconds limit);

}  // namespace ferry
