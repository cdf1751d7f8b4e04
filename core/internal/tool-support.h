// INTERNAL: what ferry's own tools (tools/ferry) need from libferry beyond the public API.
//
// Not installed and not part of the API: a program outside ferry's tree must not use it, and any
// release may change it. libferry exports these functions (FERRY_API) only because the tools
// link the shared library like any other program.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ferry/api.h>
#include <ferry/ids.h>
#include <ferry/object.h>

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

// ---- the admin interface and calls by reflection (ferry ps/ls/ping/call) ----

// Where this user's processes publish their admin objects: <runtime dir>/admin, one file per
// process named by its pid, holding the OBJREF text of its admin object.
FERRY_API std::string adminDirectory();

// A process registered with a host's ferryd, as listProcesses() reports it.
struct RegisteredProcess {
  uint64_t processId = 0;          // as in its OBJREFs (its pid in the high 32 bits)
  uint32_t uid = 0;                // its user
  std::vector<uint8_t> admin;      // its admin object's OBJREF; empty: none, or not for this user
  bool adminNetwork = false;       // it serves its admin object to other hosts
};

// The processes registered with the ferryd of `host` ("": this host's; "HOST[:PORT]" as in a
// ferry:// reference), as far as that ferryd shows them to this process: every one, each with
// its admin object where this process may call it (resolver.capnp RegisteredProcess). Throws as
// ferry::listNames does (unavailable when that ferryd cannot be reached).
FERRY_API std::vector<RegisteredProcess> listProcesses(std::string_view host);

// Makes interface `iid` callable by method number in this program even though no schema compiled
// into it declares it: registers a dynamic proxy for it (one without typed methods; calls go
// through ProxyBase::newCall), named `name` in error messages. Does nothing for an interface
// that has a proxy already.
FERRY_API void registerDynamicInterface(Iid iid, const std::string& name);

// `objref` unmarshaled as interface `iid` in the calling apartment, as an Interface whose
// detail::asProxy() is the interface proxy: the caller makes calls with newCall(iid, …). Throws
// as unmarshalInterface does (noInterface when `iid` has no proxy: registerDynamicInterface).
FERRY_API Ref<Interface> unmarshalForCalls(std::span<const uint8_t> objref, Iid iid);

// The same for an object already held: its interface `iid` (a remote queryInterface when the
// proxy does not hold it yet).
FERRY_API Ref<Interface> queryForCalls(Interface* object, Iid iid);

// Asks the exporter of `proxy` (an interface proxy, asProxy) whether it still exports the object:
// one round trip (RemUnknown.addRefs of one reference, returned at once). Throws what the
// exporter answered (objectNotRegistered once the object is gone) or the transport's error.
FERRY_API void pingObject(Interface* proxy);

}  // namespace ferry::internal
