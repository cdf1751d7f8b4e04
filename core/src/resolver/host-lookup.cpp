#include "host-lookup.h"

#include <netinet/in.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <uv.h>

#include <ferry/error.h>

namespace ferry::detail {

namespace {

bool numeric(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return uv_inet_pton(AF_INET, host.c_str(), buffer) == 0 ||
         uv_inet_pton(AF_INET6, host.c_str(), buffer) == 0;
}

struct Lookup {
  std::mutex mutex;
  std::condition_variable done;
  bool finished = false;
  int status = 0;
  std::vector<std::string> addresses;
};

void run(const std::shared_ptr<Lookup>& lookup, const std::string& host) {
  uv_loop_t loop;
  uv_getaddrinfo_t request;
  std::vector<std::string> v4, v6;
  int status = uv_loop_init(&loop);
  if (status == 0) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    // Without a callback the lookup runs on this thread.
    status = uv_getaddrinfo(&loop, &request, nullptr, host.c_str(), nullptr, &hints);
    if (status == 0) {
      for (addrinfo* a = request.addrinfo; a != nullptr; a = a->ai_next) {
        char text[64] = {};
        if (a->ai_family == AF_INET) {
          uv_ip4_name(reinterpret_cast<sockaddr_in*>(a->ai_addr), text, sizeof text);
          if (std::find(v4.begin(), v4.end(), text) == v4.end()) v4.emplace_back(text);
        } else if (a->ai_family == AF_INET6) {
          uv_ip6_name(reinterpret_cast<sockaddr_in6*>(a->ai_addr), text, sizeof text);
          if (std::find(v6.begin(), v6.end(), text) == v6.end()) v6.emplace_back(text);
        }
      }
      uv_freeaddrinfo(request.addrinfo);
    }
    uv_loop_close(&loop);
  }
  std::lock_guard lock(lookup->mutex);
  lookup->status = status;
  lookup->addresses = std::move(v4);
  lookup->addresses.insert(lookup->addresses.end(), v6.begin(), v6.end());
  lookup->finished = true;
  lookup->done.notify_all();
}

}  // namespace

std::vector<std::string> lookupHost(const std::string& host, std::chrono::milliseconds timeout) {
  if (numeric(host)) return {host};
  auto lookup = std::make_shared<Lookup>();
  std::thread([lookup, host] { run(lookup, host); }).detach();
  std::unique_lock lock(lookup->mutex);
  bool finished = lookup->done.wait_for(lock, timeout, [&] { return lookup->finished; });
  FERRY_REQUIRE(finished, Errc::unavailable,
                "looking up the host name '{}' took longer than {} ms (the call timeout); check "
                "the system's resolver (/etc/resolv.conf), or write the host's address",
                host, timeout.count());
  FERRY_REQUIRE(lookup->status == 0 && !lookup->addresses.empty(), Errc::unavailable,
                "the host name '{}' does not resolve to an address ({}); check the name, or "
                "write the host's address",
                host, lookup->status == 0 ? "no IPv4 or IPv6 address" : uv_strerror(lookup->status));
  return lookup->addresses;
}

}  // namespace ferry::detail
