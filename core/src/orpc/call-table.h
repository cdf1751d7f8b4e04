// The outbound call table: the calls this process sent to other processes, by call id, until
// their responses come. Any thread: callers add their calls and the I/O thread answers them.
//
// Each call remembers the link it went out on (a response counts only on that link) and, for a
// call that may be sent again, its frame as sent: when the link is lost, the call goes out again
// on a new connection, flagged as resent, at most kMaxResends times, and the exporter's reply
// cache (reply-cache.h) keeps it from running twice. The ids of calls whose responses came are
// acknowledged in the next request on the same link (Request.acknowledged), so that the exporter
// can forget those responses early.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ferry/error.h>

#include "../channel.h"
#include "../objref.h"
#include "link.h"

namespace ferry::detail::orpc {

class CallTable {
public:
  // A call sent again at most this many times after losing its link.
  static constexpr int kMaxResends = 2;
  // Request.acknowledged carries at most this many ids; the rest wait for the following requests.
  static constexpr size_t kMaxAcksPerRequest = 64;
  // Ids kept for acknowledgement per link (beyond, the exporter's entries are left to expire):
  // a burst of up to this many calls is acknowledged in full by the calls that follow it, at 8
  // bytes an id.
  static constexpr size_t kMaxAcksKept = 65536;

  struct Entry {
    std::shared_ptr<OutboundCall> call;
    LinkId link;
    // The request frame as sent; null for a call that is not sent again.
    std::shared_ptr<std::vector<uint8_t>> frame;
    // Where it went, for a new connection after a lost one.
    StringBindingData binding;
    int resends = 0;
  };

  // A process-unique call id, never 0.
  static uint64_t nextCallId() noexcept;

  void add(uint64_t callId, Entry entry);

  // The response to `callId` came on `link`: the call, now out of the table, with its id kept for
  // acknowledgement; null for an unknown call or one that went out on another link.
  std::shared_ptr<OutboundCall> answer(uint64_t callId, LinkId link);

  // Takes back a call that went out on `link` (it could not be written there); null as answer().
  std::optional<Entry> take(uint64_t callId, LinkId link);

  // The ids of one Request.acknowledged, held in place: taking them allocates nothing.
  struct Acknowledgements {
    std::array<uint64_t, kMaxAcksPerRequest> ids;
    size_t count = 0;
    bool empty() const noexcept { return count == 0; }
    size_t size() const noexcept { return count; }
    const uint64_t* begin() const noexcept { return ids.data(); }
    const uint64_t* end() const noexcept { return ids.data() + count; }
  };
  // The ids to acknowledge in the next request on `link` (at most kMaxAcksPerRequest, the newest
  // of those kept), taken out of the table.
  Acknowledgements acknowledgementsFor(LinkId link);

  // The link a call in the table went out on; none once it is answered or taken.
  std::optional<LinkId> linkOf(uint64_t callId) const;

  // `link` is gone. With `resend`, the calls on it that have a frame and resends left come back,
  // out of the table, to be sent again; every other call on it fails with `code` — except that a
  // call sent before on a lost link fails with outcomeUnknown where `code` is unavailable (a copy
  // may have run).
  std::vector<std::pair<uint64_t, Entry>> dropLink(LinkId link, Errc code, std::string_view why,
                                                   bool resend);

  // Fails every call (the runtime is stopping).
  void failAll(Errc code, std::string_view why);

  size_t size() const;
  // The calls in the table by the link each went out on.
  std::unordered_map<LinkId, size_t, LinkIdHash> sizeByLink() const;

private:
  using Calls = std::unordered_map<uint64_t, Entry>;
  mutable std::mutex _mutex;
  Calls _calls;
  // The node of the last answered call, emptied, for the next add(): with one call at a time on
  // a link, adding and answering allocate nothing.
  Calls::node_type _spare;
  std::unordered_map<LinkId, std::vector<uint64_t>, LinkIdHash> _acks;
};

}  // namespace ferry::detail::orpc
