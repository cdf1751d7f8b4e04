// The runtime, apartments and activation.
//
// A process creates one `ferry::Runtime` (creating a second while one exists is an error) and
// destroys it last. Every thread that touches ferry objects belongs to an apartment:
//
//   STA   one thread running a libuv loop. Calls into its objects run on that thread, one at a
//         time; while the thread waits for one of its own outgoing calls it keeps dispatching
//         incoming calls (so A→B→A callbacks never deadlock). Three ways in:
//           Runtime::newSta(name)        spawns a thread that runs the loop;
//           Runtime::enterSta(name)      makes the calling thread an STA; run() runs its loop;
//           Runtime::attachSta(loop, …)  adopts a uv_loop_t an embedding service already runs on
//                                        the calling thread.
//   MTA   one per process, a pool of threads (RuntimeOptions). Calls into its objects run
//         concurrently on pool threads. Runtime::joinMta() lets the calling thread act in it.
//
// Interface pointers do not cross apartments by themselves: marshal them (ferry/marshal.h), pass
// them as parameters of a call, or use the activation below, and the other apartment gets a proxy.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <ferry/api.h>
#include <ferry/error.h>
#include <ferry/git.h>
#include <ferry/ids.h>
#include <ferry/object.h>
#include <ferry/security.h>

struct uv_loop_s;
typedef struct uv_loop_s uv_loop_t;  // NOLINT: matches uv.h

namespace ferry {

namespace detail {
class ApartmentImpl;
class StaImpl;
class RuntimeImpl;
}  // namespace detail

enum class ApartmentKind : uint8_t { sta, mta };

// What a class tolerates (COM's ThreadingModel). Activation honours it:
//
//   caller \ model   apartment              free                 both
//   STA              direct, in the caller  proxy → MTA          direct
//   MTA              proxy → host STA       direct               direct
enum class ThreadingModel : uint8_t { apartment, free, both };

FERRY_API std::string_view toString(ApartmentKind kind) noexcept;
FERRY_API std::string_view toString(ThreadingModel model) noexcept;

// An activation request (ferry/activation.h) as RuntimeOptions::activationCheck sees it.
struct ActivationRequester {
  std::string clsid;    // the class asked for
  ClientBlanket caller;  // what the bind exchange established for the requester's link
  // Over the pipe, from a process of this host: then uid and pid are the kernel's.
  bool local = false;
  uint32_t uid = 0;
  int32_t pid = 0;
};
using ActivationCheck = std::function<bool(const ActivationRequester&)>;

struct RuntimeOptions {
  // MTA pool threads kept running.
  unsigned mtaThreads = 2;
  // The pool grows up to this many threads when every pool thread is blocked in an outgoing call,
  // so MTA→STA→MTA chains deeper than mtaThreads do not deadlock.
  unsigned mtaMaxThreads = 64;
  // Deadline of a call made without a CallTimeout scope, carried in the request.
  std::chrono::milliseconds callTimeout{30'000};

  // false: no transport starts; the process can neither export to nor import from others.
  bool outOfProcess = true;
  // Transport plugins to start (by protseq); empty: every loaded transport.
  std::vector<std::string> transports;
  // Addresses the network transports listen on and advertise in OBJREFs. Use a host address
  // reachable from the importers for cross-host use.
  std::vector<std::string> listenAddresses{"127.0.0.1"};
  // Port the network transports listen on ("0": any free port).
  std::string listenPort = "0";
  // Where the pipe transport listens: a directory ("" = the per-user runtime directory) and a
  // socket name ("" = a unique one).
  std::string pipeDirectory;
  std::string pipeEndpoint;
  // Settings of the transport plugins, by protseq: "key=value,key=value" text handed to the
  // plugin when its instance is created (e.g. {"udp", "idle_timeout_ms=5000,pmtu=0"}; the
  // README's configuration section lists each transport's keys). A transport that refuses its
  // settings, or takes none and is given some, makes the Runtime constructor throw
  // invalidArgument naming the setting. A plugin may take an environment variable that overrides
  // its settings for tests (udp: FERRY_UDP_OPTIONS); it logs when it does.
  std::map<std::string, std::string> transportSettings;
  // Whether every local user may connect to the pipe socket (mode 0666) rather than this user
  // only (0600). ferryd sets it so that every process of the host can register and resolve; a
  // listener still knows who connected (the kernel's peer credentials).
  bool pipeForAllUsers = false;
  // The host's ferryd to register this process's apartments with, as the string binding of its
  // pipe ("pipe:/run/ferry[ferryd]"; ferryd takes registrations over its pipe only); "auto"
  // uses that default when its socket exists; "" or "none" registers nowhere (the process still
  // answers resolve requests for itself). The FERRY_RESOLVER environment variable overrides it.
  // Anything else makes the Runtime constructor throw invalidArgument naming the setting. The
  // process registers again on its own when ferryd restarts.
  std::string resolver = "auto";
  // ferryd: answer resolve requests for the OXIDs other processes of this host register.
  bool acceptRegistrations = false;
  // Overrides the distance rule for every import of this process (e.g. "tcp"); "" = by distance:
  // same process → in-process; another process → the cheapest transport both sides run, by the
  // transports' cost ranks (pipe, then udp, then tcp), never a local-only one (pipe) for another
  // host.
  std::string preferredTransport;
  // How long an exporter keeps the response of a completed call that its caller has not yet
  // acknowledged, so that a copy of the request resent after a lost connection is answered from
  // this cache instead of running again (core/schema/orpc.capnp). Longer than the transports'
  // idle timeouts, or a caller may notice a lost connection after the response was forgotten
  // (its call then fails with outcomeUnknown).
  std::chrono::milliseconds replyRetention{60'000};
  // The most reply cache entries one caller may hold in this exporter: its running calls and
  // the answered ones it has not acknowledged. A request beyond is answered retryLater without
  // running, so one caller that never acknowledges cannot fill the cache (262144 entries for the
  // process) for the others. A caller acknowledges up to 65536 responses per connection.
  size_t replyCachePerCaller = 65536;
  // Distributed garbage collection (core/src/dgc/README.md). Every period this process sends
  // each exporter process it holds objects of one small ping naming its ping set (with the
  // objects added and removed since the last one acknowledged); an exporter that hears nothing
  // from a client — no ping, no call — for three periods releases that client's references as
  // if it had released them itself. Objects marshaled with MarshalFlags::noPing are exempt. Both
  // sides should use the same period: an exporter with a shorter one collects the clients of a
  // longer one.
  std::chrono::milliseconds pingPeriod{10'000};
  // The most reply cache entries, and callers, that requests arriving on one connection may
  // hold: a peer that mints fresh caller tokens on one connection takes this share and no more,
  // and the calls of other connections still run. Beyond it, requests are answered retryLater.
  size_t replyCachePerConnection = 32768;
  // Waking with the transport loop. A thread that waits for what the loop's I/O thread will hand
  // it (an MTA thread's response from another process, over a transport that cannot lend it its
  // connection, such as udp; one idle MTA pool thread's next request) also polls the loop, so it wakes when the I/O thread does rather than after it, and spins
  // while the I/O thread handles the event: up to this long, or until the loop goes back to
  // waiting. Saves a wake-up per hand-over (tens of microseconds on an idle VM) for some CPU. At
  // most two response waiters and one pool thread (once the MTA has run work) poll at a time;
  // the others sleep. An STA whose loop ferry runs (not an attached one) polls its queue for
  // as long after an iteration that ran work, before its loop sleeps, so the caller's next call
  // finds it awake. Zero: never poll.
  std::chrono::microseconds loopSpin{50};
  // Keeps the C library's allocator from handing the memory of large messages back to the
  // kernel after every call. glibc's malloc returns the free space at the top of a heap once it
  // passes the trim threshold (128 KiB until the process first frees a block of over 128 KiB,
  // mallopt(3)), and each page written afterwards is a page fault: a 64 KiB echo allocates and
  // frees several payload-sized buffers per call (the frame, the received words, the builder's
  // segments), and took 820 µs instead of 160 µs on the 2-core VM once its heaps trimmed on every
  // call; a 16 MiB request, 350 ms instead of 10 ms. Set, the Runtime constructor raises glibc's
  // dynamic thresholds as glibc itself does after freeing a large block: it allocates and frees
  // one block just under 32 MiB (the largest the dynamic threshold follows), so blocks under
  // 32 MiB come from the heaps, and a heap keeps up to 64 MiB of freed memory for reuse. A
  // program that set these with mallopt() or GLIBC_TUNABLES keeps its own settings (glibc stops
  // adjusting them then); with another C library or allocator, nothing changes.
  bool tuneAllocator = true;

  // Security (ferry/security.h; the README's security section). The providers this process
  // uses, in its order of preference: a security plugin's name and its settings text, e.g.
  // {{"local", ""}, {"tls", "cert=/etc/ferry/me.pem,..."}}. A client with providers begins
  // every connection with a bind exchange; a server chooses among the client's offer. A name
  // that is no loaded plugin, settings its plugin refuses, or a provider that fits none of the
  // transports that will run (local works over the pipe only) make the Runtime constructor throw
  // invalidArgument naming the setting.
  std::vector<std::pair<std::string, std::string>> security;
  // The least level this process accepts, for calls it serves from other processes (a call
  // below it is refused accessDenied before its apartment looks for the object) and for the
  // connections it opens. Unset: integrity when `security` names a provider, else none. Above
  // none without a provider, the constructor throws.
  std::optional<SecurityLevel> minimumLevel;
  // Raises the least level for calls of one interface (by the IID that declares the method).
  std::vector<std::pair<Iid, SecurityLevel>> interfaceMinimumLevels;
  // Runs before any argument of a call from another process is read (ferry/security.h).
  AccessCheck accessCheck;
  // Listening on an address other than loopback without any security provider lets anyone who
  // reaches it call this process's objects unauthenticated; the Runtime constructor refuses it
  // unless this is set.
  bool allowInsecureNetwork = false;

  // Activation (ferry/activation.h; the README's "Activation" section).
  // ferryd: the directory of class files, one `CLASS.class` per class, naming the server to launch
  // for it. Read by the constructor: a file it cannot read or parse makes it throw
  // invalidArgument naming the file and line. "": this process launches nothing.
  std::string classDirectory;
  // An activation request over the network (tcp, udp) at a level below integrity is refused
  // accessDenied, unless this is set or every RuntimeOptions::listenAddresses is a loopback
  // address (a providerless ferryd on 127.0.0.1 activates for the processes of its host).
  bool allowInsecureActivation = false;
  // Consulted for every activation request this process serves (in ferryd: before it launches
  // or asks a server): false refuses it accessDenied. Unset: every requester the level rule lets
  // through.
  ActivationCheck activationCheck;
  // The admin object every process exports (core/src/admin/README.md; `ferry ps`, `ferry ls`,
  // `ferry ping`, `ferry call`): what the process runs, exports, holds and serves, its counters,
  // its health, and the schemas of its interfaces.
  //   local    served to this host's processes over the pipe; its OBJREF is in the runtime
  //            directory (<runtime dir>/admin/<pid>, mode 0600, removed by ~Runtime), where
  //            `ferry ps` finds it. A call from another host is refused accessDenied.
  //   network  also served to other hosts, at adminMinimumLevel at least.
  //   off      no admin object.
  // Only a process that runs transports (outOfProcess) has one.
  enum class Admin : uint8_t { off, local, network };
  Admin admin = Admin::local;
  // The least level of an admin call from another host (admin = network).
  SecurityLevel adminMinimumLevel = SecurityLevel::integrity;
};

// A handle to an apartment: cheap to copy; keeps the bookkeeping alive, not the apartment running.
class FERRY_API Apartment {
public:
  Apartment() = default;

  ApartmentKind kind() const;
  Oxid oxid() const;
  const std::string& name() const;
  bool isCurrent() const;
  explicit operator bool() const noexcept { return _impl != nullptr; }

  // Runs `fn` in this apartment and returns its result (or rethrows what it threw). A calling STA
  // keeps dispatching incoming calls while it waits; other threads (MTA, or in no apartment)
  // block. The wait is bounded by the call timeout (deadlineExceeded). Runs `fn` inline when the
  // caller is already in this apartment.
  template <typename Fn>
  auto invoke(Fn&& fn) const -> std::invoke_result_t<Fn&>;

  // Queues `fn` to run in this apartment. Throws shuttingDown if the apartment is closed.
  void post(std::function<void()> fn) const;

  friend bool operator==(const Apartment& a, const Apartment& b) noexcept {
    return a._impl == b._impl;
  }

  explicit Apartment(std::shared_ptr<detail::ApartmentImpl> impl) : _impl(std::move(impl)) {}
  detail::ApartmentImpl* impl() const noexcept { return _impl.get(); }

private:
  void invokeErased(const std::function<void()>& fn) const;

  std::shared_ptr<detail::ApartmentImpl> _impl;
};

// An STA thread spawned by Runtime::newSta. Destroying the handle (or stop()) stops the loop,
// tears the apartment down (its exported objects are released, its proxies disconnected) and
// joins the thread.
class FERRY_API Sta : public Apartment {
public:
  Sta() = default;
  Sta(Sta&&) noexcept = default;
  Sta& operator=(Sta&&) noexcept;
  ~Sta();

  // The loop the STA thread runs. Only touch it from that thread (e.g. inside post()).
  uv_loop_t* loop() const;
  void stop();

private:
  friend class Runtime;
  explicit Sta(std::shared_ptr<detail::ApartmentImpl> impl) : Apartment(std::move(impl)) {}
};

// The calling thread turned into an STA (Runtime::enterSta). Lives on that thread's stack.
// Entering again on a thread that already is an STA (any of the three kinds) gives a nested
// handle to the same apartment (COM's S_FALSE from CoInitializeEx): its destruction balances
// only itself, and the apartment lives on until its first owner leaves.
class FERRY_API CurrentSta : public Apartment {
public:
  CurrentSta(CurrentSta&&) noexcept = default;  // the moved-from handle owns nothing
  CurrentSta& operator=(CurrentSta&&) = delete;
  ~CurrentSta();

  // Whether this handle is a nested entry into an STA the thread already was.
  bool nested() const noexcept { return _nested; }

  uv_loop_t* loop() const;
  // Runs the loop until stop() is called (from any thread, or from inside the loop). Throws
  // invalidArgument on a nested handle: the loop is run by the apartment's first owner.
  void run();
  void stop();

private:
  friend class Runtime;
  CurrentSta(std::shared_ptr<detail::ApartmentImpl> impl, bool nested)
      : Apartment(std::move(impl)), _nested(nested) {}

  bool _nested = false;
};

// An STA on a uv_loop_t the embedding service runs itself (Runtime::attachSta). Create and
// destroy it on the loop's thread. ferry adds one uv_async_t to the loop; destruction closes it,
// and its close callback runs on the loop's next iteration, so keep running the loop until
// uv_run returns.
class FERRY_API AttachedSta : public Apartment {
public:
  AttachedSta(AttachedSta&&) noexcept = default;  // the moved-from handle owns nothing
  AttachedSta& operator=(AttachedSta&&) = delete;
  ~AttachedSta();

private:
  friend class Runtime;
  explicit AttachedSta(std::shared_ptr<detail::ApartmentImpl> impl)
      : Apartment(std::move(impl)) {}
};

// The calling thread acting in the MTA until the scope ends.
class FERRY_API MtaScope {
public:
  MtaScope(MtaScope&&) = delete;
  ~MtaScope();

private:
  friend class Runtime;
  MtaScope();
  detail::ApartmentImpl* _previous = nullptr;
};

// Overrides the call timeout for calls made by this thread while the scope lives.
class FERRY_API CallTimeout {
public:
  explicit CallTimeout(std::chrono::milliseconds timeout);
  CallTimeout(CallTimeout&&) = delete;
  ~CallTimeout();

private:
  std::optional<std::chrono::milliseconds> _previous;
};

// A class name for activation, e.g. "calc.Calculator".
struct Clsid {
  std::string name;
  friend bool operator==(const Clsid&, const Clsid&) = default;
};

using ClassFactory = std::function<Ref<Interface>()>;

// A plugin the loader found (see ferry/plugin/plugin.h for the search path).
struct PluginInfo {
  std::string kind;         // "transport" or "security"
  std::string name;         // protseq or provider name
  std::string path;
  std::string description;
};

// One transport instance's counters (Runtime::transportCounters): what it took, refused and holds,
// as its plugin names them (tcp and pipe: transports/common/stream-limits.h; udp: PROTOCOL.md).
// Names beginning with now_ are current levels; the others only grow.
struct TransportCounters {
  std::string transport;  // the protseq, e.g. "tcp"
  std::vector<std::pair<std::string, uint64_t>> counters;
};

struct RefusedPlugin {
  std::string path;
  std::string reason;       // e.g. "built for plugin ABI version 2, this ferry speaks version 1"
};

// The process-wide counters of Runtime::stats(), the one list every copy of them is made from:
// X(name, meaning) for each. Live counts say how many of a thing exist now; each is zero again
// once the Runtime and everything made through it are gone (the tests' leak check).
#define FERRY_LIVE_COUNTERS(X)                                                                \
  X(apartments, "apartments not yet torn down (the MTA included)")                            \
  X(staThreads, "STA threads started by newSta and not yet joined")                           \
  X(mtaThreads, "MTA pool threads alive")                                                     \
  X(exportedObjects, "stub managers: objects of this process with external references")      \
  X(proxyManagers, "imported object identities")                                              \
  X(interfaceProxies, "interface proxies of the imported objects")                            \
  X(servants, "objects derived from Implements<> alive")                                      \
  X(ioThreads, "transport I/O threads running")                                               \
  X(replyCacheEntries, "calls the reply cache holds (core/schema/orpc.capnp)")                \
  X(watchedCalls, "calls with a continuation (then()) still waiting for a response")

// Running totals since the process started.
#define FERRY_EVENT_COUNTERS(X)                                                               \
  X(leakedLoopHandles, "libuv handles found open when an STA loop closed (a ferry bug)")      \
  X(protocolErrors, "malformed or unexpected input, dropped")                                 \
  X(onewayFailures, "oneway calls (releases included) that could not be delivered")           \
  X(callsResent, "requests sent again after their connection was lost")                       \
  X(duplicateRequests, "requests that arrived again and were answered without running again") \
  X(releasesRefused,                                                                          \
    "RemUnknown releases of references the releasing client does not hold, refused")          \
  X(pingsSent, "distributed GC: ping messages this process sent to exporters")                \
  X(pingBytesSent, "distributed GC: bytes of the ping messages this process sent")            \
  X(pingSetsCollected,                                                                        \
    "distributed GC: clients whose pings stopped and whose references were released for them") \
  X(refsCollected, "distributed GC: references released for clients whose pings stopped")    \
  X(replyCacheRefusals,                                                                       \
    "requests answered without running because their caller or connection was past its share " \
    "of the reply cache, the cache was full, or the call may have run before")                \
  X(replyCacheEvictions,                                                                      \
    "answered calls forgotten early because the reply cache was full (of its largest holder)") \
  X(registrationsRefused,                                                                     \
    "ferryd: registrations or withdrawals of an OXID or a name refused because another "      \
    "process registered it")                                                                  \
  X(sealedFramesDropped,                                                                      \
    "protected frames dropped: malformed, or their tag did not verify (tampered, reflected, "  \
    "spliced, or keyed from another negotiation)")                                            \
  X(replaysDropped, "protected frames dropped because their number was seen or too old")      \
  X(bindsRefused, "bind exchanges that failed or were refused, at either end")                \
  X(callsDenied,                                                                              \
    "calls from other processes refused accessDenied: below the minimum level, or by the "    \
    "access check")                                                                           \
  X(linksClosedForForgeries,                                                                  \
    "protected connections closed because 32 of their frames failed to open (malformed, "     \
    "tampered or forged; replays not counted)")                                               \
  X(staWakeUps, "times a thread woke an STA's loop (its eventfd) for work it queued")         \
  X(staPolledWork,                                                                            \
    "times an STA found queued work while it polled its queue before sleeping "               \
    "(RuntimeOptions::loopSpin), so nobody had to wake it")                                   \
  X(repliesReadByCaller,                                                                      \
    "responses the waiting thread read off its connection itself, not handed to it by the "   \
    "transport's I/O thread (tcp and pipe connections this process opened)")

#define FERRY_RUNTIME_COUNTERS(X) FERRY_LIVE_COUNTERS(X) FERRY_EVENT_COUNTERS(X)

// A snapshot of the counters (FERRY_RUNTIME_COUNTERS says what each counts).
struct RuntimeStats {
#define FERRY_STATS_FIELD(name, meaning) int64_t name = 0;
  FERRY_RUNTIME_COUNTERS(FERRY_STATS_FIELD)
#undef FERRY_STATS_FIELD
};

class FERRY_API Runtime {
public:
  explicit Runtime(RuntimeOptions options = {});
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  // Stops every STA started with newSta (and the host STA), tears down the MTA and joins its
  // threads. CurrentSta, AttachedSta and MtaScope objects must be gone by then.
  ~Runtime();

  // The live runtime; throws notInitialized when there is none.
  static Runtime& current();

  Sta newSta(std::string name);
  // On a thread that already is an STA: a nested handle to it (`name` is ignored). Throws
  // changedMode on a thread in the MTA (a pool thread, or inside joinMta()).
  CurrentSta enterSta(std::string name);
  AttachedSta attachSta(uv_loop_t* loop, std::string name);
  // Throws changedMode on a thread that is an STA.
  MtaScope joinMta();
  Apartment mta() const;

  const RuntimeOptions& options() const noexcept;

  // Registers a class for createInstance. Re-registering a name replaces it.
  void registerClass(Clsid clsid, ThreadingModel model, ClassFactory factory);
  void revokeClass(const Clsid& clsid);

  // Turns the bytes of a custom OBJREF (see CustomMarshaler) back into an object in the
  // importing apartment. `release` (optional) runs for releaseMarshalData of a packet never
  // unmarshaled. Re-registering a name replaces it.
  using Unmarshaler = std::function<Ref<Interface>(std::span<const uint8_t> data)>;
  using CustomRelease = std::function<void(std::span<const uint8_t> data)>;
  void registerUnmarshaler(std::string unmarshalerClass, Unmarshaler unmarshal,
                           CustomRelease release = {});

  // Creates an instance of a registered class and returns it as I: the object itself when the
  // class's threading model fits the caller's apartment, else a proxy to an object created in
  // the right one (see ThreadingModel). Throws classNotRegistered, noInterface, notInitialized.
  template <InterfaceType I>
  Ref<I> createInstance(const Clsid& clsid) {
    return Ref<I>::adopt(static_cast<I*>(createInstanceErased(clsid, I::iid)));
  }

  // What the plugin loader loaded and refused (the first call loads them).
  static std::vector<PluginInfo> plugins();
  static std::vector<RefusedPlugin> refusedPlugins();
  // The string bindings this process listens on, cheapest first ("pipe:/run/user/1000/ferry[x]").
  std::vector<std::string> bindings() const;

  // The process's Global Interface Table.
  GlobalInterfaceTable& git() noexcept;

  // Process-wide counters; valid with or without a live runtime.
  static RuntimeStats stats();
  // The counters of each running transport instance that offers them (dropped and refused input
  // included), read on the transport I/O thread; none when the runtime runs no transport. Throws
  // unavailable when the I/O thread does not answer within 5 seconds.
  std::vector<TransportCounters> transportCounters() const;

  // The health the admin object answers (`ferry ping`, like grpc.health.v1): serving (the
  // default) or not, with a reason a person reads. Any thread.
  void setServing(bool serving, std::string reason = {});

  detail::RuntimeImpl& impl() const noexcept { return *_impl; }

private:
  void* createInstanceErased(const Clsid& clsid, Iid iid);

  std::unique_ptr<detail::RuntimeImpl> _impl;
};

// The calling thread's apartment; throws notInitialized if it has none.
FERRY_API Apartment currentApartment();
// The calling thread's apartment, or an empty handle.
FERRY_API Apartment tryCurrentApartment() noexcept;

// Inside a servant: whether the caller canceled the call being served (Future::cancel). Servants
// of long calls poll it and may end early (e.g. by throwing Error(Errc::canceled, …)). False
// outside a call.
FERRY_API bool callCanceled() noexcept;

// The causality id of the call the calling thread is serving; zero outside a call. Outgoing calls
// made while serving a call carry it on, so a whole A→B→A chain shares one id.
FERRY_API CausalityId currentCausalityId() noexcept;

template <typename Fn>
auto Apartment::invoke(Fn&& fn) const -> std::invoke_result_t<Fn&> {
  using R = std::invoke_result_t<Fn&>;
  // fn and its result live in shared slots: on a timeout the caller returns while fn may still
  // run (a task that has not started by then is not started at all).
  auto task = std::make_shared<std::decay_t<Fn>>(std::forward<Fn>(fn));
  if constexpr (std::is_void_v<R>) {
    invokeErased([task] { (*task)(); });
  } else {
    auto slot = std::make_shared<std::optional<R>>();
    invokeErased([task, slot] { slot->emplace((*task)()); });
    return std::move(**slot);
  }
}

}  // namespace ferry
