// The settings text every transport plugin takes through create_with_settings
// (core/include/ferry/plugin/transport.h): "key=value,key=value", values decimal.
#pragma once

#include <cstdint>
#include <functional>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <uv.h>

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

// Parses settings text whose every key names a number of `into` (`keys`: name, member). A
// malformed value, or a key not in `keys` (the phrase lists them and calls them `what`
// settings), is appended to `problems`.
template <typename Settings, size_t N>
void parseNumbers(const char* text, const std::pair<const char*, uint64_t Settings::*> (&keys)[N],
                  const char* what, Settings& into, std::vector<std::string>& problems) {
  forEachSetting(text, problems, [&](const std::string& key, const std::string& value) {
    for (const auto& [name, member] : keys) {
      if (key != name) continue;
      if (!parseUnsigned(value, into.*member)) {
        problems.push_back(key + "=" + value + ": the value is not a non-negative integer");
      }
      return;
    }
    std::string known;
    for (const auto& [name, member] : keys) known += std::string(known.empty() ? "" : ", ") + name;
    problems.push_back("'" + key + "' is no " + what + " setting (they are " + known + ")");
  });
}

// A plugin's check_settings: `parse(text, problems)` appends what is wrong with the text.
template <typename Parse>
int checkSettingsText(const char* text, char* whyOut, size_t whyCap, Parse&& parse) noexcept {
  try {
    std::vector<std::string> problems;
    parse(text, problems);
    if (problems.empty()) return 0;
    writeWhy(problems, whyOut, whyCap);
    return UV_EINVAL;
  } catch (const std::bad_alloc&) {
    return UV_ENOMEM;
  } catch (...) {
    return UV_EIO;
  }
}

}  // namespace ferry::transports
