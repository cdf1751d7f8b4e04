// The host identity (runtime-impl.h readHostId): one per kernel and network namespace, from the
// machine id or, without one, from the kernel's boot id.
#define BOOST_TEST_MODULE host-id
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <ferry/error.h>

#include "runtime-impl.h"

using ferry::detail::readHostId;

namespace {

// A temporary directory with the files a test writes; removed at the end.
class Files {
public:
  Files() {
    char dir[] = "/tmp/ferry-host-id-XXXXXX";
    BOOST_REQUIRE(mkdtemp(dir) != nullptr);
    _dir = dir;
  }
  ~Files() {
    for (const auto& f : _written) std::remove(f.c_str());
    rmdir(_dir.c_str());
  }
  std::string write(const std::string& name, const std::string& content) {
    std::string path = _dir + "/" + name;
    std::ofstream(path) << content;
    _written.push_back(path);
    return path;
  }
  std::string missing(const std::string& name) const { return _dir + "/" + name; }

private:
  std::string _dir;
  std::vector<std::string> _written;
};

const std::string kMachineId = "0123456789abcdef0123456789abcdef\n";
const std::string kBootId = "cf8fbc08-e336-4af7-aeed-0798813aae76\n";

}  // namespace

BOOST_AUTO_TEST_CASE(processes_reading_the_same_machine_id_agree) {
  Files files;
  std::string machine = files.write("machine-id", kMachineId);
  std::string boot = files.write("boot_id", kBootId);
  BOOST_CHECK(readHostId(machine.c_str(), boot.c_str()) == readHostId(machine.c_str(), boot.c_str()));
}

BOOST_AUTO_TEST_CASE(without_a_machine_id_the_boot_id_names_the_host) {
  Files files;
  std::string boot = files.write("boot_id", kBootId);
  std::string otherBoot = files.write("other_boot_id", "0f8fbc08-e336-4af7-aeed-0798813aae76\n");
  for (std::string machine : {files.missing("machine-id"), files.write("empty", ""),
                              files.write("uninitialized", "uninitialized\n")}) {
    BOOST_TEST_CONTEXT(machine) {
      auto id = readHostId(machine.c_str(), boot.c_str());
      // The same kernel: every process agrees.
      BOOST_CHECK(id == readHostId(machine.c_str(), boot.c_str()));
      // Another kernel (another machine, or this one rebooted) is another host.
      BOOST_CHECK(id != readHostId(machine.c_str(), otherBoot.c_str()));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_boot_id_never_collides_with_a_machine_id_of_the_same_digits) {
  Files files;
  std::string digits = "cf8fbc08e3364af7aeed0798813aae76\n";
  std::string machine = files.write("machine-id", digits);
  std::string boot = files.write("boot_id", digits);
  std::string none = files.missing("machine-id-absent");
  BOOST_CHECK(readHostId(machine.c_str(), boot.c_str()) != readHostId(none.c_str(), boot.c_str()));
}

BOOST_AUTO_TEST_CASE(a_host_with_neither_id_is_an_error_that_says_what_to_do) {
  Files files;
  std::string machine = files.missing("machine-id");
  std::string boot = files.missing("boot_id");
  try {
    readHostId(machine.c_str(), boot.c_str());
    BOOST_FAIL("expected an error");
  } catch (const ferry::Error& e) {
    BOOST_CHECK(e.code() == ferry::Errc::unavailable);
    BOOST_CHECK_MESSAGE(e.message().find(machine) != std::string::npos &&
                            e.message().find("systemd-machine-id-setup") != std::string::npos,
                        e.message());
  }
}

BOOST_AUTO_TEST_CASE(this_host_reads_an_id) {
  // Whatever this machine has (machine id or only a boot id), the runtime can name the host.
  auto id = readHostId("/etc/machine-id", "/proc/sys/kernel/random/boot_id");
  BOOST_CHECK(id != (std::array<uint8_t, 16>{}));
}
