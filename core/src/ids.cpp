#include <ferry/ids.h>

#include <pthread.h>
#include <sys/random.h>

#include <atomic>
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
namespace {

// Causality ids need uniqueness, not secrecy (nothing is granted to whoever knows one): a random
// prefix per process, drawn once, and a counter, so a top-level call costs no system call. A
// forked child draws a prefix of its own, so parent and child never hand out the same id.
struct CausalitySource {
  std::atomic<uint64_t> prefix{0};
  std::atomic<uint64_t> counter{0};
};

CausalitySource& causalitySource() {
  static CausalitySource* source = [] {
    auto* s = new CausalitySource;  // never destroyed: ids may be drawn during exit
    s->prefix.store(detail::randomNonZero64(), std::memory_order_relaxed);
    pthread_atfork(nullptr, nullptr, [] {
      causalitySource().prefix.store(0, std::memory_order_relaxed);
    });
    return s;
  }();
  return *source;
}

}  // namespace

CausalityId newCausalityId() {
  CausalitySource& source = causalitySource();
  uint64_t prefix = source.prefix.load(std::memory_order_relaxed);
  if (prefix == 0) {
    // The first id in a forked child.
    uint64_t fresh = detail::randomNonZero64();
    if (source.prefix.compare_exchange_strong(prefix, fresh, std::memory_order_relaxed)) {
      prefix = fresh;
    }
  }
  // The low half starts at 1: zero means "none" in either half on the wire.
  return CausalityId(prefix, source.counter.fetch_add(1, std::memory_order_relaxed) + 1);
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
