// A client running as another user than the server: the server's pipe socket is not open to it,
// so the import moves on to the next binding in cost order (udp, else tcp) and says so; once the pipe is made accessible,
// the pipe is used again.
//   other-user-test -- <ferry-test-peer> <ferry-netns-client>
// The server runs as root, the client as uid/gid 65534 (setpriv). The client and the libraries and
// plugins it loads are copied into a scratch directory that user can read, since the build tree
// may not be. Needs root: without it, it says so and exits 77 (meson: skipped).
#define BOOST_TEST_MODULE other-user
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "child-process.h"

using ferry::test::capture;
using ferry::test::Child;
namespace fs = std::filesystem;

namespace {

constexpr const char* kOtherUid = "65534";

std::string arg(int index) {
  return ferry::test::testArgument(index, "usage: other-user-test -- <peer> <client>");
}

std::vector<std::string> asOtherUser() {
  return {"setpriv", std::string("--reuid=") + kOtherUid, std::string("--regid=") + kOtherUid,
          "--clear-groups"};
}

std::string whyNotRunnable() {
  if (geteuid() != 0) return "running a client as another user needs root";
  std::string probe;
  for (const auto& word : asOtherUser()) probe += word + " ";
  auto [status, output] = capture(probe + "true");
  if (status != 0) return "cannot switch to uid " + std::string(kOtherUid) + ": " + output;
  return "";
}

// The client, copied where the other user can read it, and the server's pipe directory and the
// client's runtime directory beside it.
class Scratch {
public:
  explicit Scratch(const std::string& client) : _copy(client), root(_copy.root) {
    // The server's pipe directory: root's alone until the test opens it.
    fs::create_directory(root / "pipe");
    chmod((root / "pipe").c_str(), 0700);
    // The client's own runtime directory.
    fs::create_directory(root / "run");
    BOOST_REQUIRE(chown((root / "run").c_str(), 65534, 65534) == 0);
    chmod((root / "run").c_str(), 0700);
  }

  // Runs the client as the other user; returns its "ok" count and exit status.
  std::pair<int, int> runClient(const std::string& holder, const std::string& expect) {
    std::vector<std::string> argv = asOtherUser();
    argv.push_back("env");
    argv.push_back("XDG_RUNTIME_DIR=" + (root / "run").string());
    for (const std::string& word : _copy.command()) argv.push_back(word);
    for (std::string word : {holder, std::string("127.0.0.1"), std::string("--expect"), expect}) {
      argv.push_back(word);
    }
    Child child(argv);
    int ok = 0;
    std::string line;
    while (child.readLine(line, std::chrono::seconds(30))) {
      BOOST_TEST_MESSAGE("client: " << line);
      BOOST_CHECK_MESSAGE(line.rfind("ok ", 0) == 0, line);
      if (line.rfind("ok ", 0) == 0) ++ok;
    }
    return {ok, child.wait(std::chrono::seconds(30))};
  }

private:
  ferry::test::PortableCopy _copy;

public:
  const fs::path root;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_client_that_cannot_open_the_pipe_moves_on_to_the_next_binding_and_takes_the_pipe_when_it_can) {
  if (std::string why = whyNotRunnable(); !why.empty()) {
    std::printf("SKIP: %s\n", why.c_str());
    std::exit(77);
  }
  Scratch scratch(arg(2));
  Child server({arg(1), "--pipe-directory", (scratch.root / "pipe").string()});
  std::string holder;
  std::string line;
  while (server.readLine(line, std::chrono::seconds(20)) && line != "ready") {
    if (line.rfind("holder ", 0) == 0) holder = line.substr(7);
  }
  BOOST_REQUIRE_MESSAGE(!holder.empty(), "the server did not start");

  // The next binding in cost order: udp when its plugin is there, else tcp.
  bool udp = fs::exists(scratch.root / "plugins" / "ferry-transport-udp.so");
  BOOST_TEST_CONTEXT("the pipe is root's alone") {
    auto [ok, status] = scratch.runClient(holder, udp ? "udp:127.0.0.1[" : "tcp:127.0.0.1[");
    BOOST_CHECK_EQUAL(ok, 5);
    BOOST_CHECK_EQUAL(status, 0);
  }
  // Open the pipe to every user: its directory and socket.
  chmod((scratch.root / "pipe").c_str(), 0755);
  for (const auto& entry : fs::directory_iterator(scratch.root / "pipe")) {
    chmod(entry.path().c_str(), 0777);
  }
  BOOST_TEST_CONTEXT("the pipe is open to the client") {
    auto [ok, status] = scratch.runClient(holder, "pipe:");
    BOOST_CHECK_EQUAL(ok, 5);
    BOOST_CHECK_EQUAL(status, 0);
  }

  ferry::test::finishPeer(server);
}
