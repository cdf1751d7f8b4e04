// The Bench object that ferry's benchmarks export (ferry-bench, bench/peers' peer-ferry): null
// does nothing, echo answers with its argument, sink with its argument's size.
#pragma once

#include <ferry/ferry.h>

#include "bench.ferry.h"

namespace bench {

class BenchImpl final : public ferry::Implements<iface::Bench> {
public:
  void null() override {}
  std::vector<uint8_t> echo(std::span<const uint8_t> data) override {
    return std::vector<uint8_t>(data.begin(), data.end());
  }
  uint64_t sink(std::span<const uint8_t> data) override { return data.size(); }
};

}  // namespace bench
