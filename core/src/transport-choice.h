// Which of an exporter's string bindings an importer uses: decided from the traits of the
// transports this process runs (plugin-loader.h), never from their names.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ferry/marshal.h>

#include "objref.h"
#include "plugin-loader.h"

namespace ferry::detail {

// The traits of a transport this process runs, or nullopt when it runs none of that protseq.
using RunningTransports = std::function<std::optional<TransportTraits>(const std::string& protseq)>;

// The bindings of `candidates` that a transport this process runs can use for `distance`,
// cheapest first (by cost rank; bindings of one rank keep their order in `candidates`); only
// those of `protseq` when one is named. A local-only transport is never used for
// MarshalContext::differentMachine.
std::vector<StringBindingData> usableBindings(const std::vector<StringBindingData>& candidates,
                                              MarshalContext distance, const std::string& protseq,
                                              const RunningTransports& running);

}  // namespace ferry::detail
