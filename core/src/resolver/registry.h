// ferryd's registry: the apartments other processes of this host registered (OXID → resolution),
// each with the process that registered it. Only that process may replace or withdraw an entry:
// over the connection that registered it, or over a newer one of the same pid and uid (the
// kernel's SO_PEERCRED; a process that reconnects after ferryd restarted, or after its
// connection was lost). A registrant's entries go when its connection closes. One thread (the
// I/O loop's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "../orpc/link.h"
#include "resolution.h"

namespace ferry::detail {

class Registry {
public:
  // Who registers: the link it registers over, and its kernel credentials if it has them.
  struct Registrant {
    orpc::LinkId link;
    bool hasCredentials = false;
    uint32_t uid = 0;
    int32_t pid = 0;
  };

  enum class Outcome {
    added,     // a new entry, or one of the same registrant replaced
    withdrawn,
    refused,   // the entry belongs to another process (counted, to be logged by the caller)
    unknown,   // a withdrawal of an OXID not registered
  };

  Outcome add(Resolution resolution, const Registrant& registrant);
  Outcome withdraw(Oxid oxid, const Registrant& registrant);
  // The link closed: its entries go. Returns how many.
  size_t forget(orpc::LinkId link);

  // The entry, or null; valid until the next change.
  const Resolution* find(Oxid oxid) const;
  // Who registered `oxid` (for a refusal's message); null when no one did.
  const Registrant* owner(Oxid oxid) const;
  size_t size() const noexcept { return _entries.size(); }

private:
  struct Entry {
    Resolution resolution;
    Registrant registrant;
  };
  bool mayChange(const Entry& entry, const Registrant& registrant) const noexcept;

  std::unordered_map<Oxid, Entry> _entries;
};

}  // namespace ferry::detail
