#include "abi-glue.h"

#include <signal.h>

#include <cstring>

namespace ferry::transports {

const char* transportStrerror(int error) noexcept {
  if (error == 0) return "success";
  switch (error) {
#define FERRY_TRANSPORT_ERROR_TEXT(name, text) \
  case UV_##name:                              \
    return text;
    UV_ERRNO_MAP(FERRY_TRANSPORT_ERROR_TEXT)
#undef FERRY_TRANSPORT_ERROR_TEXT
    default:
      return "unknown transport error";
  }
}

void ignoreSigpipe() noexcept {
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) != 0) return;
  if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) return;
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, nullptr);
}

bool hostCovers(const ferry_host_v1* host, size_t fieldEnd) noexcept {
  return host != nullptr && host->struct_size >= fieldEnd;
}

std::string quoted(const char* text) {
  if (text == nullptr) return "(null)";
  constexpr size_t kLimit = 80;
  std::string out = "'";
  size_t n = std::strlen(text);
  for (size_t i = 0; i < n && i < kLimit; ++i) {
    char c = text[i];
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (n > kLimit) out += "...";
  out += "'";
  return out;
}

int validateCreate(const ferry_host_v1* host, uv_loop_t* loop,
                   const ferry_transport_events_v1* events, ferry_transport** out) noexcept {
  if (loop == nullptr || events == nullptr || out == nullptr) return UV_EINVAL;
  if (!hostCovers(host, offsetof(ferry_host_v1, log) + sizeof(host->log))) return UV_EINVAL;
  if (events->struct_size < sizeof(ferry_transport_events_v1)) return UV_EINVAL;
  if (events->accepted == nullptr || events->connected == nullptr ||
      events->received == nullptr || events->closed == nullptr) {
    return UV_EINVAL;
  }
  return 0;
}

}  // namespace ferry::transports
