// The rule for the names objects are published under (resolver.capnp NamePublication): 1 to 128
// characters, segments of [A-Za-z0-9._~-] separated by single '/'. Shared by publish(), the
// ferry:// parser and the resolver that serves lookups.
#pragma once

#include <cstddef>
#include <string_view>

#include <ferry/marshal.h>
#include <ferry/naming.h>
#include <ferry/object.h>

namespace ferry::detail {

inline constexpr size_t kMaxObjectName = 128;

// Empty when `name` follows the rule; else why not, as the end of a sentence ("it is empty").
const char* whyBadObjectName(std::string_view name) noexcept;

// The OBJREF a ferry:// reference resolves to, as ferry::bind finds it (naming.cpp), without
// unmarshaling it: a name's published OBJREF, or a new instance of a class marshaled for `iid`.
ObjRefBytes lookupReference(std::string_view reference, Iid iid = Interface::iid);
// A new instance of `uri`'s class from its host's ferryd (this host's without one), marshaled
// for `iid` (naming.cpp: asked as names are).
ObjRefBytes activateReference(const ObjectUri& uri, Iid iid);
// Unmarshals an activated instance's OBJREF; releases it when that fails.
void* unmarshalActivated(const ObjRefBytes& objref, Iid iid);

}  // namespace ferry::detail
