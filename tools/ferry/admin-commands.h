// `ferry ps`, `ferry ls`, `ferry ping` and `ferry call`: the commands that reach running processes
// through their admin objects (core/schema/admin.capnp) and call methods by reflection.
//
// Processes (ps, ls): those registered with a host's ferryd (resolver.capnp RegisteredProcess),
// or, on this host without a ferryd, this user's whose admin file is in the runtime directory.
//
// Targets (ping, call):
//   <pid>                 a process of this user on this host (its admin file)
//   <pid>/<oid>           an object that process exports (OID in hex, as `ferry ls` prints it)
//   ferry://…             a published name (ferry::bind)
//   <hex>                 an OBJREF's text (ferry::objRefToText; what `ferry call` prints for an
//                         interface-typed result)
#pragma once

#include <string>
#include <vector>

namespace ferry::tools {

struct CallOptions {
  std::string target;
  std::string method;  // "Interface.method"
  std::string arguments = "{}";
  std::string schemaFile;                // --schema: read the interface from here, not by reflection
  std::vector<std::string> importPaths;  // --import-path, for the schema's imports
};

// `host`: "" for this host (its ferryd, or the runtime directory when none answers).
int ps(const std::string& host, bool json);
// `process`: <pid>, or HOST[:PORT]/<pid> (through that host's ferryd).
int ls(const std::string& process, bool json);
int ping(const std::string& target, unsigned count);
int call(const CallOptions& options);

// Whether `text` names a target (the forms above), for the parsers' messages.
bool isTarget(const std::string& text);
bool isProcess(const std::string& text);

}  // namespace ferry::tools
