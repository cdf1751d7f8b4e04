// libFuzzer target for the OBJREF decoder, the one entry point untrusted OBJREF bytes go through
// (tests/fuzz/meson.build builds it with the decoder compiled in).
// Any input must either decode or fail with ferry::Error(invalidObjRef); a decoded OBJREF must
// encode and decode to itself.
#include <cstdlib>

#include "objref.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    ferry::detail::ObjRefData decoded = ferry::detail::decodeObjRef({data, size});
    if (ferry::detail::decodeObjRef(ferry::detail::encodeObjRef(decoded)) != decoded) std::abort();
  } catch (const ferry::Error& e) {
    if (e.code() != ferry::Errc::invalidObjRef) std::abort();
  }
  return 0;
}
