// How the ORPC layer names a connection: the transport instance that carries it and the
// plugin's connection id (core/include/ferry/plugin/transport.h). Ids are never reused within an
// instance, so a link names one connection for the life of the process.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace ferry::detail::orpc {

struct LinkId {
  uint32_t transport = 0;
  uint64_t conn = 0;  // ferry_conn_id; 0 is no connection

  explicit operator bool() const noexcept { return conn != 0; }
  auto operator<=>(const LinkId&) const = default;
};

struct LinkIdHash {
  size_t operator()(const LinkId& link) const noexcept {
    return std::hash<uint64_t>()(link.conn * 31 + link.transport);
  }
};

}  // namespace ferry::detail::orpc
