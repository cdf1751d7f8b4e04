#include "settings.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace ferry::transports {

void forEachSetting(const char* text, std::vector<std::string>& problems,
                    const std::function<void(const std::string&, const std::string&)>& each) {
  if (text == nullptr) return;
  std::string_view rest(text);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    size_t equals = item.find('=');
    if (equals == std::string_view::npos || equals == 0) {
      problems.push_back("'" + std::string(item) + "' is not key=value");
      continue;
    }
    each(std::string(item.substr(0, equals)), std::string(item.substr(equals + 1)));
  }
}

bool parseUnsigned(const std::string& text, uint64_t& out) {
  if (text.empty() || text.size() > 19) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  out = value;
  return true;
}

void writeWhy(const std::vector<std::string>& problems, char* whyOut, size_t whyCap) noexcept {
  if (whyOut == nullptr || whyCap == 0 || problems.empty()) return;
  size_t n = std::min(problems.front().size(), whyCap - 1);
  std::memcpy(whyOut, problems.front().data(), n);
  whyOut[n] = '\0';
}

}  // namespace ferry::transports
