#include "class-file.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <ferry/error.h>

#include "../error-impl.h"
#include "../resolver/names.h"

namespace ferry::detail::activation {

namespace {

std::string trim(std::string_view s) {
  size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return "";
  size_t end = s.find_last_not_of(" \t\r");
  return std::string(s.substr(begin, end - begin + 1));
}

std::chrono::milliseconds readMillis(const std::string& value, const std::string& where,
                                     const std::string& key) {
  uint64_t ms = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), ms);
  FERRY_REQUIRE(!value.empty() && error == std::errc() && end == value.data() + value.size() &&
                    ms <= 86'400'000,
                Errc::invalidArgument,
                "{}: {} is '{}'; give a number of milliseconds from 0 to 86400000", where, key,
                value);
  return std::chrono::milliseconds(ms);
}

void lookUpUser(ClassFile& out, const std::string& where) {
  struct passwd entry {};
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  int rc = getpwnam_r(out.user->c_str(), &entry, buffer.data(), buffer.size(), &found);
  FERRY_REQUIRE(rc == 0 && found != nullptr, Errc::invalidArgument,
                "{}: user '{}' does not exist on this host; name an existing user, or remove "
                "the line to run the server as ferryd's own user",
                where, *out.user);
  out.uid = found->pw_uid;
  out.gid = found->pw_gid;
  out.home = found->pw_dir;
  FERRY_REQUIRE(geteuid() == 0 || out.uid == geteuid(), Errc::invalidArgument,
                "{}: the server is to run as user '{}', but ferryd runs as uid {}, not root, and "
                "cannot switch users; run ferryd as root, or remove the line",
                where, *out.user, geteuid());
}

}  // namespace

ClassFile readClassFile(const std::string& path) {
  ClassFile out;
  out.path = path;
  out.clsid = std::filesystem::path(path).stem().string();
  std::ifstream in(path);
  FERRY_REQUIRE(in.good(), Errc::invalidArgument, "cannot read the class file {}: {}", path,
                std::strerror(errno));
  std::set<std::string> seen;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string where = path + ":" + std::to_string(number);
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    size_t eq = line.find('=');
    std::string key = trim(eq == std::string::npos ? line : line.substr(0, eq));
    FERRY_REQUIRE(eq != std::string::npos, Errc::invalidArgument,
                  "{}: expected `key = value` (keys: executable, argument, user, environment, "
                  "idle_timeout_ms, start_timeout_ms, allow)",
                  where);
    std::string value = trim(line.substr(eq + 1));
    bool repeatable = key == "argument" || key == "environment" || key == "allow";
    FERRY_REQUIRE(repeatable || seen.insert(key).second, Errc::invalidArgument,
                  "{}: {} is given a second time; give it once", where, key);
    if (key == "executable") {
      FERRY_REQUIRE(!value.empty() && value.front() == '/', Errc::invalidArgument,
                    "{}: the executable '{}' is not an absolute path; ferryd runs it directly, "
                    "never through a shell or PATH",
                    where, value);
      FERRY_REQUIRE(access(value.c_str(), X_OK) == 0, Errc::invalidArgument,
                    "{}: the executable {} cannot be run: {}", where, value, std::strerror(errno));
      out.executable = value;
    } else if (key == "argument") {
      out.arguments.push_back(value);
    } else if (key == "user") {
      out.user = value;
      lookUpUser(out, where);
    } else if (key == "environment") {
      size_t split = value.find('=');
      FERRY_REQUIRE(split != std::string::npos && split > 0, Errc::invalidArgument,
                    "{}: environment is '{}'; write environment = KEY=VALUE", where, value);
      out.environment.push_back(value);
    } else if (key == "allow") {
      FERRY_REQUIRE(!value.empty(), Errc::invalidArgument,
                    "{}: allow is empty; name a principal, or uid:N for a local user", where);
      out.allow.push_back(value);
    } else if (key == "idle_timeout_ms") {
      out.idleTimeout = readMillis(value, where, key);
    } else if (key == "start_timeout_ms") {
      out.startTimeout = readMillis(value, where, key);
      FERRY_REQUIRE(out.startTimeout.count() > 0, Errc::invalidArgument,
                    "{}: start_timeout_ms is 0; give the server at least a millisecond to register",
                    where);
    } else {
      FERRY_FAIL(Errc::invalidArgument,
                 "{}: unknown key '{}' (keys: executable, argument, user, environment, "
                 "idle_timeout_ms, start_timeout_ms, allow)",
                 where, key);
    }
  }
  FERRY_REQUIRE(!out.executable.empty(), Errc::invalidArgument,
                "the class file {} names no executable; add `executable = /path/to/server`", path);
  return out;
}

std::map<std::string, ClassFile> readClassDirectory(const std::string& directory) {
  std::map<std::string, ClassFile> out;
  std::error_code error;
  std::filesystem::directory_iterator it(directory, error);
  FERRY_REQUIRE(!error, Errc::invalidArgument,
                "cannot read the class directory {} (RuntimeOptions::classDirectory, ferryd's "
                "class_directory): {}",
                directory, error.message());
  for (const auto& entry : it) {
    if (entry.path().extension() != ".class") continue;
    std::string clsid = entry.path().stem().string();
    std::string_view why = whyBadObjectName(clsid);
    FERRY_REQUIRE(why.empty(), Errc::invalidArgument,
                  "the class file {} names the class '{}', which is not a valid class name: {}",
                  entry.path().string(), clsid, why);
    out.emplace(clsid, readClassFile(entry.path().string()));
  }
  return out;
}

}  // namespace ferry::detail::activation
