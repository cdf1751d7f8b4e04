#include "settings.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "../../transports/common/settings.h"
#include "provider.h"

namespace ferry::security {

Settings::Settings(const char* provider, const char* text,
                   std::initializer_list<const char*> known)
    : _provider(provider) {
  if (text == nullptr) return;
  std::string keys;
  for (const char* k : known) keys += std::string(keys.empty() ? "" : ", ") + k;
  std::vector<std::string> problems;
  ferry::transports::forEachSetting(
      text, problems, [&](const std::string& key, const std::string& value) {
        bool isKnown = false;
        for (const char* k : known) isKnown = isKnown || key == k;
        if (!isKnown) {
          throw Failure(kBadSettings, "'" + key + "' is no " + _provider +
                                          " security setting; its keys are " + keys);
        }
        if (!_values.emplace(key, value).second) {
          throw Failure(kBadSettings, "the " + _provider + " security settings give '" + key +
                                          "' twice; give it once");
        }
      });
  if (!problems.empty()) {
    throw Failure(kBadSettings, "in the " + _provider + " security settings, " + problems.front() +
                                    "; its keys are " + keys);
  }
}

const std::string* Settings::find(const std::string& key) const {
  auto it = _values.find(key);
  return it == _values.end() ? nullptr : &it->second;
}

const std::string& Settings::require(const std::string& key) const {
  const std::string* value = find(key);
  if (value == nullptr || value->empty()) {
    throw Failure(kBadSettings, "the " + _provider + " security settings need '" + key +
                                    "=' (see security/" + _provider + "/README.md)");
  }
  return *value;
}

void checkPrivateFile(const Settings& settings, const std::string& key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Failure(kBadCredentials, "cannot read " + key + "=" + path + " of the " +
                                       settings.provider() + " security settings: " +
                                       std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    throw Failure(kBadCredentials, key + "=" + path + " of the " + settings.provider() +
                                       " security settings is not a regular file");
  }
  if (st.st_uid != ::geteuid()) {
    throw Failure(kBadCredentials, key + "=" + path + " of the " + settings.provider() +
                                       " security settings holds a secret but belongs to uid " +
                                       std::to_string(st.st_uid) +
                                       ", not to this user: chown it to the user running ferry");
  }
  if ((st.st_mode & 077) != 0) {
    throw Failure(kBadCredentials, key + "=" + path + " of the " + settings.provider() +
                                       " security settings holds a secret but other users may "
                                       "access it: chmod 600 it");
  }
}

std::string readSmallFile(const Settings& settings, const std::string& key,
                          const std::string& path) {
  constexpr std::streamsize kLimit = 1 << 20;
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw Failure(kBadCredentials, "cannot read " + key + "=" + path + " of the " +
                                       settings.provider() + " security settings: " +
                                       std::strerror(errno));
  }
  std::string text(static_cast<size_t>(kLimit) + 1, '\0');
  file.read(text.data(), kLimit + 1);
  if (file.bad()) {
    throw Failure(kBadCredentials, "cannot read " + key + "=" + path + " of the " +
                                       settings.provider() + " security settings");
  }
  if (file.gcount() > kLimit) {
    throw Failure(kBadCredentials, key + "=" + path + " of the " + settings.provider() +
                                       " security settings is larger than 1 MiB");
  }
  text.resize(static_cast<size_t>(file.gcount()));
  return text;
}

void forEachPair(const std::string& text, const std::string& where, const std::string& hint,
                 const std::function<void(int line, const std::string& first,
                                          const std::string& second)>& each) {
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    std::istringstream words(line);
    std::string first;
    std::string second;
    std::string extra;
    if (!(words >> first) || first[0] == '#') continue;
    if (!(words >> second) || (words >> extra)) {
      throw lineFailure(number, where, "is not two words", hint);
    }
    each(number, first, second);
  }
}

Failure lineFailure(int line, const std::string& where, const std::string& what,
                    const std::string& hint) {
  return Failure(kBadCredentials,
                 "line " + std::to_string(line) + " of " + where + " " + what + "; " + hint);
}

}  // namespace ferry::security
