#include "ping-server.h"

#include "../apartment-impl.h"
#include "../ids-impl.h"
#include "../log.h"
#include "../runtime-impl.h"
#include "../stats.h"

namespace ferry::detail::dgc {

void PingServer::heard(const ClientKey& client, Clock::time_point now) {
  std::lock_guard lock(_mutex);
  _clients[client].lastHeard = now;
}

void PingServer::addOidLocked(Client& client, uint64_t oid) {
  if (client.oids.insert(oid).second) ++_pingedBy[oid];
}

void PingServer::removeOidLocked(Client& client, uint64_t oid) {
  if (client.oids.erase(oid) == 0) return;
  auto it = _pingedBy.find(oid);
  if (it != _pingedBy.end() && --it->second == 0) _pingedBy.erase(it);
}

PingServer::Reply PingServer::ping(const ClientKey& key, uint64_t setId, uint64_t sequence,
                                   std::span<const uint64_t> added,
                                   std::span<const uint64_t> removed, Clock::time_point now) {
  std::lock_guard lock(_mutex);
  Client& client = _clients[key];
  client.lastHeard = now;
  if (setId == 0) {
    // The client's whole set (its first ping, sent again until answered, or its first after a
    // collection): one set per client, whose members it lists afresh.
    for (uint64_t oid : std::vector<uint64_t>(client.oids.begin(), client.oids.end())) {
      removeOidLocked(client, oid);
    }
    if (client.setId == 0) client.setId = randomNonZero64();
    client.sequence = 0;
  } else if (setId != client.setId) {
    // Collected (or never made here): the client's proxies of this process are stale.
    return Reply{static_cast<uint16_t>(Errc::objectNotConnected), setId, sequence};
  }
  if (sequence > client.sequence) {
    client.sequence = sequence;
    for (uint64_t oid : added) addOidLocked(client, oid);
    for (uint64_t oid : removed) removeOidLocked(client, oid);
  }
  return Reply{0, client.setId, sequence};
}

std::vector<PingServer::Expired> PingServer::expire(Clock::time_point now) {
  std::vector<Expired> out;
  std::lock_guard lock(_mutex);
  for (auto it = _clients.begin(); it != _clients.end();) {
    Client& client = it->second;
    if (now - client.lastHeard <= 3 * _period) {
      ++it;
      continue;
    }
    Expired expired{it->first, {client.oids.begin(), client.oids.end()}};
    for (uint64_t oid : expired.oids) removeOidLocked(client, oid);
    out.push_back(std::move(expired));
    it = _clients.erase(it);
  }
  return out;
}

void PingServer::collect(RuntimeImpl& runtime, const std::vector<Expired>& expired) {
  if (expired.empty()) return;
  std::vector<std::shared_ptr<ApartmentImpl>> apartments = runtime.apartments();
  auto stillPinged = [this](Oid oid) { return pinged(oid); };
  for (const Expired& gone : expired) {
    uint64_t refs = 0;
    for (const auto& apartment : apartments) {
      Retired retired;
      refs += apartment->exports().collectClient(gone.client, stillPinged, retired);
      // Transit references of the objects no live set names any more go with this set.
      for (uint64_t oid : gone.oids) {
        if (!pinged(Oid(oid))) refs += apartment->exports().dropTransit(Oid(oid), retired);
      }
      if (retired.empty()) continue;
      // Released in the objects' apartment.
      auto task = makeTask([objects = std::move(retired)]() mutable { objects.clear(); });
      if (!apartment->post(task)) {
        FERRY_LOG(debug, "distributed GC: apartment closing; its objects go with it");
      }
    }
    if (refs > 0) {
      stats().pingSetsCollected.fetch_add(1, std::memory_order_relaxed);
      stats().refsCollected.fetch_add(static_cast<int64_t>(refs), std::memory_order_relaxed);
      FERRY_LOG(info, "distributed GC: process " << std::hex << gone.client.process << std::dec
                                                 << " stopped pinging; released its " << refs
                                                 << " reference(s)");
    }
  }
}

bool PingServer::pinged(Oid oid) const {
  std::lock_guard lock(_mutex);
  return _pingedBy.contains(oid.value);
}

size_t PingServer::clients() const {
  std::lock_guard lock(_mutex);
  return _clients.size();
}

}  // namespace ferry::detail::dgc
