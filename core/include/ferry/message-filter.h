// The STA message filter (COM's IMessageFilter): an STA decides, call by call, whether to serve
// an incoming call now, and how its own rejected calls are retried.
//
// Incoming calls are classified by their causality id:
//   topLevel             the STA is not waiting on a call of its own;
//   nested               the STA waits on an outgoing call and this call belongs to the same
//                        causality (a callback of the chain it started or serves);
//   topLevelCallPending  the STA waits on an outgoing call and this call is unrelated to it.
// Calls to the apartment's RemUnknown (reference counting, queryInterface) are always served.
//
// A rejected call consumes nothing: the server never unmarshals its interface parameters; the
// caller resends them on retry or releases them when it gives up.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include <ferry/api.h>
#include <ferry/ids.h>

namespace ferry {

enum class CallType : uint8_t { topLevel, nested, topLevelCallPending };
enum class FilterVerdict : uint8_t { handle, reject, retryLater };

struct IncomingCallInfo {
  CallType type;
  uint64_t interfaceId;
  uint16_t methodId;
  CausalityId causality;
};

class FERRY_API MessageFilter {
public:
  virtual ~MessageFilter() = default;

  // Server side: on the STA's thread, before each incoming call. An exception counts as handle.
  // reject → the caller gets callRejected; retryLater → retryLater (unless its filter retries).
  virtual FilterVerdict handleIncomingCall(const IncomingCallInfo& call) = 0;

  // Client side: a call this STA made came back rejected (`verdict` is reject or retryLater)
  // after `attempt` tries (1 for the first). Return a delay after which the call is sent again,
  // or nullopt to give up. The STA keeps serving incoming calls during the delay. The default
  // gives up at once.
  virtual std::optional<std::chrono::milliseconds> retryRejectedCall(FilterVerdict verdict,
                                                                     int attempt) {
    (void)verdict;
    (void)attempt;
    return std::nullopt;
  }
};

// Installs `filter` for the calling thread's STA (null removes it) and returns the previous one.
// Without a filter every call is served and rejected calls are not retried, so the default never
// deadlocks. Throws invalidArgument in the MTA (it has no message filter) and notInitialized
// outside any apartment.
FERRY_API std::shared_ptr<MessageFilter> setMessageFilter(std::shared_ptr<MessageFilter> filter);

}  // namespace ferry
