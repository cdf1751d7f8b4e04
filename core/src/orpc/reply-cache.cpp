#include "reply-cache.h"

#include "../stats.h"

namespace ferry::detail::orpc {

namespace {

// The node of the last call this thread forgot, emptied, for the next call it admits: requests
// arrive on the network thread, and a call's entry is forgotten when a later request of its
// caller acknowledges it, so admitting one call at a time allocates no node.
template <typename Calls>
typename Calls::node_type& spareNode() {
  thread_local typename Calls::node_type spare;
  return spare;
}

}  // namespace

ReplyCache::~ReplyCache() { clear(); }

ReplyCache::Admission ReplyCache::admit(CallerKey callerId, uint64_t callId, LinkId link,
                                        std::span<const uint64_t> acknowledged,
                                        Clock::time_point now,
                                        std::shared_ptr<std::atomic<bool>> canceled) {
  Admission out;
  std::lock_guard lock(_mutex);
  // Whether a new entry finds no room, once the largest holder gave one up.
  auto full = [&] {
    if (_entries >= _limits.maxEntries) evictFromLargest();
    return _entries >= _limits.maxEntries;
  };
  auto known = _callers.find(callerId);
  if (known == _callers.end()) {
    // A caller is kept only once a call of it runs.
    out.kind = Admission::Kind::refuse;
    out.code = Errc::retryLater;
    bool noRoom = full();  // before `share`: evicting may erase another link's share
    LinkShare& share = _links[link];
    if (noRoom) {
      out.message = "the exporter's reply cache is full";
    } else if (share.calls >= _limits.perLink || share.callers >= _limits.perLink) {
      out.message = "the exporter holds " + std::to_string(share.calls) + " calls and " +
                    std::to_string(share.callers) + " callers of this connection";
    } else {
      known = _callers.emplace(callerId, Caller{}).first;
      known->second.origin = link;
      ++share.callers;
    }
    if (known == _callers.end()) {
      if (share.calls == 0 && share.callers == 0) _links.erase(link);
      stats().replyCacheRefusals.fetch_add(1, std::memory_order_relaxed);
      return out;
    }
  }
  Caller& caller = known->second;
  caller.lastSeen = now;
  for (uint64_t id : acknowledged) {
    auto it = caller.calls.find(id);
    if (it != caller.calls.end() && it->second.done) forget(it, caller);
  }
  auto it = caller.calls.find(callId);
  if (it != caller.calls.end()) {
    stats().duplicateRequests.fetch_add(1, std::memory_order_relaxed);
    it->second.link = link;
    if (!it->second.done) {
      out.kind = Admission::Kind::running;
    } else if (it->second.reply == nullptr) {
      out.kind = Admission::Kind::refuse;
      out.code = Errc::outcomeUnknown;
      out.message = "call " + std::to_string(callId) + " ran, but its response was too large to keep";
    } else {
      out.kind = Admission::Kind::replay;
      out.reply = it->second.reply;
    }
    return out;
  }
  out.kind = Admission::Kind::refuse;
  if (callId <= caller.forgotten) {
    out.code = Errc::outcomeUnknown;
    out.message = "call " + std::to_string(callId) +
                  " may have run: the exporter no longer remembers its response";
  } else if (full()) {
    out.code = Errc::retryLater;
    out.message = "the exporter's reply cache is full";
  } else if (caller.calls.size() >= _limits.perCaller) {
    out.code = Errc::retryLater;
    out.message = "the exporter holds " + std::to_string(caller.calls.size()) +
                  " calls of this caller (running, or answered and not acknowledged)";
  } else if (_links[link].calls >= _limits.perLink) {
    out.code = Errc::retryLater;
    out.message = "the exporter holds " + std::to_string(_links[link].calls) +
                  " calls of this connection (running, or answered and not acknowledged)";
  } else {
    out.kind = Admission::Kind::run;
    ++_links[link].calls;
    Served served;
    served.origin = link;
    served.link = link;
    served.canceled = std::move(canceled);
    auto& spare = spareNode<decltype(caller.calls)>();
    if (spare.empty()) {
      caller.calls.emplace(callId, std::move(served));
    } else {
      spare.key() = callId;
      spare.mapped() = std::move(served);
      caller.calls.insert(std::move(spare));  // callId is not in `calls` (found above)
    }
    ++_entries;
    stats().replyCacheEntries.fetch_add(1, std::memory_order_relaxed);
  }
  if (out.kind == Admission::Kind::refuse) {
    stats().replyCacheRefusals.fetch_add(1, std::memory_order_relaxed);
  }
  return out;
}

LinkId ReplyCache::complete(CallerKey callerId, uint64_t callId, LinkId link, Frame reply,
                            Clock::time_point now) {
  std::lock_guard lock(_mutex);
  auto caller = _callers.find(callerId);
  if (caller == _callers.end()) return link;
  auto it = caller->second.calls.find(callId);
  if (it == caller->second.calls.end() || it->second.done) return link;
  it->second.done = true;
  it->second.doneAt = now;
  // A done call has nothing to cancel. The flag may share an allocation with the reply (the
  // endpoint's reply sink), which must go with the reply when it is not kept.
  it->second.canceled = nullptr;
  if (_bytes + reply->size() <= _limits.maxBytes) {
    _bytes += reply->size();
    it->second.reply = std::move(reply);
  }
  return it->second.link;
}

void ReplyCache::cancel(CallerKey callerId, uint64_t callId, LinkId link) {
  std::lock_guard lock(_mutex);
  auto caller = _callers.find(callerId);
  if (caller == _callers.end()) return;
  auto served = caller->second.calls.find(callId);
  if (served != caller->second.calls.end() && served->second.link == link &&
      served->second.canceled != nullptr) {
    served->second.canceled->store(true, std::memory_order_release);
  }
}

void ReplyCache::dropLink(CallerKey callerId, LinkId link) {
  std::lock_guard lock(_mutex);
  auto caller = _callers.find(callerId);
  if (caller == _callers.end()) return;
  auto& calls = caller->second.calls;
  for (auto it = calls.begin(); it != calls.end();) {
    auto next = std::next(it);
    if (it->second.link == link) {
      if (it->second.canceled) it->second.canceled->store(true, std::memory_order_release);
      forget(it, caller->second);
    }
    it = next;
  }
  // Nothing is left to answer again, and the caller is gone with the link it came on.
  if (calls.empty() && caller->second.origin == link) {
    releaseShare(link, &LinkShare::callers);
    _callers.erase(caller);
  }
}

void ReplyCache::expire(Clock::time_point now) {
  std::lock_guard lock(_mutex);
  for (auto c = _callers.begin(); c != _callers.end();) {
    Caller& caller = c->second;
    for (auto it = caller.calls.begin(); it != caller.calls.end();) {
      auto next = std::next(it);
      if (it->second.done && now - it->second.doneAt > _limits.retention) {
        caller.forgotten = std::max(caller.forgotten, it->first);
        forget(it, caller);
      }
      it = next;
    }
    // The forgotten mark outlives the entries by as long again.
    bool idle = caller.calls.empty() && now - caller.lastSeen > 2 * _limits.retention;
    if (idle) releaseShare(caller.origin, &LinkShare::callers);
    c = idle ? _callers.erase(c) : std::next(c);
  }
  std::erase_if(_links, [](const auto& share) {
    return share.second.calls == 0 && share.second.callers == 0;
  });
}

void ReplyCache::clear() {
  std::lock_guard lock(_mutex);
  stats().replyCacheEntries.fetch_sub(static_cast<int64_t>(_entries), std::memory_order_relaxed);
  _callers.clear();
  _links.clear();
  _entries = 0;
  _bytes = 0;
}

size_t ReplyCache::entries() const {
  std::lock_guard lock(_mutex);
  return _entries;
}

size_t ReplyCache::bytes() const {
  std::lock_guard lock(_mutex);
  return _bytes;
}

void ReplyCache::forget(std::map<uint64_t, Served>::iterator it, Caller& caller) {
  if (it->second.reply != nullptr) _bytes -= it->second.reply->size();
  releaseShare(it->second.origin, &LinkShare::calls);
  auto& spare = spareNode<decltype(caller.calls)>();
  spare = caller.calls.extract(it);
  spare.mapped() = Served{};
  --_entries;
  stats().replyCacheEntries.fetch_sub(1, std::memory_order_relaxed);
}

void ReplyCache::releaseShare(LinkId link, size_t LinkShare::*what) {
  auto share = _links.find(link);
  if (share == _links.end()) return;
  // A share at zero stays until expire(), so that a link whose calls come one at a time does not
  // remove and add it on every call.
  --(share->second.*what);
}

void ReplyCache::evictFromLargest() {
  Caller* largest = nullptr;
  for (auto& [key, caller] : _callers) {
    if (largest == nullptr || caller.calls.size() > largest->calls.size()) largest = &caller;
  }
  if (largest == nullptr) return;
  for (auto it = largest->calls.begin(); it != largest->calls.end(); ++it) {
    if (!it->second.done) continue;
    // Its copy, should one come, may have run: it is answered outcomeUnknown.
    largest->forgotten = std::max(largest->forgotten, it->first);
    forget(it, *largest);
    stats().replyCacheEvictions.fetch_add(1, std::memory_order_relaxed);
    return;
  }
}

}  // namespace ferry::detail::orpc
