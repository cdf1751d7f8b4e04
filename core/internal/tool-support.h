// INTERNAL: what ferry's own tools (tools/ferry) need from libferry beyond the public API.
//
// Not installed and not part of the API: a program outside ferry's tree must not use it, and any
// release may change it. libferry exports these functions (FERRY_API) only because the tools
// link the shared library like any other program.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ferry/api.h>
#include <ferry/ids.h>

namespace ferry::internal {

// Where the plugin loader looked, as a sentence: "the plugin loader looked in FERRY_PLUGIN_PATH
// (…) and in the install directory …". Loads the plugins the first time, as Runtime::plugins().
FERRY_API std::string describePluginSearch();

// Whether `text` is a string binding, "protseq:address[endpoint]".
FERRY_API bool isStringBinding(std::string_view text);

// What a resolver answered for an exporter.
struct ResolvedExporter {
  Oxid oxid;
  Ipid remUnknown;
  uint64_t processId = 0;             // the exporter process's id (its pid in the high 32 bits)
  std::vector<std::string> bindings;  // where it listens, "tcp:127.0.0.1[40211]"
};

// Asks the resolver at `binding` (a process, or a host's ferryd) where exporter `oxid` listens,
// bounded by the call timeout. Needs a live Runtime whose transports include the binding's
// protseq, and the calling thread in an apartment. Throws invalidArgument (not a string
// binding), unavailable (no such transport loaded, or nothing answers there), and what the
// resolver answered (e.g. objectNotRegistered for an OXID it does not know).
FERRY_API ResolvedExporter resolveExporter(std::string_view binding, Oxid oxid);

// The OBJREF a ferry:// reference names, as ferry::bind finds it, not unmarshaled (the tool has
// no proxies for applications' interfaces). Throws as ferry::bind does.
FERRY_API std::vector<uint8_t> lookupReference(std::string_view reference);

// The string binding of the ferryd the live Runtime registers with (and asks about this host's
// names), or "" when it has none.
FERRY_API std::string ferrydBinding();

}  // namespace ferry::internal
