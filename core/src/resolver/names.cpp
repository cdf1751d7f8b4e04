#include "names.h"

namespace ferry::detail {

namespace {
bool unreserved(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '~' || c == '-';
}
}  // namespace

const char* whyBadObjectName(std::string_view name) noexcept {
  if (name.empty()) return "it is empty";
  if (name.size() > kMaxObjectName) return "it is longer than 128 characters";
  if (name.front() == '/' || name.back() == '/') return "it begins or ends with '/'";
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '/') {
      if (name[i + 1] == '/') return "it has an empty segment ('//')";
    } else if (!unreserved(name[i])) {
      return "it has a character other than letters, digits, '.', '_', '~', '-' and '/'";
    }
  }
  return "";
}

}  // namespace ferry::detail
