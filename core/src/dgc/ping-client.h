// The client side of distributed GC (core/schema/ping.capnp): one ping set per exporter process
// this process holds objects of, and the pings that keep them alive, sent by the endpoint's tick
// on the I/O thread (never by an apartment: a blocked STA keeps its objects).
//
// A proxy manager of another process's object (not noPing) joins the set of that process when
// it is made and leaves it when it goes; it holds the set, and its proxies fail with
// objectNotConnected once the exporter answered that the set was collected.
//
// Thread-safety: join and leave from any thread; due and answered on the I/O thread. Each set has
// a mutex; the client's own map another.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <ferry/ids.h>

#include "../objref.h"

namespace ferry::detail::dgc {

class PingSet {
public:
  PingSet(uint64_t id, uint64_t exporterProcess, StringBindingData binding)
      : id(id), exporterProcess(exporterProcess), binding(std::move(binding)) {}

  // A proxy manager of `oid` goes (any thread).
  void leave(Oid oid) noexcept;
  // The exporter collected the set: its proxies fail.
  bool collected() const noexcept { return _collected.load(std::memory_order_acquire); }

  const uint64_t id;  // this process's name for it: the ping frames' call id
  const uint64_t exporterProcess;
  const StringBindingData binding;  // where the pings go

private:
  friend class PingClient;
  std::mutex _mutex;
  std::unordered_map<uint64_t, uint32_t> _members;  // OID → proxy managers holding it
  // Changes the exporter has not acknowledged: OID → whether it is in the set now.
  std::unordered_map<uint64_t, bool> _pending;
  // What each unacknowledged ping carried, by sequence.
  std::map<uint64_t, std::vector<std::pair<uint64_t, bool>>> _sent;
  uint64_t _setId = 0;  // the exporter's; 0 until its first reply
  uint64_t _sequence = 0;
  std::chrono::steady_clock::time_point _lastSent{};
  std::atomic<bool> _collected{false};
};

class PingClient {
public:
  using Clock = std::chrono::steady_clock;

  PingClient(Clock::duration period, uint64_t caller, uint64_t callerToken)
      : _period(period), _caller(caller), _callerToken(callerToken) {}
  PingClient(const PingClient&) = delete;

  // A proxy manager of `oid`, of process `exporterProcess` reached through `binding`, is made:
  // the set it joined.
  std::shared_ptr<PingSet> join(uint64_t exporterProcess, const StringBindingData& binding,
                                Oid oid);

  // The pings due at `now`: one frame per set whose period elapsed (or that has changes and was
  // never sent). Sets whose members all left are dropped.
  struct Outgoing {
    StringBindingData binding;
    std::vector<uint8_t> frame;
  };
  std::vector<Outgoing> due(Clock::time_point now);

  // A PingReply frame for set `id` (the frame's call id).
  void answered(uint64_t id, uint16_t code, uint64_t setId, uint64_t sequence);

  size_t sets() const;

private:
  const Clock::duration _period;
  const uint64_t _caller;
  const uint64_t _callerToken;
  mutable std::mutex _mutex;
  uint64_t _nextId = 1;
  std::unordered_map<uint64_t, std::shared_ptr<PingSet>> _byProcess;
  std::unordered_map<uint64_t, std::weak_ptr<PingSet>> _byId;
};

}  // namespace ferry::detail::dgc
