// What the files of StreamTransport (stream-transport.cpp, stream-write.cpp) share and the
// plugins do not.
#pragma once

#include <string>

#include "stream-transport.h"

namespace ferry::transports {

// What the loop reads into when no split message waits for its rest (libuv's onAlloc hands out
// the whole shared buffer). Larger than the messages of most calls, so that one read usually
// takes a message whole (and the reader delivers it from there, uncopied).
inline constexpr size_t kReadBufferSize = 256 * 1024;

inline std::string describeConnection(ferry_conn_id id) {
  return "connection " + std::to_string(id);
}

}  // namespace ferry::transports
