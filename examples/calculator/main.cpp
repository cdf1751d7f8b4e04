// The ferry demo.
//
// Part 1, one process: a Calculator served from an STA, called from the MTA and from a second
// STA, with a Listener callback passed as a parameter and called back in the caller's apartment.
// Part 2, two processes: the demo starts itself again as a server (`--serve`), which publishes its
// calculator under a name; the demo binds to it by a ferry:// reference and makes the same calls
// over the pipe, then over tcp, printing which transport each proxy chose. Resolution is
// embedded: no daemon runs.
// Part 3, a protected call: a CA and two certificates made now (OpenSSL's API, in a temporary
// directory removed at the end), a server process and this one each with the tls security
// provider; one call at level privacy, and the principal the calculator saw calling it.
// Part 4, activation: the demo starts a ferryd of its own with a class file for
// "demo.Calculator" naming this program (`--serve-class`), and creates a calculator by class:
// ferryd launches the server, which registers its class object. Released, the server is idle and
// ferryd asks it to exit; then a ferry://127.0.0.1:PORT/class/demo.Calculator reference launches
// it again. No OBJREF, no pid, no port of the server passes by hand.
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cstdio>
#include <optional>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <ferry/ferry.h>

#include "calculator.ferry.h"
#include "pki.h"

extern char** environ;

using demo::iface::Calculator;
using demo::iface::Listener;

namespace {

std::string here() {
  ferry::Apartment apartment = ferry::tryCurrentApartment();
  if (!apartment) return "no apartment";
  return std::string(ferry::toString(apartment.kind())) + ":" + apartment.name();
}

class CalculatorImpl final : public ferry::Implements<Calculator> {
public:
  double add(double a, double b) override { return report("add", a + b); }

  double divide(double a, double b) override {
    if (b == 0) throw std::domain_error("division by zero");
    return report("divide", a / b);
  }

  uint32_t subscribe(ferry::Ref<Listener> listener) override {
    _listeners.push_back(std::move(listener));
    return static_cast<uint32_t>(_listeners.size());
  }

  void unsubscribeAll() override { _listeners.clear(); }

  std::string whereAmI() override { return here(); }

  std::string whoCalls() override {
    std::optional<ferry::ClientBlanket> caller = ferry::clientBlanket();
    if (!caller) return "a caller in this process";
    if (caller->provider.empty()) return "an unauthenticated caller, at level none";
    return "principal '" + caller->principal + "' authenticated by the " + caller->provider +
           " provider, at level " + std::string(ferry::toString(caller->level));
  }

private:
  double report(const char* operation, double value) {
    std::printf("  [%s] calculator computed %s = %g\n", here().c_str(), operation, value);
    // Calls back into each listener's apartment while the caller waits for this call.
    for (auto& listener : _listeners) listener->onResult(operation, value);
    return value;
  }

  std::vector<ferry::Ref<Listener>> _listeners;
};

class PrintingListener final : public ferry::Implements<Listener> {
public:
  explicit PrintingListener(std::string name) : _name(std::move(name)) {}
  void onResult(std::string_view operation, double value) override {
    std::printf("  [%s] listener '%s' heard %.*s -> %g\n", here().c_str(), _name.c_str(),
                static_cast<int>(operation.size()), operation.data(), value);
  }

private:
  std::string _name;
};

void callFrom(const char* who, ferry::Ref<Calculator> calculator) {
  std::printf("%s (running in %s) holds a %s\n", who, here().c_str(),
              ferry::detail::asProxy(calculator.get()) ? "proxy" : "direct pointer");
  std::printf("  calculator lives in %s\n", calculator->whereAmI().c_str());
  std::printf("  add(2, 3) = %g\n", calculator->add(2, 3));
  try {
    calculator->divide(1, 0);
  } catch (const ferry::Error& e) {
    std::printf("  divide(1, 0) failed: %s\n", e.what());
  }
}

// `--serve`: the server process of part 2. Publishes its calculator under the name
// "demo/calculator", prints the ferry:// reference that reaches it and runs until its standard
// input closes. Without a ferryd on this host the process answers lookups of its own names on
// its own port; with one, ferry://127.0.0.1/name/demo/calculator (ferryd's port) would do.
int serve(const ferry::RuntimeOptions& options) {
  ferry::Runtime runtime(options);
  ferry::Sta server = runtime.newSta("calculator-server");
  ferry::Publication published = server.invoke([] {
    return ferry::publish("demo/calculator", ferry::Ref<Calculator>(ferry::make<CalculatorImpl>()));
  });
  std::string port;
  for (const std::string& b : runtime.bindings()) {
    if (b.rfind("tcp:127.0.0.1[", 0) == 0) port = b.substr(14, b.size() - 15);
  }
  std::printf("ferry://127.0.0.1:%s/name/%s\n", port.c_str(), published.name().c_str());
  std::fflush(stdout);
  char buffer[64];
  while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
  }
  return 0;
}

// Reads one line of `fd`, waiting at most 10 s.
std::string readLine(int fd) {
  std::string line;
  pollfd p{fd, POLLIN, 0};
  for (char c; poll(&p, 1, 10000) > 0 && read(fd, &c, 1) == 1 && c != '\n';) line += c;
  return line;
}

// A server process: this program started again with `arguments` (`--serve ...`). Its first
// line is the reference to its calculator (a bounded wait): no OBJREF passes by hand.
class ServerProcess {
public:
  explicit ServerProcess(std::vector<std::string> arguments) {
    int toChild[2];
    int fromChild[2];
    if (pipe(toChild) != 0 || pipe(fromChild) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, toChild[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fromChild[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, toChild[1]);
    posix_spawn_file_actions_addclose(&actions, fromChild[0]);
    char self[] = "/proc/self/exe";
    std::vector<char*> argv{self};
    for (std::string& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&_pid, self, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(toChild[0]);
    close(fromChild[1]);
    _input = toChild[1];
    _output = fromChild[0];
    if (rc != 0) throw std::runtime_error("cannot start the server process");
    reference = readLine(_output);
  }
  ServerProcess(const ServerProcess&) = delete;
  ~ServerProcess() {
    if (_pid != 0) {
      kill(_pid, SIGKILL);
      waitpid(_pid, nullptr, 0);
    }
    close(_input);
    close(_output);
  }

  // Closes its input (it exits) and waits for it, a bounded wait.
  void finish() {
    close(_input);
    _input = -1;
    int status = 0;
    for (int i = 0; i < 1000 && waitpid(_pid, &status, WNOHANG) == 0; ++i) usleep(10000);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      throw std::runtime_error("the server process did not exit cleanly");
    }
    _pid = 0;
    std::printf("the server process exited cleanly\n");
  }

  pid_t pid() const noexcept { return _pid; }
  std::string reference;

private:
  pid_t _pid = 0;
  int _input = -1;
  int _output = -1;
};
// `--serve-class`: the server of part 4, launched by ferryd. Registers the calculator's class
// object and serves until ferryd asks it to exit (idle: nobody holds its objects).
int serveClass() {
  ferry::Runtime runtime;
  ferry::Sta server = runtime.newSta("calculator-server pid " + std::to_string(getpid()));
  ferry::ClassObjectRegistration registration = server.invoke([] {
    return ferry::registerClassObject(
        {demo::CALCULATOR_CLASS.get().cStr()},
        [] { return ferry::Ref<ferry::Interface>(ferry::make<CalculatorImpl>()); },
        ferry::ClassUse::multipleUse);
  });
  while (!ferry::waitForExitRequest(std::chrono::milliseconds(500))) {
  }
  registration.revoke();
  return 0;
}

pid_t spawn(const std::vector<std::string>& args, int stdoutFd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdoutFd >= 0) posix_spawn_file_actions_adddup2(&actions, stdoutFd, STDOUT_FILENO);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t child = 0;
  int rc = posix_spawn(&child, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
  return child;
}

// The pid in a "... pid N" apartment name.
pid_t pidIn(const std::string& apartment) {
  size_t at = apartment.rfind("pid ");
  return at == std::string::npos ? 0 : static_cast<pid_t>(std::stoi(apartment.substr(at + 4)));
}

// Part 4: ferryd launches the calculator's server by class, and again by a ferry:// reference.
void activation() {
  namespace fs = std::filesystem;
  char path[] = "/tmp/ferry-demo-XXXXXX";
  if (mkdtemp(path) == nullptr) throw std::runtime_error("mkdtemp failed");
  fs::path root = path;
  chmod(path, 0755);
  fs::create_directory(root / "run");
  fs::create_directory(root / "classes");
  // The class file: what ferryd launches for demo.Calculator (README: "Activation").
  std::string self = fs::read_symlink("/proc/self/exe").string();
  std::ofstream(root / "classes" / "demo.Calculator.class")
      << "executable = " << self << "\nargument = --serve-class\nidle_timeout_ms = 1000\n";
  std::printf("class file %s:\n  executable = %s\n  argument = --serve-class\n"
              "  idle_timeout_ms = 1000\n",
              (root / "classes" / "demo.Calculator.class").c_str(), self.c_str());

  int out[2];
  if (pipe(out) != 0) throw std::runtime_error("pipe failed");
  pid_t ferryd = spawn({FERRY_DEMO_FERRYD, "--pipe-directory", (root / "run").string(),
                        "--pipe-name", "ferryd", "--port", "0", "--transports", "pipe,tcp",
                        "--class-directory", (root / "classes").string()},
                       out[1]);
  close(out[1]);
  std::string port;
  while (port.empty()) {
    std::string line = readLine(out[0]);
    if (line.empty()) break;
    std::printf("%s\n", line.c_str());
    if (size_t at = line.find("tcp:127.0.0.1["); at != std::string::npos) {
      port = line.substr(at + 14, line.find(']', at) - at - 14);
    }
  }
  auto stop = [&] {
    kill(ferryd, SIGTERM);
    int status = 0;
    for (int i = 0; i < 1000 && waitpid(ferryd, &status, WNOHANG) == 0; ++i) usleep(10000);
    close(out[0]);
    fs::remove_all(root);
  };
  try {
    if (port.empty()) throw std::runtime_error("ferryd did not start");
    ferry::RuntimeOptions options;
    options.resolver = "pipe:" + (root / "run").string() + "[ferryd]";  // this ferryd, not /run/ferry's
    ferry::Runtime runtime(options);
    ferry::Sta client = runtime.newSta("client");
    auto use = [](ferry::Ref<Calculator> calculator) {
      std::string where = calculator->whereAmI();
      std::printf("  the calculator lives in %s (transport %s)\n", where.c_str(),
                  ferry::transportOf(calculator.get()).c_str());
      std::printf("  add(2, 3) = %g\n", calculator->add(2, 3));
      return pidIn(where);
    };
    std::printf("createInstance<Calculator>({\"demo.Calculator\"}): ferryd launches the server\n");
    pid_t first = client.invoke(
        [&] { return use(ferry::createInstance<Calculator>({demo::CALCULATOR_CLASS.get().cStr()})); });
    // Released (the client STA sent the release once the call returned): the server holds nothing
    // for others, and ferryd asks it to exit when it has been idle for the class's idle timeout.
    for (int i = 0; i < 1000 && kill(first, 0) == 0; ++i) usleep(10000);
    std::printf("  released it; the idle server (pid %d) %s\n", static_cast<int>(first),
                kill(first, 0) == 0 ? "still runs" : "was asked to exit by ferryd, and did");
    std::string reference = "ferry://127.0.0.1:" + port + "/class/demo.Calculator";
    std::printf("ferry::bind<Calculator>(\"%s\"): launched again\n", reference.c_str());
    client.invoke([&] { use(ferry::bind<Calculator>(reference)); });
  } catch (...) {
    stop();
    throw;
  }
  stop();
  std::printf("ferryd stopped, and the server it launched with it\n");
}

// Part 2: a second process serves the calculator; this one calls it over pipe, then tcp.
void twoProcesses() {
  ServerProcess server({"--serve"});
  std::printf("server process %d published its calculator as %s\n",
              static_cast<int>(server.pid()), server.reference.c_str());
  {
    ferry::Runtime runtime;
    std::printf("this process listens on:");
    for (const auto& b : runtime.bindings()) std::printf(" %s", b.c_str());
    std::printf("\n");
    ferry::Sta client = runtime.newSta("client");
    client.invoke([&] {
      auto calculator = ferry::bind<Calculator>(server.reference);
      ferry::Ref<Listener> listener = ferry::make<PrintingListener>("client (other process)");
      calculator->subscribe(listener);
      for (const char* transport : {"", "tcp"}) {
        if (*transport != '\0') ferry::setTransport(calculator.get(), transport);
        std::printf("the proxy's transport: %s\n", ferry::transportOf(calculator.get()).c_str());
        std::printf("  calculator lives in %s (another process)\n", calculator->whereAmI().c_str());
        std::printf("  add(2, 3) = %g\n", calculator->add(2, 3));
        try {
          calculator->divide(1, 0);
        } catch (const ferry::Error& e) {
          std::printf("  divide(1, 0) failed: %s\n", e.what());
        }
      }
      calculator->unsubscribeAll();
    });
  }
  server.finish();
}

// Options of one end of part 3: tcp only, the tls provider with `settings`, level privacy at
// least.
ferry::RuntimeOptions protectedOptions(const std::string& settings) {
  ferry::RuntimeOptions options;
  options.transports = {"tcp"};
  options.security = {{"tls", settings}};
  options.minimumLevel = ferry::SecurityLevel::privacy;
  return options;
}

// Part 3: the certificates, a server process with the server's, a call with the client's.
void protectedCall() {
  ferry::test::TempDir dir;
  ferry::test::TestCa ca("ferry demo CA");
  ferry::test::Identity server = ca.issue({"calculator server", "DNS:calculator.demo"});
  ferry::test::Identity client = ca.issue({"demo client", "URI:spiffe://demo/client"});
  // Principals come from a certificate's subjectAltName through this table, never from its CN.
  std::string common = "ca=" + dir.write("ca.pem", ca.certPem()) + ",principals=" +
                       dir.write("principals", "dns:calculator.demo calculator-server\n"
                                               "uri:spiffe://demo/client demo-client\n");
  std::string serverSettings = common + ",cert=" + dir.write("server.pem", server.certPem) +
                               ",key=" + dir.write("server.key", server.keyPem);
  std::string clientSettings = common + ",cert=" + dir.write("client.pem", client.certPem) +
                               ",key=" + dir.write("client.key", client.keyPem);
  std::printf("made a CA and two certificates in %s (removed at the end)\n", dir.path().c_str());

  ServerProcess process({"--serve", serverSettings});
  std::printf("server process %d (tls, level privacy) published its calculator as %s\n",
              static_cast<int>(process.pid()), process.reference.c_str());
  {
    ferry::Runtime runtime(protectedOptions(clientSettings));
    auto mta = runtime.joinMta();
    auto calculator = ferry::bind<Calculator>(process.reference);
    std::printf("  add(2, 3) = %g\n", calculator->add(2, 3));
    std::printf("  the calculator saw %s\n", calculator->whoCalls().c_str());
  }
  process.finish();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--serve-class") {
    try {
      return serveClass();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "server failed: %s\n", e.what());
      return 1;
    }
  }
  if (argc > 1 && std::string(argv[1]) == "--serve") {
    try {
      return serve(argc > 2 ? protectedOptions(argv[2]) : ferry::RuntimeOptions());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "server failed: %s\n", e.what());
      return 1;
    }
  }
  std::printf("== part 1: apartments of one process\n");
  try {
    ferry::Runtime runtime;
    ferry::Sta server = runtime.newSta("calculator");
    ferry::Sta client = runtime.newSta("client");

    // The calculator is created in its STA; what leaves the STA is a marshaled interface pointer.
    ferry::ObjRefBytes packet = server.invoke([] {
      ferry::Ref<Calculator> calculator = ferry::make<CalculatorImpl>();
      return ferry::marshalInterface(calculator, ferry::MarshalContext::inproc,
                                     ferry::MarshalFlags::tableStrong);
    });
    std::printf("marshaled the calculator: a %zu-byte OBJREF\n\n", packet.size());

    {
      // From the MTA: the main thread joins it for this block.
      auto mta = runtime.joinMta();
      auto calculator = ferry::unmarshalInterface<Calculator>(packet);
      callFrom("the MTA", calculator);
      std::printf("\n");
    }

    client.invoke([&] {
      auto calculator = ferry::unmarshalInterface<Calculator>(packet);
      // A listener living in this STA, passed as a parameter: the calculator gets a proxy.
      ferry::Ref<Listener> listener = ferry::make<PrintingListener>("client");
      std::printf("the client STA subscribes a listener (%u now)\n", calculator->subscribe(listener));
      callFrom("the client STA", calculator);
      calculator->unsubscribeAll();
    });
    std::printf("\n");

    // The table-strong packet kept the calculator alive until now.
    server.invoke([&] { ferry::releaseMarshalData(packet); });
    std::printf("released the packet; the calculator's apartment released the object\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo failed: %s\n", e.what());
    return 1;
  }
  auto stats = ferry::Runtime::stats();
  std::printf("after shutdown: %lld exported objects, %lld proxies, %lld apartments\n",
              static_cast<long long>(stats.exportedObjects),
              static_cast<long long>(stats.proxyManagers), static_cast<long long>(stats.apartments));

  std::printf("\n== part 2: two processes\n");
  try {
    twoProcesses();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo failed: %s\n", e.what());
    return 1;
  }

  std::printf("\n== part 3: a call protected by the tls provider\n");
  try {
    protectedCall();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo failed: %s\n", e.what());
    return 1;
  }

  std::printf("\n== part 4: activation through ferryd\n");
  try {
    activation();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo failed: %s\n", e.what());
    return 1;
  }
  return 0;
}
