// What the files of StreamTransport (stream-transport.cpp, stream-write.cpp) share and the
// plugins do not.
#pragma once

#include <string>

#include "stream-transport.h"

namespace ferry::transports {

inline std::string describeConnection(ferry_conn_id id) {
  return "connection " + std::to_string(id);
}

}  // namespace ferry::transports
