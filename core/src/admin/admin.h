// The admin object every process exports (core/schema/admin.capnp; README.md beside this file):
// its lifetime, who may call it, and the health it answers.
#pragma once

#include <string>

#include <ferry/marshal.h>
#include <ferry/runtime.h>
#include <ferry/security.h>

namespace ferry::detail {
class RuntimeImpl;
}

namespace ferry::detail::admin {

// The end of the Runtime constructor: unless RuntimeOptions::admin is off or no transport runs,
// exports the admin object in the MTA (tableStrong: the table keeps it until the MTA tears down)
// and writes its OBJREF text to file(getpid()). Never throws: a failure is logged, and the process
// runs without an admin object.
void start(RuntimeImpl& runtime) noexcept;

// The start of ~Runtime: removes the file start() wrote. The object goes with the MTA.
void stop() noexcept;

// In ApartmentImpl::serve, for a call from another process: refuses an admin call (accessDenied,
// counted in callsDenied) that came from another host (`distance` other than local, i.e. over a
// transport that reaches other hosts) unless RuntimeOptions::admin is network and the caller's
// level is at least adminMinimumLevel. Calls of other interfaces pass.
void checkCaller(const RuntimeOptions& options, const ClientBlanket& caller,
                 MarshalContext distance, Iid interfaceId);

// Runtime::setServing, and what Admin.health answers.
void setServing(bool serving, std::string reason);

// Where the admin files of this user's processes are: <runtime dir>/admin.
std::string directory();

}  // namespace ferry::detail::admin
