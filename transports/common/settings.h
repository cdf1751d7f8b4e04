// The settings text every transport plugin takes through create_with_settings
// (core/include/ferry/plugin/transport.h): "key=value,key=value", values decimal.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ferry::transports {

// Calls `each(key, value)` for every "key=value" item of a comma-separated list (null: none);
// an item without '=' or without a key is appended to `problems`.
void forEachSetting(const char* text, std::vector<std::string>& problems,
                    const std::function<void(const std::string&, const std::string&)>& each);

// A decimal number of at most 19 digits.
bool parseUnsigned(const std::string& text, uint64_t& out);

// Copies the first of `problems` to why_out as check_settings hands it back (NUL-terminated, cut
// at why_cap); nothing when why_out is null or why_cap is 0.
void writeWhy(const std::vector<std::string>& problems, char* whyOut, size_t whyCap) noexcept;

}  // namespace ferry::transports
