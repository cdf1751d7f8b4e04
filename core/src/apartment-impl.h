// Apartments: the STA (a libuv loop thread) and the MTA (a thread pool), their work queues, the
// modal wait of an STA making an outgoing call, and teardown.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <ferry/message-filter.h>
#include <ferry/runtime.h>

#include "export-table.h"
#include "import-table.h"
#include "loop-wake.h"
#include "rem-unknown.h"

// libuv's handle types, by name only: the STA's loop code includes uv.h itself.
struct uv_poll_s;
typedef struct uv_poll_s uv_poll_t;  // NOLINT: matches uv.h
struct uv_prepare_s;
typedef struct uv_prepare_s uv_prepare_t;  // NOLINT: matches uv.h

namespace ferry::detail {

class RuntimeImpl;
class PendingCall;
class IncomingRequest;
class ReplySink;

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// What a call hears (Errc::disconnected) when its OXID names no apartment of this process, or its
// IPID no object of the apartment: the same words for both, so that a peer probing ids cannot
// tell a live apartment from none.
inline constexpr const char* kNoSuchObject =
    "the object is not here: it was disconnected or released, or its apartment shut down";

// One unit of work queued to an apartment.
class WorkItem {
public:
  enum class Kind : uint8_t { call, task };

  explicit WorkItem(Kind kind) noexcept : kind(kind) {}
  virtual ~WorkItem() = default;
  // Runs the work on the apartment's thread. Must not throw.
  virtual void run() noexcept = 0;
  // The apartment will never run this item (it is shutting down): answer the caller, if any.
  virtual void abandon() noexcept {}
  // Calls: the message filter refused it; answer the caller with `code` without serving.
  virtual void reject(Errc code) noexcept { (void)code; }

  const Kind kind;
  // Calls: what the message filter sees.
  CausalityId causality{};
  uint64_t interfaceId = 0;
  uint16_t methodId = 0;
  bool internal = false;  // RemUnknown: always served
};

// A task from a callable.
template <typename Fn>
class TaskItem final : public WorkItem {
public:
  explicit TaskItem(Fn fn) : WorkItem(Kind::task), _fn(std::move(fn)) {}
  void run() noexcept override;

private:
  Fn _fn;
};

void logTaskFailure() noexcept;

template <typename Fn>
void TaskItem<Fn>::run() noexcept {
  try {
    _fn();
  } catch (...) {
    logTaskFailure();
  }
}

template <typename Fn>
std::unique_ptr<WorkItem> makeTask(Fn fn) {
  return std::make_unique<TaskItem<Fn>>(std::move(fn));
}

class ApartmentImpl : public std::enable_shared_from_this<ApartmentImpl> {
public:
  ApartmentImpl(RuntimeImpl& runtime, ApartmentKind kind, std::string name);
  virtual ~ApartmentImpl();

  ApartmentKind kind() const noexcept { return _kind; }
  Oxid oxid() const noexcept { return _oxid; }
  const std::string& name() const noexcept { return _name; }
  RuntimeImpl& runtime() const noexcept { return _runtime; }
  // "sta:name" or "mta", for log lines.
  const std::string& label() const noexcept { return _label; }

  ExportTable& exports() noexcept { return _exports; }
  ImportTable& imports() noexcept { return _imports; }
  // The IPID of this apartment's RemUnknown object.
  Ipid remUnknownIpid() const noexcept { return _remUnknownIpid; }

  // Queues work. Returns false (and leaves `item` with the caller) once the apartment is closed.
  virtual bool post(std::unique_ptr<WorkItem>& item) = 0;

  // Waits until `call` completes or its deadline passes (then it is failed with
  // deadlineExceeded). An STA dispatches incoming work meanwhile; an MTA thread blocks.
  virtual void wait(PendingCall& call) = 0;

  // Serves one request in this apartment, on the calling thread (which must belong to it), and
  // hands the response to `replyTo` (null for oneway calls). `distance` is how far the caller
  // is: interface pointers in the results are marshaled for it.
  // Refuse (accessDenied, counted) a call from another process below the least level for
  // `interfaceId`, or one RuntimeOptions::accessCheck refuses.
  void checkLevel(const ClientBlanket& caller, Iid interfaceId) const;
  void checkAccess(const ClientBlanket& caller, Ipid ipid, Iid interfaceId, uint16_t methodId) const;
  void serve(IncomingRequest& request, Deadline deadline, MarshalContext distance,
             const std::shared_ptr<ReplySink>& replyTo) noexcept;

  bool closed() const noexcept { return _closed.load(std::memory_order_acquire); }
  // Work queued and not yet started, for the admin object.
  virtual size_t queueDepth() = 0;

protected:
  // This apartment's RemUnknown servant, created on first use (a copy: it holds a reference);
  // none once the apartment tore down.
  std::optional<StubLease> remUnknown();

  // Server and client side teardown, on the apartment's thread: every exported object is
  // released, every proxy disconnected (its references returned at once).
  void tearDown() noexcept;
  void markClosed() noexcept { _closed.store(true, std::memory_order_release); }

private:
  RuntimeImpl& _runtime;
  const ApartmentKind _kind;
  const Oxid _oxid;
  const std::string _name;
  const std::string _label;
  const Ipid _remUnknownIpid;
  std::atomic<bool> _closed{false};
  std::mutex _remUnknownMutex;
  bool _remUnknownGone = false;         // guarded by _remUnknownMutex
  StubLease _remUnknown;                // guarded by _remUnknownMutex
  ExportTable _exports;
  ImportTable _imports;
};

// A single-threaded apartment on a libuv loop.
class StaImpl final : public ApartmentImpl {
public:
  enum class Mode : uint8_t { spawned, current, attached };

  StaImpl(RuntimeImpl& runtime, std::string name, Mode mode, uv_loop_t* externalLoop);
  ~StaImpl() override;

  // Runs on the STA thread: sets up the loop hooks and the thread's apartment.
  void enter();
  // Runs the loop until stop() (spawned and current modes).
  void runLoop();
  // Any thread: asks the loop to end. Idempotent.
  void stop();
  // On the STA thread: a nested enterSta, and the end of one. The outermost owner's leave()
  // is what tears the apartment down.
  void nest() noexcept { ++_nesting; }
  void unnest() noexcept { --_nesting; }
  // On the STA thread after the loop ended (or, attached, when the embedder detaches):
  // tears the apartment down, closes ferry's loop handles and checks nothing leaked.
  void leave();

  uv_loop_t* loop() const noexcept { return _loop; }
  std::thread::id threadId() const noexcept { return _threadId; }

  bool post(std::unique_ptr<WorkItem>& item) override;
  void wait(PendingCall& call) override;
  size_t queueDepth() override;

  // Keeps dispatching (like a wait) until `until`.
  void pause(Deadline until);

  std::shared_ptr<MessageFilter> setFilter(std::shared_ptr<MessageFilter> filter) {
    return std::exchange(_filter, std::move(filter));
  }
  MessageFilter* filter() const noexcept { return _filter.get(); }

  // Spawned mode: the thread running the loop.
  std::thread thread;

private:
  static void onWake(uv_poll_t* handle, int status, int events);
  static void onPrepare(uv_prepare_t* handle);
  // Runs what is queued; returns true when a stop was asked for (the loop is told to end).
  bool drain() noexcept;
  // Before the loop sleeps, after an iteration that ran work: polls the queue for up to
  // RuntimeOptions::loopSpin and runs what arrives, so a caller that posts the next call soon
  // after its response does not pay a wake-up of a sleeping thread for it.
  void spinForWork() noexcept;
  // Pops the next item, waiting until `deadline`; null on timeout.
  std::unique_ptr<WorkItem> popUntil(Deadline deadline);
  // Runs one dequeued item (calls go through the message filter).
  void runItem(std::unique_ptr<WorkItem> item) noexcept;
  // How to wake the thread for what was just queued, decided under _mutex (wakeLocked) and done
  // after it is let go (wake): the modal wait's condition variable, the loop's eventfd, or
  // nothing (the eventfd was written and the loop has not taken its work yet, the loop thread
  // is polling the queue, or the apartment accepts no work). `evenWhileSpinning`: a stop, which
  // the polling thread does not look for.
  enum class Wake : uint8_t { none, modal, loop };
  Wake wakeLocked(bool evenWhileSpinning = false) noexcept;
  void wake(Wake how) noexcept;

  const Mode _mode;
  uv_loop_t* _loop = nullptr;
  std::unique_ptr<uv_loop_t> _ownLoop;  // spawned and current modes
  // The loop wakes for queued work on this eventfd (written outside _mutex, so the loop thread
  // does not wake into a held lock; it is closed by the destructor, so a post() that holds a
  // reference may write it after leave()). Not a uv_async_t: libuv 1.44's async handle spins
  // the woken loop until the sender's write system call returns.
  int _wakeFd = -1;
  uv_poll_t* _wakeWatch = nullptr;  // heap: its close callback may outlive `this` (attached mode)
  // Spawned and current modes (an attached loop is the embedder's, and sleeps as it decides).
  std::unique_ptr<uv_prepare_t> _spinPrepare;
  std::chrono::microseconds _spin{0};  // RuntimeOptions::loopSpin
  bool _ranWork = false;               // the loop ran queued work since its last prepare
  // The queue's size, and whether the loop thread polls it (spinForWork). post() stores the
  // first and then reads the second, spinForWork() the reverse (both sequentially consistent):
  // either post() sees the thread polling and need not write the eventfd, or the thread sees
  // the work.
  std::atomic<size_t> _queued{0};
  std::atomic<bool> _spinning{false};
  std::thread::id _threadId;

  std::mutex _mutex;
  std::condition_variable _wakeModal;
  std::deque<std::unique_ptr<WorkItem>> _queue;
  int _modalDepth = 0;       // > 0 while the thread waits on its own call
  // Causality ids of the outgoing calls this thread waits on, innermost last (STA thread only).
  std::vector<CausalityId> _waitingOn;
  std::shared_ptr<MessageFilter> _filter;  // STA thread only
  bool _wakeWritten = false;  // _wakeFd was written and the loop has not drained since
  bool _accepting = false;   // between enter() and leave()
  int _nesting = 0;          // nested enterSta handles alive (STA thread only)
  // Written under _mutex; read without it by the loop thread (drain, spinForWork).
  std::atomic<bool> _stopRequested{false};
};

// The process's multithreaded apartment.
class MtaImpl final : public ApartmentImpl {
public:
  MtaImpl(RuntimeImpl& runtime, unsigned minThreads, unsigned maxThreads);
  ~MtaImpl() override;

  // Starts the pool threads (after the runtime registered the apartment).
  void start();

  bool post(std::unique_ptr<WorkItem>& item) override;
  void wait(PendingCall& call) override;
  size_t queueDepth() override;

  // One idle pool thread at a time wakes with the transport loop (loop-wake.h), so a request
  // the loop reads is taken at once instead of waking a sleeping thread. Called once, after the
  // transport hub started.
  void wakeWithLoop(const LoopWake& wake);

  // Tears down the apartment and joins the pool. Called once by the runtime.
  void shutdown();
  size_t threadCount();

private:
  void workerLoop(size_t index) noexcept;
  void spawnLocked();
  // Waits as the pool's polling thread (wakeWithLoop); `lock` is held on entry and exit.
  void pollLocked(std::unique_lock<std::mutex>& lock) noexcept;

  const unsigned _minThreads;
  const unsigned _maxThreads;
  std::mutex _mutex;
  std::condition_variable _work;
  std::deque<std::unique_ptr<WorkItem>> _queue;
  std::vector<std::thread> _threads;
  unsigned _idle = 0;
  bool _stopping = false;
  // Waking with the loop (wakeWithLoop), guarded by _mutex but for the atomics.
  LoopWake _wake;
  int _pollerFd = -1;                        // the polling thread's eventfd, while it polls
  bool _pollerWoken = false;                 // _pollerFd was written
  std::atomic<bool> _pollerSpinning{false};  // it will see _queued without a wake-up
  std::atomic<size_t> _queued{0};            // _queue.size(), for the spinning poller
  // The loop woke the polling thread this many times in a row with nothing posted; at
  // kPollerIdleWakes the pool stops polling until the next post().
  static constexpr unsigned kPollerIdleWakes = 16;
  unsigned _pollerIdleWakes = 0;
  bool _shutDown = false;
};

}  // namespace ferry::detail
