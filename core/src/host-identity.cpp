// This host's identity (RuntimeImpl::hostId): which processes share a machine.

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "runtime-impl.h"

namespace ferry::detail {

namespace {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The network namespace's inode: two namespaces of one machine are two hosts to the network.
uint64_t networkNamespaceId() {
  char link[64] = {};
  ssize_t n = readlink("/proc/self/ns/net", link, sizeof link - 1);
  if (n <= 0) return 0;
  unsigned long long inode = 0;
  return std::sscanf(link, "net:[%llu]", &inode) == 1 ? inode : 0;
}

// Reads the first 32 hex digits of `path` (dashes skipped) into `id`; false if the file is
// missing, empty or not hex.
bool readHexId(const char* path, std::array<uint8_t, 16>& id) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) return false;
  std::string hex;
  for (char c : text) {
    if (c != '-') hex.push_back(c);
  }
  if (hex.size() < 32) return false;
  for (size_t i = 0; i < 16; ++i) {
    unsigned value = 0;
    if (std::sscanf(hex.c_str() + 2 * i, "%2x", &value) != 1) return false;
    id[i] = static_cast<uint8_t>(value);
  }
  return true;
}

}  // namespace

// This host's identity: the machine id mixed with the network namespace, so processes in
// different namespaces (the cross-host tests' "hosts") see each other as other machines. Without
// a machine id (minimal root filesystems, most container images) the kernel's boot id stands in:
// every process of one kernel reads the same one, and another machine (or this one after a
// reboot) has another. The two sources are mixed with different constants, so a host whose
// machine id is hidden from some of its processes is two hosts to them, never a collision with
// another machine.
std::array<uint8_t, 16> readHostId(const char* machineIdPath, const char* bootIdPath) {
  std::array<uint8_t, 16> id{};
  uint64_t salt = 0;
  if (!readHexId(machineIdPath, id)) {
    FERRY_REQUIRE(readHexId(bootIdPath, id), Errc::unavailable,
                  "cannot tell which host this is: neither {} nor {} holds an id; mount /proc, "
                  "or create the machine id with systemd-machine-id-setup",
                  machineIdPath, bootIdPath);
    salt = 0x626f6f745f6964ull;  // "boot_id"
  }
  uint64_t ns = networkNamespaceId() ^ salt;
  uint64_t a = mix64(ns);
  uint64_t b = mix64(ns ^ 0x5bd1e995u);
  for (size_t i = 0; i < 8; ++i) {
    id[i] ^= static_cast<uint8_t>(a >> (8 * i));
    id[8 + i] ^= static_cast<uint8_t>(b >> (8 * i));
  }
  return id;
}

}  // namespace ferry::detail
