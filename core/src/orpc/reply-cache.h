// The reply cache (core/schema/orpc.capnp): the calls this process serves for other processes,
// by caller and call id, from the request's arrival until the caller acknowledges the response,
// the caller's connection closes cleanly, or `retention` after the call completed. A request that
// arrives again — resent by its caller after a lost connection — never runs twice: while the call
// runs the copy is dropped (its response goes where the newest copy came from), and once it is
// done the kept response is sent again.
//
// Bounded: at most `maxEntries` calls and `maxBytes` of kept responses in all, `perCaller` calls
// of one caller, and `perLink` calls and callers that came on one link (a caller past its share,
// or one on a link past its share, is told to retry later): a link that mints caller tokens
// takes no more than its share, and the calls of other links still run. A request that is
// refused keeps nothing. A full cache forgets the oldest answered call of the caller holding the
// most before it refuses anyone. A response too large to keep is answered, on a later copy, with
// outcomeUnknown. Any thread; time is passed in, so tests drive
// it with a clock of their own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <ferry/error.h>

#include "link.h"

namespace ferry::detail::orpc {

// Whose calls: the caller's process id (Request.caller, public) and its token
// (Request.callerToken, known to it alone). Entries of one never answer another.
struct CallerKey {
  uint64_t process = 0;
  uint64_t token = 0;
  auto operator<=>(const CallerKey&) const = default;
};

struct CallerKeyHash {
  size_t operator()(const CallerKey& key) const noexcept {
    return std::hash<uint64_t>()(key.process * 0x9e3779b97f4a7c15ull ^ key.token);
  }
};

class ReplyCache {
public:
  using Clock = std::chrono::steady_clock;
  using Frame = std::shared_ptr<const std::vector<uint8_t>>;

  struct Limits {
    size_t maxEntries = 262144;
    size_t maxBytes = 64u * 1024 * 1024;
    size_t perCaller = 65536;
    size_t perLink = 32768;
    Clock::duration retention = std::chrono::seconds(60);
  };

  // What to do with an arriving request.
  struct Admission {
    enum class Kind {
      run,      // new: run it; its cancel flag is set by a cancel or a clean close of the link
      running,  // a copy of a call that runs: drop it
      replay,   // a copy of a call that is done: send `reply` again
      refuse,   // answer with `code` and `message` without running it
    };
    Kind kind = Kind::run;
    Frame reply;
    Errc code = Errc::ok;
    std::string message;
  };

  explicit ReplyCache(Limits limits) : _limits(limits) {}
  ReplyCache(const ReplyCache&) = delete;
  ~ReplyCache();

  // A request `callId` of `caller` arrived on `link`, acknowledging the responses `acknowledged`
  // (those entries go first). A call admitted to run keeps `canceled` with its entry, to set on
  // a cancel; the caller passes the flag in so that it may share an allocation with what the
  // call needs (the endpoint's reply sink).
  Admission admit(CallerKey caller, uint64_t callId, LinkId link,
                  std::span<const uint64_t> acknowledged, Clock::time_point now,
                  std::shared_ptr<std::atomic<bool>> canceled);

  // The call completed with the response frame `reply`, which is kept (within the limits). Returns
  // the link to send it on: the newest that carried a copy of the request, else `link`.
  LinkId complete(CallerKey caller, uint64_t callId, LinkId link, Frame reply,
                  Clock::time_point now);

  // A cancel frame for `callId` came on `link`: only the link the response goes to may cancel.
  void cancel(CallerKey caller, uint64_t callId, LinkId link);

  // `link`, which carried `caller`'s requests, closed cleanly: the caller went away. Its calls
  // that still run are canceled and nothing of them is kept.
  void dropLink(CallerKey caller, LinkId link);

  // Drops responses kept longer than the retention, and callers without entries that were not
  // seen for twice as long.
  void expire(Clock::time_point now);

  void clear();

  size_t entries() const;
  size_t bytes() const;

private:
  struct Served {
    LinkId origin;  // the link it was admitted on, whose share it takes
    LinkId link;  // where the response goes: the newest link the request came on
    std::shared_ptr<std::atomic<bool>> canceled;  // until done
    bool done = false;
    Frame reply;  // once done; null if too large to keep
    Clock::time_point doneAt{};
  };
  struct Caller {
    std::map<uint64_t, Served> calls;
    // Entries up to this call id were dropped by age: such a request may have run.
    uint64_t forgotten = 0;
    Clock::time_point lastSeen{};
    LinkId origin;  // the link it first came on, whose share it takes
  };
  // What came on one link: calls admitted on it and callers first seen on it.
  struct LinkShare {
    size_t calls = 0;
    size_t callers = 0;
  };
  void forget(std::map<uint64_t, Served>::iterator it, Caller& caller);
  void releaseShare(LinkId link, size_t LinkShare::*what);
  // The cache is full: forgets the oldest answered call of the caller that holds the most, so
  // that a full cache costs its largest holder and never starves the others.
  void evictFromLargest();

  const Limits _limits;
  mutable std::mutex _mutex;
  std::unordered_map<CallerKey, Caller, CallerKeyHash> _callers;
  std::unordered_map<LinkId, LinkShare, LinkIdHash> _links;
  size_t _entries = 0;
  size_t _bytes = 0;
};

}  // namespace ferry::detail::orpc
