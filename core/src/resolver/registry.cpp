#include "registry.h"

#include "../stats.h"

namespace ferry::detail {

bool Registry::mayChange(const Entry& entry, const Registrant& registrant) const noexcept {
  return entry.registrant.link == registrant.link ||
         (registrant.hasCredentials && entry.registrant.hasCredentials &&
          entry.registrant.pid == registrant.pid && entry.registrant.uid == registrant.uid);
}

Registry::Outcome Registry::add(Resolution resolution, const Registrant& registrant) {
  auto it = _entries.find(resolution.oxid);
  if (it != _entries.end() && !mayChange(it->second, registrant)) {
    stats().registrationsRefused.fetch_add(1, std::memory_order_relaxed);
    return Outcome::refused;
  }
  Oxid oxid = resolution.oxid;
  _entries[oxid] = Entry{std::move(resolution), registrant};
  return Outcome::added;
}

Registry::Outcome Registry::withdraw(Oxid oxid, const Registrant& registrant) {
  auto it = _entries.find(oxid);
  if (it == _entries.end()) return Outcome::unknown;
  if (!mayChange(it->second, registrant)) {
    stats().registrationsRefused.fetch_add(1, std::memory_order_relaxed);
    return Outcome::refused;
  }
  _entries.erase(it);
  return Outcome::withdrawn;
}

size_t Registry::forget(orpc::LinkId link) {
  return std::erase_if(_entries, [&](const auto& e) { return e.second.registrant.link == link; });
}

const Resolution* Registry::find(Oxid oxid) const {
  auto it = _entries.find(oxid);
  return it == _entries.end() ? nullptr : &it->second.resolution;
}

const Registry::Registrant* Registry::owner(Oxid oxid) const {
  auto it = _entries.find(oxid);
  return it == _entries.end() ? nullptr : &it->second.registrant;
}

}  // namespace ferry::detail
