// The process-wide registry of interfaces: IID → proxy factory and stub dispatcher. Generated
// code fills it at load time (InterfaceRegistration); ferry's tools may add proxies for
// interfaces they have no code for later (internal::registerDynamicInterface). An entry is never
// changed or removed, and a pointer tryFindInterface returned stays valid.
#pragma once

#include <string>

#include <ferry/generated.h>

namespace ferry::detail {

// Null when no schema compiled into the process declares `iid`.
const InterfaceInfo* tryFindInterface(Iid iid) noexcept;

// The interface as an error message names it: "calc.Calculator (IID 85150b117366d14b)", or
// "interface 85150b117366d14b" when no schema compiled into the process declares it.
std::string describeInterface(Iid iid);

// A method as logs name it: "calc.capnp:Calculator.add", or "calc.capnp:Calculator method 7"
// (a number the schema compiled here does not name), or "interface 85150b117366d14b method 7".
std::string describeMethod(Iid iid, uint16_t method);

}  // namespace ferry::detail
