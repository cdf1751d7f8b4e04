// ferryd: the host's OXID resolver daemon.
//
// Answers resolve requests (OXID → the exporter's bindings and RemUnknown IPID) on well-known
// endpoints — tcp/udp port 7135 and the pipe /run/ferry/ferryd by default — for its own
// apartments and for every OXID the processes of its host registered with it over the pipe.
// Processes find it by its pipe (RuntimeOptions::resolver, FERRY_RESOLVER); without a ferryd a
// process answers for itself, so single-host use needs no daemon.
//
//   ferryd [--config FILE] [--pipe-directory DIR] [--pipe-name NAME] [--listen ADDR[,ADDR]]
//          [--port PORT] [--transports tcp,udp,pipe]
//
// The config file (default /etc/ferry/ferryd.conf, if present) holds `key = value` lines with
// the same keys (pipe_directory, pipe_name, listen, port, transports); flags override it.
// It runs until SIGINT or SIGTERM and prints one line per endpoint it listens on.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <ferry/ferry.h>

namespace {

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
  static const char* kKeys[] = {"pipe_directory", "pipe_name", "listen", "port", "transports"};
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
                           "port, transports as `key = value`\n", path.c_str(), number);
      return false;
    }
    settings[key] = trim(line.substr(eq + 1));
  }
  return true;
}

int usage() {
  std::fprintf(stderr, "usage: ferryd [--config FILE] [--pipe-directory DIR] [--pipe-name NAME] "
                       "[--listen ADDR[,ADDR]] [--port PORT] [--transports LIST]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> settings = {
      {"pipe_directory", "/run/ferry"}, {"pipe_name", "ferryd"}, {"listen", "127.0.0.1"},
      {"port", "7135"}, {"transports", ""}};
  std::string config = "/etc/ferry/ferryd.conf";
  bool configRequired = false;
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    std::string value = argv[++i];
    if (a == "--config") {
      config = value;
      configRequired = true;
    } else if (a == "--pipe-directory") {
      flags["pipe_directory"] = value;
    } else if (a == "--pipe-name") {
      flags["pipe_name"] = value;
    } else if (a == "--listen") {
      flags["listen"] = value;
    } else if (a == "--port") {
      flags["port"] = value;
    } else if (a == "--transports") {
      flags["transports"] = value;
    } else {
      return usage();
    }
  }
  if (!readConfig(config, settings, configRequired)) return 2;
  for (auto& [k, v] : flags) settings[k] = v;

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
    options.listenAddresses = splitList(settings["listen"]);
    options.listenPort = settings["port"];
    options.transports = splitList(settings["transports"]);
    options.resolver = "";
    options.acceptRegistrations = true;
    ferry::Runtime runtime(options);
    auto bindings = runtime.bindings();
    if (bindings.empty()) {
      std::fprintf(stderr, "ferryd: no transport is listening (are the plugins installed or on "
                           "FERRY_PLUGIN_PATH?)\n");
      return 1;
    }
    for (const auto& b : bindings) std::printf("ferryd listening on %s\n", b.c_str());
    std::fflush(stdout);
    int signal = 0;
    sigwait(&stopSignals, &signal);
    std::printf("ferryd stopping (%s)\n", strsignal(signal));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferryd: %s\n", e.what());
    return 1;
  }
  return 0;
}
