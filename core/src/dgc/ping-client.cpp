#include "ping-client.h"

#include <capnp/message.h>

#include "../log.h"
#include "../orpc/frame.h"
#include "../stats.h"
#include "ping.capnp.h"

namespace ferry::detail::dgc {

namespace {
// The most OIDs one ping adds or removes (ping.capnp); the rest go in the next periods.
constexpr size_t kMaxListEntries = 65536;
}  // namespace

void PingSet::leave(Oid oid) noexcept {
  std::lock_guard lock(_mutex);
  auto it = _members.find(oid.value);
  if (it == _members.end() || --it->second > 0) return;
  _members.erase(it);
  _pending[oid.value] = false;
}

std::shared_ptr<PingSet> PingClient::join(uint64_t exporterProcess,
                                          const StringBindingData& binding, Oid oid) {
  std::shared_ptr<PingSet> set;
  {
    std::lock_guard lock(_mutex);
    auto& slot = _byProcess[exporterProcess];
    if (slot == nullptr || slot->collected()) {
      slot = std::make_shared<PingSet>(_nextId++, exporterProcess, binding);
      _byId[slot->id] = slot;
    }
    set = slot;
  }
  std::lock_guard lock(set->_mutex);
  if (set->_members[oid.value]++ == 0) set->_pending[oid.value] = true;
  return set;
}

std::vector<PingClient::Outgoing> PingClient::due(Clock::time_point now) {
  std::vector<std::shared_ptr<PingSet>> sets;
  {
    std::lock_guard lock(_mutex);
    for (auto it = _byProcess.begin(); it != _byProcess.end();) {
      std::shared_ptr<PingSet>& set = it->second;
      bool empty;
      {
        std::lock_guard setLock(set->_mutex);
        empty = set->_members.empty();
      }
      if (empty || set->collected()) {
        // Nothing held there any more: the exporter forgets this client after three periods.
        _byId.erase(set->id);
        it = _byProcess.erase(it);
        continue;
      }
      sets.push_back(set);
      ++it;
    }
  }
  std::vector<Outgoing> out;
  for (const auto& set : sets) {
    std::lock_guard lock(set->_mutex);
    bool fresh = set->_sequence == 0;
    if (!fresh && now - set->_lastSent < _period) continue;
    set->_lastSent = now;
    uint64_t sequence = ++set->_sequence;
    capnp::MallocMessageBuilder message;
    auto ping = message.initRoot<wire::Ping>();
    ping.setCaller(_caller);
    ping.setCallerToken(_callerToken);
    ping.setSetId(set->_setId);
    ping.setSequence(sequence);
    // A new set (setId 0) starts from nothing at the exporter: it carries every member.
    std::vector<std::pair<uint64_t, bool>> carried;
    if (set->_setId == 0) {
      set->_pending.clear();
      for (const auto& [oid, count] : set->_members) set->_pending[oid] = true;
      set->_sent.clear();
    }
    size_t adds = 0;
    size_t removes = 0;
    for (const auto& [oid, present] : set->_pending) {
      size_t& n = present ? adds : removes;
      if (n == kMaxListEntries) continue;
      ++n;
      carried.emplace_back(oid, present);
    }
    auto added = ping.initAdded(static_cast<unsigned>(adds));
    auto removed = ping.initRemoved(static_cast<unsigned>(removes));
    unsigned a = 0;
    unsigned r = 0;
    for (const auto& [oid, present] : carried) {
      if (present) {
        added.set(a++, oid);
      } else {
        removed.set(r++, oid);
      }
    }
    set->_sent[sequence] = std::move(carried);
    std::vector<uint8_t> frame = orpc::encodeFrame(orpc::FrameKind::ping, set->id, Oxid(), message);
    stats().pingsSent.fetch_add(1, std::memory_order_relaxed);
    stats().pingBytesSent.fetch_add(static_cast<int64_t>(frame.size()), std::memory_order_relaxed);
    out.push_back(Outgoing{set->binding, std::move(frame)});
  }
  return out;
}

void PingClient::answered(uint64_t id, uint16_t code, uint64_t setId, uint64_t sequence) {
  std::shared_ptr<PingSet> set;
  {
    std::lock_guard lock(_mutex);
    auto it = _byId.find(id);
    if (it == _byId.end()) return;
    set = it->second.lock();
    if (set == nullptr) return;
    if (code != 0) {
      // The exporter collected this process's references there: the set's proxies are stale.
      FERRY_LOG(warn, "distributed GC: process " << std::hex << set->exporterProcess << std::dec
                                                 << " released this process's objects there "
                                                    "(it missed three ping periods); their "
                                                    "proxies fail from now on");
      set->_collected.store(true, std::memory_order_release);
      _byId.erase(it);
      auto slot = _byProcess.find(set->exporterProcess);
      if (slot != _byProcess.end() && slot->second == set) _byProcess.erase(slot);
      return;
    }
  }
  std::lock_guard lock(set->_mutex);
  if (set->_setId == 0) set->_setId = setId;
  if (setId != set->_setId) return;
  // The lists of `sequence` and every ping before it are applied.
  for (auto it = set->_sent.begin(); it != set->_sent.end() && it->first <= sequence;) {
    for (const auto& [oid, present] : it->second) {
      auto pending = set->_pending.find(oid);
      if (pending != set->_pending.end() && pending->second == present) {
        set->_pending.erase(pending);
      }
    }
    it = set->_sent.erase(it);
  }
}

size_t PingClient::sets() const {
  std::lock_guard lock(_mutex);
  return _byProcess.size();
}

}  // namespace ferry::detail::dgc
