// What core needs of the capabilities that carry interfaces inside structs
// (core/include/ferry/capability.h), beyond the public part.
#pragma once

#include <utility>

#include <ferry/capability.h>

namespace ferry::detail {

// The object and interface a capability holds, for marshaling: {nullptr, Iid()} for a null
// capability. Throws invalidArgument for a capability ferry did not make.
std::pair<Interface*, Iid> wrappedInterface(capnp::ClientHook& hook);

}  // namespace ferry::detail
