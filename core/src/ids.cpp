#include <ferry/ids.h>

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ostream>

#include <ferry/error.h>

#include "ids-impl.h"

namespace ferry {

namespace detail {

uint64_t randomNonZero64() {
  for (;;) {
    uint64_t value = 0;
    ssize_t got = getrandom(&value, sizeof value, 0);
    if (got == static_cast<ssize_t>(sizeof value)) {
      if (value != 0) return value;
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    FERRY_FAIL(Errc::internal, "the kernel's random generator (getrandom) failed: {}",
               got < 0 ? std::strerror(errno) : "it returned fewer bytes than asked");
  }
}

}  // namespace detail

Oxid newOxid() { return Oxid(detail::randomNonZero64()); }
Oid newOid() { return Oid(detail::randomNonZero64()); }
Ipid newIpid() { return Ipid(detail::randomNonZero64(), detail::randomNonZero64()); }
CausalityId newCausalityId() {
  return CausalityId(detail::randomNonZero64(), detail::randomNonZero64());
}

namespace {
std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}
}  // namespace

std::string toString(Iid id) { return hex64(id.value); }
std::string toString(Oxid id) { return hex64(id.value); }
std::string toString(Oid id) { return hex64(id.value); }
std::string toString(Ipid id) { return hex64(id.hi) + hex64(id.lo); }
std::string toString(CausalityId id) { return hex64(id.hi) + hex64(id.lo); }

std::ostream& operator<<(std::ostream& out, Iid id) { return out << toString(id); }
std::ostream& operator<<(std::ostream& out, Oxid id) { return out << toString(id); }
std::ostream& operator<<(std::ostream& out, Oid id) { return out << toString(id); }
std::ostream& operator<<(std::ostream& out, Ipid id) { return out << toString(id); }
std::ostream& operator<<(std::ostream& out, CausalityId id) { return out << toString(id); }

}  // namespace ferry
