// Activation through ferryd (ferry/activation.h): a ferryd with a class directory of its own
// launches ferry-test-class-server for the classes this test activates.
//   activation-test -- <ferryd> <ferry-test-class-server> <ferry>
// Every launched server appends its pid to a file of its class, so the tests count launches by
// the pids the servers reported. ferryd stops the servers it launched when it stops (SIGTERM).
#define BOOST_TEST_MODULE activation
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <ferry/ferry.h>

#include "activation.ferry.h"
#include "child-process.h"

using namespace ferry;
using acttest::iface::Activated;
using acttest::iface::Listener;
using ferry::test::Child;

namespace {

std::string argument(int index) {
  return ferry::test::testArgument(
      index, "usage: activation-test -- <ferryd> <ferry-test-class-server> <ferry>");
}

#define FERRY_CHECK_ERRC(expr, expected, fragment)                                         \
  do {                                                                                     \
    try {                                                                                  \
      (void)(expr);                                                                        \
      BOOST_ERROR("expected " << errcName(expected) << ", nothing was thrown");            \
    } catch (const ferry::Error& e) {                                                      \
      BOOST_CHECK_MESSAGE(e.code() == expected, "got " << e.what());                       \
      BOOST_CHECK_MESSAGE(e.message().find(fragment) != std::string::npos,                 \
                          "'" << fragment << "' is not in: " << e.message());              \
    }                                                                                      \
  } while (0)

// The test's ferryd, its class files, and this process's runtime registered with it.
struct World {
  World() {
    char path[] = "/tmp/ferry-activation-XXXXXX";
    BOOST_REQUIRE(mkdtemp(path) != nullptr);
    root = path;
    chmod(path, 0755);
    std::filesystem::create_directory(root + "/classes");
    std::filesystem::create_directory(root + "/run");
    chmod((root + "/run").c_str(), 0755);
    writeClass("test.Multi", "");
    writeClass("test.Fifty", "start_timeout_ms = 60000\n");
    writeClass("test.Single", "argument = --single-use\nstart_timeout_ms = 60000\n");
    writeClass("test.Idle", "idle_timeout_ms = 300\n");
    writeClass("test.IdleOwn", "argument = --hold-own\nidle_timeout_ms = 300\n");
    writeClass("test.Crash", "");
    writeClass("test.Failing", "argument = --fail\n");
    writeClass("test.Silent", "argument = --never-register\nstart_timeout_ms = 1500\n");
    writeClass("test.Restricted", "allow = uid:4242\nallow = someone@example\n");
    ferryd.emplace(std::vector<std::string>{argument(1), "--pipe-directory", root + "/run",
                                            "--pipe-name", "ferryd", "--port", "0",
                                            "--transports", "pipe,tcp", "--class-directory",
                                            root + "/classes"});
    std::string line;
    while (tcpPort.empty() && ferryd->readLine(line, std::chrono::seconds(20))) {
      // "ferryd listening on tcp:127.0.0.1[40211]"
      if (line.find("tcp:127.0.0.1[") != std::string::npos) {
        tcpPort = line.substr(line.find('[') + 1, line.find(']') - line.find('[') - 1);
      }
    }
    BOOST_REQUIRE_MESSAGE(!tcpPort.empty(), "ferryd did not start");
    RuntimeOptions options;
    // This ferryd, also over the suite's FERRY_RESOLVER=none (which would win).
    setenv("FERRY_RESOLVER", ("pipe:" + root + "/run[ferryd]").c_str(), 1);
    options.resolver = "pipe:" + root + "/run[ferryd]";
    options.transports = {"pipe", "tcp"};
    options.activationCheck = [](const ActivationRequester& r) { return r.clsid != "local.Denied"; };
    runtime.emplace(options);
  }

  ~World() {
    runtime.reset();
    ferryd->signal(SIGTERM);
    BOOST_CHECK_EQUAL(ferryd->wait(std::chrono::seconds(20)), 0);
    std::filesystem::remove_all(root);
  }

  void writeClass(const std::string& clsid, const std::string& more) {
    std::ofstream out(root + "/classes/" + clsid + ".class");
    out << "# written by activation-test\nexecutable = " << argument(2)
        << "\nargument = --class\nargument = " << clsid << "\nargument = --pids\nargument = "
        << pidsFile(clsid) << "\n" << more;
  }

  std::string pidsFile(const std::string& clsid) const { return root + "/" + clsid + ".pids"; }

  // The pids the servers of `clsid` reported, in launch order.
  std::vector<pid_t> launched(const std::string& clsid) const {
    std::vector<pid_t> out;
    std::ifstream in(pidsFile(clsid));
    for (pid_t pid; in >> pid;) out.push_back(pid);
    return out;
  }

  std::string root;
  std::string tcpPort;
  std::optional<Child> ferryd;
  std::optional<Runtime> runtime;
};

World* gWorld = nullptr;

struct WorldFixture {
  void setup() { gWorld = new World; }
  void teardown() {
    delete gWorld;
    gWorld = nullptr;
  }
};
BOOST_TEST_GLOBAL_FIXTURE(WorldFixture);

class EchoingListener final : public Implements<Listener> {
public:
  int64_t heard(int64_t value) override {
    ++calls;
    return value * 2;
  }
  std::atomic<int> calls{0};
};

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

// Waits (at most 20 s) until process `pid` is gone (exited and reaped by ferryd).
bool waitGone(pid_t pid) {
  for (int i = 0; i < 2000 && alive(pid); ++i) usleep(10000);
  return !alive(pid);
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_activation_launches_the_server_and_calls_pass_references_both_ways) {
  auto mta = gWorld->runtime->joinMta();
  auto object = createInstance<Activated>({"test.Multi"});
  pid_t server = object->pid();
  BOOST_CHECK_NE(server, getpid());
  BOOST_CHECK((gWorld->launched("test.Multi") == std::vector<pid_t>{server}));
  // Client → server: a listener of this process, called back by the server.
  Ref<EchoingListener> listener = make<EchoingListener>();
  BOOST_CHECK_EQUAL(object->callBack(listener, 21), 42);
  BOOST_CHECK_EQUAL(listener->calls.load(), 1);
  // Server → client: a new object of the server process.
  Ref<Activated> sibling = object->sibling();
  BOOST_CHECK_EQUAL(sibling->pid(), server);
  // The running server is asked again, by class and by a ferry:// reference to ferryd's port.
  BOOST_CHECK_EQUAL(createInstance<Activated>({"test.Multi"})->pid(), server);
  auto byReference =
      ferry::bind<Activated>("ferry://127.0.0.1:" + gWorld->tcpPort + "/class/test.Multi");
  BOOST_CHECK_EQUAL(byReference->pid(), server);
  BOOST_CHECK_EQUAL(transportOf(byReference.get()).rfind("pipe:", 0), 0u);
  BOOST_CHECK_EQUAL(gWorld->launched("test.Multi").size(), 1u);
}

namespace {

// `count` threads activate `clsid` at once; the pids of the servers that answered.
std::multiset<pid_t> activateConcurrently(const std::string& clsid, int count) {
  std::vector<std::thread> threads;
  std::vector<pid_t> pids(static_cast<size_t>(count), 0);
  std::vector<std::string> failures(static_cast<size_t>(count));
  std::atomic<int> ready{0};
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&, i] {
      auto mta = gWorld->runtime->joinMta();
      ++ready;
      while (ready.load() < count) std::this_thread::yield();
      try {
        CallTimeout timeout(std::chrono::seconds(90));
        pids[static_cast<size_t>(i)] = createInstance<Activated>({clsid})->pid();
      } catch (const std::exception& e) {
        failures[static_cast<size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& f : failures) BOOST_CHECK_MESSAGE(f.empty(), f);
  return {pids.begin(), pids.end()};
}

}  // namespace

BOOST_AUTO_TEST_CASE(fifty_concurrent_activations_of_a_multiple_use_class_launch_one_server) {
  std::multiset<pid_t> pids = activateConcurrently("test.Fifty", 50);
  std::vector<pid_t> launched = gWorld->launched("test.Fifty");
  BOOST_REQUIRE_EQUAL(launched.size(), 1u);
  BOOST_CHECK_EQUAL(pids.count(launched[0]), 50u);
}

BOOST_AUTO_TEST_CASE(fifty_concurrent_activations_of_a_single_use_class_launch_fifty_servers) {
  std::multiset<pid_t> pids = activateConcurrently("test.Single", 50);
  std::vector<pid_t> launched = gWorld->launched("test.Single");
  BOOST_CHECK_EQUAL(launched.size(), 50u);
  // Each activation was served by a server of its own.
  BOOST_CHECK_EQUAL(std::set<pid_t>(pids.begin(), pids.end()).size(), 50u);
  for (pid_t pid : launched) BOOST_CHECK_EQUAL(pids.count(pid), 1u);
}

BOOST_AUTO_TEST_CASE(an_unknown_class_is_class_not_registered) {
  auto mta = gWorld->runtime->joinMta();
  FERRY_CHECK_ERRC(createInstance<Activated>({"test.Nowhere"}), Errc::classNotRegistered,
                   "test.Nowhere.class");
  FERRY_CHECK_ERRC(ferry::bind<Activated>("ferry://127.0.0.1:" + gWorld->tcpPort +
                                          "/class/test.Nowhere"),
                   Errc::classNotRegistered, "no process of this host registered");
}

BOOST_AUTO_TEST_CASE(a_server_that_exits_before_registering_fails_with_its_status_and_stderr) {
  auto mta = gWorld->runtime->joinMta();
  FERRY_CHECK_ERRC(createInstance<Activated>({"test.Failing"}), Errc::serverStartFailed,
                   "exited with status 3");
  FERRY_CHECK_ERRC(createInstance<Activated>({"test.Failing"}), Errc::serverStartFailed,
                   "cannot open its database /nonexistent/db");
  // Each activation launched it again.
  BOOST_CHECK_EQUAL(gWorld->launched("test.Failing").size(), 2u);
}

BOOST_AUTO_TEST_CASE(a_server_that_never_registers_is_killed_after_its_start_timeout) {
  auto mta = gWorld->runtime->joinMta();
  FERRY_CHECK_ERRC(createInstance<Activated>({"test.Silent"}), Errc::deadlineExceeded,
                   "start_timeout_ms = 1500");
  std::vector<pid_t> launched = gWorld->launched("test.Silent");
  BOOST_REQUIRE_EQUAL(launched.size(), 1u);
  BOOST_CHECK(waitGone(launched[0]));
}

BOOST_AUTO_TEST_CASE(the_activation_check_refuses_with_access_denied) {
  auto mta = gWorld->runtime->joinMta();
  // This process serves the class itself; its activation check refuses it.
  ClassObjectRegistration registration = registerClassObject(
      {"local.Denied"}, [] { return Ref<Interface>(make<EchoingListener>()); },
      ClassUse::multipleUse);
  std::string port;
  for (const std::string& b : gWorld->runtime->bindings()) {
    if (b.rfind("tcp:127.0.0.1[", 0) == 0) port = b.substr(14, b.size() - 15);
  }
  BOOST_REQUIRE(!port.empty());
  FERRY_CHECK_ERRC(createInstance<Listener>({"local.Denied"}, {.host = "127.0.0.1", .port = port}),
                   Errc::accessDenied, "RuntimeOptions::activationCheck");
  BOOST_CHECK(Runtime::stats().callsDenied >= 1);
}

BOOST_AUTO_TEST_CASE(a_class_file_allows_only_its_requesters) {
  auto mta = gWorld->runtime->joinMta();
  // Over the pipe this process is uid:<its uid>; over tcp without a provider, anonymous.
  FERRY_CHECK_ERRC(createInstance<Activated>({"test.Restricted"}), Errc::accessDenied,
                   "is not among them");
  FERRY_CHECK_ERRC(ferry::bind<Activated>("ferry://127.0.0.1:" + gWorld->tcpPort +
                                          "/class/test.Restricted"),
                   Errc::accessDenied, "anonymous");
  BOOST_CHECK(gWorld->launched("test.Restricted").empty());
}

BOOST_AUTO_TEST_CASE(a_killed_server_is_relaunched_by_the_next_activation) {
  auto mta = gWorld->runtime->joinMta();
  auto first = createInstance<Activated>({"test.Crash"});
  pid_t killed = first->pid();
  BOOST_REQUIRE((gWorld->launched("test.Crash") == std::vector<pid_t>{killed}));
  // A pid ferryd started, as its server reported it.
  BOOST_REQUIRE(::kill(killed, SIGKILL) == 0);
  BOOST_CHECK(waitGone(killed));
  auto second = createInstance<Activated>({"test.Crash"});
  pid_t relaunched = second->pid();
  BOOST_CHECK_NE(relaunched, killed);
  BOOST_CHECK_EQUAL(gWorld->launched("test.Crash").size(), 2u);
  // The first proxy's server is gone.
  BOOST_CHECK_THROW(first->pid(), ferry::Error);
}

BOOST_AUTO_TEST_CASE(a_server_whose_exported_objects_only_it_holds_is_idle_while_a_client_reference_is_not) {
  auto mta = gWorld->runtime->joinMta();
  pid_t pid = 0;
  {
    auto object = createInstance<Activated>({"test.IdleOwn"});
    pid = object->pid();
    // This process's reference holds it (ferryd asks about once a second; 300 ms idle timeout).
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    BOOST_CHECK(alive(pid));
    BOOST_CHECK_EQUAL(object->pid(), pid);
  }
  // Released: what it still exports (its own proxy's object, its admin object) holds it for
  // nobody, so it is asked to exit and does.
  BOOST_CHECK(waitGone(pid));
  BOOST_CHECK_EQUAL(gWorld->launched("test.IdleOwn").size(), 1u);
}

BOOST_AUTO_TEST_CASE(an_idle_server_is_asked_to_exit_and_the_next_activation_launches_another) {
  auto mta = gWorld->runtime->joinMta();
  pid_t first = 0;
  {
    auto object = createInstance<Activated>({"test.Idle"});
    first = object->pid();
    // Held: not idle, however long (300 ms idle timeout, ferryd asks about once a second).
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    BOOST_CHECK(alive(first));
    BOOST_CHECK_EQUAL(object->pid(), first);
  }
  // Released: asked to exit, it exits (the class server exits 0 then; ferryd reaps it).
  BOOST_CHECK(waitGone(first));
  pid_t second = createInstance<Activated>({"test.Idle"})->pid();
  BOOST_CHECK_NE(second, first);
  BOOST_CHECK_EQUAL(gWorld->launched("test.Idle").size(), 2u);
}
