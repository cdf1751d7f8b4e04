// Error helpers for core's own code (error.cpp); the public side is ferry/error.h.
#pragma once

#include <string_view>

namespace ferry::detail {

// Why a Cap'n Proto message failed to decode: the reason in the KJ exception's description,
// without the source condition KJ puts before it ("expected a >= b [8 >= 9]; Message ends
// prematurely." gives "Message ends prematurely.").
std::string_view kjReason(std::string_view description) noexcept;

}  // namespace ferry::detail
