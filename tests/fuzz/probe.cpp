// Builds only where clang's libFuzzer is available: meson.build tries it before it builds the
// fuzz targets.
#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }
