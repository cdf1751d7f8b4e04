// ferryd: the host's OXID resolver daemon.
//
// Answers resolve requests (OXID → the exporter's bindings and RemUnknown IPID) on well-known
// endpoints — tcp/udp port 7135 and the pipe /run/ferry/ferryd by default — for its own
// apartments and for every OXID the processes of its host registered with it over the pipe.
// Its pipe admits every local user (RuntimeOptions::pipeForAllUsers); who registered an OXID is
// the kernel's peer credentials, and only that process may change or withdraw it. Processes find
// it by its pipe (RuntimeOptions::resolver, FERRY_RESOLVER) and register again when it restarts;
// without a ferryd a process answers for itself, so single-host use needs no daemon.
//
// It also activates (ferry/activation.h): servers of its host register class objects with it,
// and it launches the server a class file of its class directory names when a class is
// activated and no running server registered it (core/src/activation/class-file.h, the README's
// "Activation" section).
//
//   ferryd [--config FILE] [--pipe-directory DIR] [--pipe-name NAME] [--listen ADDR[,ADDR]]
//          [--port PORT] [--transports tcp,udp,pipe] [--security NAME[:SETTINGS][;...]]
//          [--minimum-level none|integrity|privacy] [--class-directory DIR] [--insecure-network]
//          [--insecure-activation] [--verbose] | --help | --version
//
// Security (RuntimeOptions::security and minimumLevel): with providers, resolve and name
// requests are answered like calls, at the minimum level (integrity by default) or above, and
// also to processes of this host the kernel identifies over the pipe; registrations and
// publications are taken only over the pipe, from a process the kernel identifies, whatever
// the level. A process whose providers ferryd does not run fails its bind exchange with a
// sentence naming these settings, as a providerless process asking over the network does.
//
// The config file (default <sysconfdir>/ferry/ferryd.conf of the install, /etc/ferry/ferryd.conf
// for a /usr install, if present) holds `key = value` lines with the same keys (pipe_directory,
// pipe_name, listen, port, transports, security, minimum_level, class_directory,
// insecure_network = yes, insecure_activation = yes); flags override it. A bad flag or config
// file exits 2 with a usage line; a bad class file exits 1 naming its file and line.
// It runs until SIGINT or SIGTERM and prints one line per endpoint it listens on. Under systemd
// (Type=notify) it reports READY=1 once it listens and STOPPING=1 when it stops.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <kj/main.h>

#include <ferry/ferry.h>

#include "ferry-version.h"

namespace {

constexpr char kUsage[] =
    "usage: ferryd [--config FILE] [--pipe-directory DIR] [--pipe-name NAME] "
    "[--listen ADDR[,ADDR]] [--port PORT] [--transports LIST] [--security NAME[:SETTINGS][;...]] "
    "[--minimum-level LEVEL] [--class-directory DIR] [--insecure-network] [--insecure-activation] "
    "[--verbose] | --help | --version";

std::vector<std::string> splitList(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  return s;
}

// Reads `key = value` lines; '#' starts a comment. Unknown keys are an error naming the line.
bool readConfig(const std::string& path, std::map<std::string, std::string>& settings,
                bool required) {
  std::ifstream in(path);
  if (!in) {
    if (required) std::fprintf(stderr, "ferryd: cannot read %s: %s\n", path.c_str(), std::strerror(errno));
    return !required;
  }
  static const char* kKeys[] = {"pipe_directory", "pipe_name", "listen", "port", "transports",
                                "security", "minimum_level", "insecure_network", "class_directory",
                                "insecure_activation"};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    size_t eq = line.find('=');
    std::string key = eq == std::string::npos ? line : trim(line.substr(0, eq));
    bool known = false;
    for (const char* k : kKeys) known = known || key == k;
    if (eq == std::string::npos || !known) {
      std::fprintf(stderr, "ferryd: %s:%d: expected one of pipe_directory, pipe_name, listen, "
                           "port, transports, security, minimum_level, class_directory, "
                           "insecure_network, insecure_activation as `key = value`\n",
                   path.c_str(), number);
      return false;
    }
    settings[key] = trim(line.substr(eq + 1));
  }
  return true;
}

// kj::MainBuilder's process context with ferryd's exit codes: help and version go to stdout
// with 0, a usage error to stderr with the usage line and 2.
class Context final : public kj::ProcessContext {
public:
  kj::StringPtr getProgramName() override { return "ferryd"; }
  [[noreturn]] void exit() override { finish(_status); }
  void warning(kj::StringPtr message) override { std::fprintf(stderr, "%s\n", message.cStr()); }
  void error(kj::StringPtr message) override {
    std::fprintf(stderr, "%s\n", message.cStr());
    _status = 1;
  }
  [[noreturn]] void exitError(kj::StringPtr message) override {
    std::fprintf(stderr, "%s\n%s\n", message.cStr(), kUsage);
    finish(2);
  }
  [[noreturn]] void exitInfo(kj::StringPtr message) override {
    std::fprintf(stdout, "%s\n", message.cStr());
    finish(0);
  }
  // --verbose: ferry's info lines too (FERRY_LOG=info), unless FERRY_LOG asks for debug.
  void increaseLoggingVerbosity() override {
    const char* current = std::getenv("FERRY_LOG");
    if (current == nullptr || std::strcmp(current, "debug") != 0) setenv("FERRY_LOG", "info", 1);
  }

  [[noreturn]] static void finish(int status) {
    std::fflush(stdout);
    std::fflush(stderr);
    std::exit(status);
  }

private:
  int _status = 0;
};

// Listens as `settings` say until SIGINT or SIGTERM; the exit status.
int serve(std::map<std::string, std::string>& settings) {
  // The pipe directory is the daemon's: other users may connect, nobody else may write.
  const std::string& dir = settings["pipe_directory"];
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "ferryd: cannot create %s: %s (set pipe_directory)\n", dir.c_str(),
                 std::strerror(errno));
    return 1;
  }

  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);

  try {
    ferry::RuntimeOptions options;
    options.pipeDirectory = dir;
    options.pipeEndpoint = settings["pipe_name"];
    options.pipeForAllUsers = true;
    options.listenAddresses = splitList(settings["listen"]);
    options.listenPort = settings["port"];
    options.transports = splitList(settings["transports"]);
    options.resolver = "";
    options.acceptRegistrations = true;
    // Listening beyond loopback without a security provider: only when asked for.
    options.allowInsecureNetwork = settings["insecure_network"] == "yes";
    // "name[:settings]" items separated by ';' (settings hold commas).
    std::string providers = settings["security"];
    for (size_t start = 0; start < providers.size();) {
      size_t end = std::min(providers.find(';', start), providers.size());
      std::string item = trim(providers.substr(start, end - start));
      size_t colon = item.find(':');
      if (!item.empty()) {
        options.security.emplace_back(trim(item.substr(0, colon)),
                                      colon == std::string::npos ? "" : item.substr(colon + 1));
      }
      start = end + 1;
    }
    if (const std::string& level = settings["minimum_level"]; !level.empty()) {
      for (ferry::SecurityLevel known : {ferry::SecurityLevel::none, ferry::SecurityLevel::integrity,
                                         ferry::SecurityLevel::privacy}) {
        if (level == ferry::toString(known)) options.minimumLevel = known;
      }
      if (!options.minimumLevel) {
        std::fprintf(stderr, "ferryd: minimum_level must be none, integrity or privacy, not '%s'\n",
                     level.c_str());
        return 2;
      }
    }
    // Activation: the class files, and activation for unauthenticated peers of other hosts.
    options.classDirectory = settings["class_directory"];
    options.allowInsecureActivation = settings["insecure_activation"] == "yes";
    ferry::Runtime runtime(options);
    auto bindings = runtime.bindings();
    if (bindings.empty()) {
      std::fprintf(stderr, "ferryd: no transport is listening (are the plugins installed or on "
                           "FERRY_PLUGIN_PATH?)\n");
      return 1;
    }
    for (const auto& b : bindings) std::printf("ferryd listening on %s\n", b.c_str());
    std::fflush(stdout);
    // Outside systemd (no NOTIFY_SOCKET) this does nothing.
    sd_notify(0, "READY=1");
    int signal = 0;
    sigwait(&stopSignals, &signal);
    sd_notify(0, "STOPPING=1");
    std::printf("ferryd stopping (%s)\n", strsignal(signal));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferryd: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> settings = {
      {"pipe_directory", "/run/ferry"}, {"pipe_name", "ferryd"}, {"listen", "127.0.0.1"},
      {"port", "7135"}, {"transports", ""}, {"security", ""}, {"minimum_level", ""},
      {"insecure_network", "no"}, {"class_directory", ""}, {"insecure_activation", "no"}};
  std::string config = FERRY_SYSCONFDIR "/ferry/ferryd.conf";
  bool configRequired = false;
  std::map<std::string, std::string> flags;
  auto flag = [&](const char* key) {
    return [&flags, key](kj::StringPtr value) -> kj::MainBuilder::Validity {
      flags[key] = value.cStr();
      return true;
    };
  };

  Context context;
  kj::MainFunc parser =
      kj::MainBuilder(context, "ferryd " FERRY_VERSION,
                      "The host's OXID resolver: answers which bindings reach an OXID, for its "
                      "own apartments and those the processes of this host register over its "
                      "pipe. Activates classes: asks the server that registered one, or launches "
                      "the server its class file names.",
                      "Settings come from the config file (key = value lines: pipe_directory, "
                      "pipe_name, listen, port, transports, security, minimum_level, "
                      "class_directory, insecure_network, insecure_activation); flags override "
                      "them. Runs until SIGINT or SIGTERM.")
          .addOptionWithArg({"config"},
                            [&](kj::StringPtr value) -> kj::MainBuilder::Validity {
                              config = value.cStr();
                              configRequired = true;
                              return true;
                            },
                            "<file>", "Read settings from <file> (default " FERRY_SYSCONFDIR "/ferry/ferryd.conf, "
                                      "if present).")
          .addOptionWithArg({"pipe-directory"}, flag("pipe_directory"), "<dir>",
                            "Put the pipe socket in <dir> (default /run/ferry).")
          .addOptionWithArg({"pipe-name"}, flag("pipe_name"), "<name>",
                            "Name the pipe socket <name> (default ferryd).")
          .addOptionWithArg({"listen"}, flag("listen"), "<addr>[,<addr>...]",
                            "Listen for tcp and udp on these addresses (default 127.0.0.1).")
          .addOptionWithArg({"port"}, flag("port"), "<port>",
                            "Listen for tcp and udp on <port> (default 7135; 0: any free port).")
          .addOptionWithArg({"transports"}, flag("transports"), "<protseq>[,<protseq>...]",
                            "Start only these transports (default: every installed one).")
          .addOptionWithArg({"security"}, flag("security"), "<name>[:<settings>][;...]",
                            "Run these security providers (RuntimeOptions::security), e.g. "
                            "\"local;tls:ca=/etc/ferry/ca.pem,cert=...,key=...,principals=...\".")
          .addOptionWithArg({"minimum-level"}, flag("minimum_level"), "<level>",
                            "Answer resolves over the network at this level or above: none, "
                            "integrity (the default with providers) or privacy.")
          .addOptionWithArg({"class-directory"}, flag("class_directory"), "<dir>",
                            "Launch servers for activated classes from the class files in <dir> "
                            "(one CLASS.class file per class; default: none).")
          .addOption({"insecure-activation"},
                     [&]() -> kj::MainBuilder::Validity {
                       flags["insecure_activation"] = "yes";
                       return true;
                     },
                     "Activate classes for peers of other hosts below integrity (no security "
                     "provider): anyone who reaches ferryd can launch its servers.")
          .addOption({"insecure-network"},
                     [&]() -> kj::MainBuilder::Validity {
                       flags["insecure_network"] = "yes";
                       return true;
                     },
                     "Listen on addresses other than loopback without a security provider: "
                     "anyone who reaches them can resolve and call unauthenticated.")
          .callAfterParsing([&]() -> kj::MainBuilder::Validity {
            if (!readConfig(config, settings, configRequired)) Context::finish(2);
            for (auto& [k, v] : flags) settings[k] = v;
            Context::finish(serve(settings));
          })
          .build();
  return kj::runMainAndExit(context, kj::mv(parser), argc, argv);
}
