// The RemUnknown servant every apartment exports (core/schema/remunknown.capnp).
#pragma once

#include "export-table.h"

namespace ferry::detail {

class ApartmentImpl;

// A new RemUnknown servant of `apartment` and its stub (the lease holds the servant). Served
// under the apartment's well-known IPID, outside its export table.
StubLease makeRemUnknown(ApartmentImpl& apartment);

}  // namespace ferry::detail
