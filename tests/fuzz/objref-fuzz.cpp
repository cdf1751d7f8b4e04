// libFuzzer target for the OBJREF decoder, the one entry point untrusted OBJREF bytes go through.
//   CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
//   meson compile -C build-fuzz && ./build-fuzz/tests/fuzz/objref-fuzz -max_total_time=60
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
