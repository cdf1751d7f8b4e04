// The exporter side of distributed GC (core/schema/ping.capnp): when each client of this process
// was last heard from, the OIDs its ping set names, and the collection of clients silent for three
// ping periods. Time is passed in, so tests drive it with a clock of their own.
//
// Thread-safety: any thread; one mutex. collect() takes the export tables' locks after releasing
// its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../export-table.h"

namespace ferry::detail {
class RuntimeImpl;
}

namespace ferry::detail::dgc {

class PingServer {
public:
  using Clock = std::chrono::steady_clock;

  explicit PingServer(Clock::duration period) : _period(period) {}
  PingServer(const PingServer&) = delete;

  // A request from `client` arrived: calls count as liveness, as in DCOM.
  void heard(const ClientKey& client, Clock::time_point now);

  struct Reply {
    uint16_t code = 0;  // 0 or Errc::objectNotConnected (an unknown set)
    uint64_t setId = 0;
    uint64_t sequence = 0;
  };
  // A Ping from `client`: applies its lists (unless an older copy) and says what to answer.
  Reply ping(const ClientKey& client, uint64_t setId, uint64_t sequence,
             std::span<const uint64_t> added, std::span<const uint64_t> removed,
             Clock::time_point now);

  // A client silent for three periods, forgotten: the OIDs its set named.
  struct Expired {
    ClientKey client;
    std::vector<uint64_t> oids;
  };
  std::vector<Expired> expire(Clock::time_point now);

  // Releases, in every apartment of `runtime`, the references of the clients expire() returned
  // (ping.capnp says how); objects whose last reference went are released in their apartment.
  void collect(RuntimeImpl& runtime, const std::vector<Expired>& expired);

  // Whether a live set names `oid`.
  bool pinged(Oid oid) const;
  size_t clients() const;

private:
  struct Client {
    Clock::time_point lastHeard{};
    uint64_t setId = 0;  // 0: no set yet
    uint64_t sequence = 0;
    std::unordered_set<uint64_t> oids;
  };
  void addOidLocked(Client& client, uint64_t oid);
  void removeOidLocked(Client& client, uint64_t oid);

  const Clock::duration _period;
  mutable std::mutex _mutex;
  std::unordered_map<ClientKey, Client, ClientKeyHash> _clients;
  std::unordered_map<uint64_t, uint32_t> _pingedBy;  // OID → live sets naming it
};

}  // namespace ferry::detail::dgc
