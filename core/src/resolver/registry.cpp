#include "registry.h"

#include <algorithm>

#include "../stats.h"

namespace ferry::detail {

bool Registry::mayChange(const Registrant& owner, const Registrant& registrant) noexcept {
  return owner.link == registrant.link ||
         (registrant.hasCredentials && owner.hasCredentials && owner.pid == registrant.pid &&
          owner.uid == registrant.uid);
}

Registry::Outcome Registry::add(Resolution resolution, const Registrant& registrant) {
  auto it = _entries.find(resolution.oxid);
  if (it != _entries.end() && !mayChange(it->second.registrant, registrant)) {
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
  if (!mayChange(it->second.registrant, registrant)) {
    stats().registrationsRefused.fetch_add(1, std::memory_order_relaxed);
    return Outcome::refused;
  }
  _entries.erase(it);
  return Outcome::withdrawn;
}

size_t Registry::forget(orpc::LinkId link) {
  auto ofLink = [&](const auto& e) { return e.second.registrant.link == link; };
  return std::erase_if(_entries, ofLink) + std::erase_if(_names, ofLink) +
         std::erase_if(_admins, ofLink);
}

void Registry::setAdmin(Admin admin) {
  orpc::LinkId link = admin.registrant.link;
  if (admin.objref.empty()) {
    _admins.erase(link);
  } else {
    _admins[link] = std::move(admin);
  }
}

std::vector<Registry::Process> Registry::processes() const {
  std::unordered_map<orpc::LinkId, Process, orpc::LinkIdHash> byLink;
  auto note = [&](uint64_t processId, const Registrant& registrant) {
    Process& p = byLink[registrant.link];
    p.processId = processId;
    p.registrant = registrant;
  };
  for (const auto& [oxid, entry] : _entries) note(entry.resolution.processId, entry.registrant);
  for (const auto& [name, entry] : _names) note(entry.processId, entry.registrant);
  for (const auto& [link, admin] : _admins) {
    note(admin.processId, admin.registrant);
    byLink[link].admin = &admin;
  }
  std::vector<Process> out;
  out.reserve(byLink.size());
  for (auto& [link, process] : byLink) out.push_back(process);
  std::sort(out.begin(), out.end(),
            [](const Process& a, const Process& b) { return a.processId < b.processId; });
  return out;
}

Registry::Outcome Registry::publish(const std::string& name, Name entry) {
  auto it = _names.find(name);
  if (it != _names.end() && !mayChange(it->second.registrant, entry.registrant)) {
    stats().registrationsRefused.fetch_add(1, std::memory_order_relaxed);
    return Outcome::refused;
  }
  _names[name] = std::move(entry);
  return Outcome::added;
}

Registry::Outcome Registry::withdrawName(const std::string& name, const Registrant& registrant) {
  auto it = _names.find(name);
  if (it == _names.end()) return Outcome::unknown;
  if (!mayChange(it->second.registrant, registrant)) {
    stats().registrationsRefused.fetch_add(1, std::memory_order_relaxed);
    return Outcome::refused;
  }
  _names.erase(it);
  return Outcome::withdrawn;
}

const Registry::Name* Registry::findName(const std::string& name) const {
  auto it = _names.find(name);
  return it == _names.end() ? nullptr : &it->second;
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
