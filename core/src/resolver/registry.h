// ferryd's registry: the apartments other processes of this host registered (OXID → resolution)
// and the names they published objects under (name → OBJREF), each with the process that
// registered it. Only that process may replace or withdraw an entry:
// over the connection that registered it, or over a newer one of the same pid and uid (the
// kernel's SO_PEERCRED; a process that reconnects after ferryd restarted, or after its
// connection was lost). A registrant's entries go when its connection closes. One thread (the
// I/O loop's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <ferry/marshal.h>

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
  // The link closed: its entries (apartments and names) go. Returns how many.
  size_t forget(orpc::LinkId link);

  // The entry, or null; valid until the next change.
  const Resolution* find(Oxid oxid) const;
  // Who registered `oxid` (for a refusal's message); null when no one did.
  const Registrant* owner(Oxid oxid) const;
  size_t size() const noexcept { return _entries.size(); }

  // A published name: the object's table-strong OBJREF and the publishing process's id.
  struct Name {
    ObjRefBytes objref;
    uint64_t processId = 0;
    Registrant registrant;
  };
  // added (a new name, or the same registrant's replaced) or refused (another process's).
  Outcome publish(const std::string& name, Name entry);
  Outcome withdrawName(const std::string& name, const Registrant& registrant);
  const Name* findName(const std::string& name) const;
  const std::map<std::string, Name>& names() const noexcept { return _names; }

  // A process's admin object (resolver.capnp AdminRegistration), one per registering link.
  struct Admin {
    ObjRefBytes objref;
    bool network = false;  // it serves other hosts too
    uint64_t processId = 0;
    Registrant registrant;
  };
  // Records the admin object of the process on `admin.registrant.link`, or forgets it (an empty
  // objref).
  void setAdmin(Admin admin);
  // A process with something registered (an apartment, a name or its admin object): one per
  // link, sorted by process id. `admin` is valid until the next change.
  struct Process {
    uint64_t processId = 0;
    Registrant registrant;
    const Admin* admin = nullptr;
  };
  std::vector<Process> processes() const;

private:
  struct Entry {
    Resolution resolution;
    Registrant registrant;
  };
  static bool mayChange(const Registrant& owner, const Registrant& registrant) noexcept;

  std::unordered_map<Oxid, Entry> _entries;
  std::map<std::string, Name> _names;
  std::unordered_map<orpc::LinkId, Admin, orpc::LinkIdHash> _admins;
};

}  // namespace ferry::detail
