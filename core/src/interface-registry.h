// The process-wide registry of interfaces: IID → proxy factory and stub dispatcher. Generated
// code fills it at load time (InterfaceRegistration); it is read-only afterwards.
#pragma once

#include <ferry/generated.h>

namespace ferry::detail {

// Null when no schema compiled into the process declares `iid`.
const InterfaceInfo* tryFindInterface(Iid iid) noexcept;

}  // namespace ferry::detail
