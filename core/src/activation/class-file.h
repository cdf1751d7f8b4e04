// ferryd's class files (RuntimeOptions::classDirectory): one file `CLASS.class` per class, naming
// the server ferryd launches when the class is activated and no running server registered it.
//
//     # demo.Calculator.class
//     executable = /usr/lib/demo/calculator-server   (absolute path; run directly, never a shell)
//     argument = --serve                            (one per line, in order; none by default)
//     user = demo                                   (default: ferryd's own user)
//     environment = DEMO_MODE=fast                  (one KEY=VALUE per line; added to the base)
//     idle_timeout_ms = 60000                       (0, the default: never asked to exit)
//     start_timeout_ms = 10000                      (how long it may take to register; default)
//     allow = uid:1000                              (who may activate it; one per line; default:
//                                                    every requester the level rule admits)
//
// '#' starts a comment; blank lines are ignored; a key may not repeat unless it is argument or
// environment. The README's "Activation" section is the user's description of the format.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace ferry::detail::activation {

struct ClassFile {
  std::string clsid;  // the file's name without ".class"
  std::string path;
  std::string executable;
  std::vector<std::string> arguments;
  std::optional<std::string> user;  // unset: ferryd's own
  uid_t uid = 0;                    // with user: looked up when the file was read
  gid_t gid = 0;
  std::string home;
  std::vector<std::string> environment;  // KEY=VALUE
  std::chrono::milliseconds idleTimeout{0};
  std::chrono::milliseconds startTimeout{10'000};
  // Requesters allowed to activate the class: the principal a security provider authenticated,
  // or "uid:N" for a process of this host over the pipe. Empty: no restriction.
  std::vector<std::string> allow;
};

// Reads one class file. Throws invalidArgument naming the file and line (or only the file) for
// an unknown or repeated key, a missing executable, a relative or non-executable one, an unknown
// user, a user other than ferryd's own when ferryd cannot switch users (it is not root), a
// malformed number or environment line.
ClassFile readClassFile(const std::string& path);

// Every `*.class` file of `directory`, by class. Throws invalidArgument for a directory that
// cannot be read, a file name that is not a valid class name, and whatever readClassFile throws.
std::map<std::string, ClassFile> readClassDirectory(const std::string& directory);

}  // namespace ferry::detail::activation
