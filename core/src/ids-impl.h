// What core draws its random ids and cookies from (ids.cpp).
#pragma once

#include <cstdint>

namespace ferry::detail {

// 64 bits from the kernel's CSPRNG (getrandom); never returns 0. Throws internal when the kernel
// refuses.
uint64_t randomNonZero64();

}  // namespace ferry::detail
