// What an OXID resolves to (core/schema/resolver.capnp), and its encoding.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <ferry/ids.h>

#include "../objref.h"
#include "resolver.capnp.h"

namespace ferry::detail {

struct Resolution {
  Oxid oxid;
  Ipid remUnknown;
  std::vector<StringBindingData> bindings;  // cheapest first, at most kMaxResolutionBindings
  uint64_t processId = 0;
  std::array<uint8_t, 16> hostId{};
};

constexpr size_t kMaxResolutionBindings = 32;

void writeResolution(wire::Resolution::Builder out, const Resolution& resolution);
// Throws protocolError for a resolution no resolver may send (no exporter id, RemUnknown IPID
// or 16-byte host id; more than kMaxResolutionBindings bindings).
Resolution readResolution(wire::Resolution::Reader in);

}  // namespace ferry::detail
