// The rule for the names objects are published under (resolver.capnp NamePublication): 1 to 128
// characters, segments of [A-Za-z0-9._~-] separated by single '/'. Shared by publish(), the
// ferry:// parser and the resolver that serves lookups.
#pragma once

#include <cstddef>
#include <string_view>

#include <ferry/marshal.h>

namespace ferry::detail {

inline constexpr size_t kMaxObjectName = 128;

// Empty when `name` follows the rule; else why not, as the end of a sentence ("it is empty").
const char* whyBadObjectName(std::string_view name) noexcept;

// The OBJREF a ferry:// name reference resolves to, as ferry::bind finds it (naming.cpp), without
// unmarshaling it.
ObjRefBytes lookupReference(std::string_view reference);

}  // namespace ferry::detail
