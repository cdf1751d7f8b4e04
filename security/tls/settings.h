// Settings text of the security providers ("key=value,key=value", as check_settings and
// acquire_credentials take it) and the checks of the files it names.
#pragma once

#include <functional>
#include <initializer_list>
#include <map>
#include <string>

namespace ferry::security {

// The settings of one provider, parsed: each key at most once, only the provider's keys.
class Settings {
public:
  // Throws Failure(kBadSettings) with a sentence naming the key for an item that is not
  // key=value, a key given twice, or a key that is none of `known`. `provider` names the provider
  // in those sentences. Null text is no settings.
  Settings(const char* provider, const char* text, std::initializer_list<const char*> known);

  // The value of `key`, or null when absent.
  const std::string* find(const std::string& key) const;
  // The value of `key`; throws Failure(kBadSettings) naming the key when it is absent.
  const std::string& require(const std::string& key) const;
  const std::string& provider() const noexcept { return _provider; }

private:
  std::string _provider;
  std::map<std::string, std::string> _values;
};

// Checks that a file holding a secret (a private key, a key file) is a regular file owned by
// this user and closed to group and others; throws Failure(kBadCredentials) naming the setting
// and saying what to change (chmod 600, chown) otherwise.
void checkPrivateFile(const Settings& settings, const std::string& key, const std::string& path);

// The contents of a text file of at most 1 MiB; throws Failure(kBadCredentials) naming the
// setting when it cannot be read.
std::string readSmallFile(const Settings& settings, const std::string& key,
                          const std::string& path);

class Failure;

// The lines of a table file (a key file, a principal table): each(line number, first word,
// second word) for every line of two words; blank lines and lines whose first word begins with
// '#' are skipped. A line of one word or of three or more throws lineFailure(…, "is not two
// words"). `where` names the file and its setting; `hint` says what a line must be.
void forEachPair(const std::string& text, const std::string& where, const std::string& hint,
                 const std::function<void(int line, const std::string& first,
                                          const std::string& second)>& each);

// Failure(kBadCredentials): "line <line> of <where> <what>; <hint>".
Failure lineFailure(int line, const std::string& where, const std::string& what,
                    const std::string& hint);

}  // namespace ferry::security
