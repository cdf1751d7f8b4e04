// RuntimeOptions::tuneAllocator: with glibc's malloc, blocks of payload size come from the heaps
// once a Runtime started, rather than each being mapped and unmapped (and re-faulted) per call.
// Each case runs in a child process of its own: the allocator's thresholds are per process and
// only ever go up.
#define BOOST_TEST_MODULE allocator
#include <boost/test/unit_test.hpp>

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>

#include <ferry/runtime.h>

namespace {

// Under ASan or TSan malloc is the sanitizer's, and mallinfo2 says nothing about it.
struct GlibcMalloc {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    boost::test_tools::assertion_result result(false);
    result.message() << "the sanitizer replaces glibc's malloc in this build";
    return result;
#elif !defined(__GLIBC__)
    boost::test_tools::assertion_result result(false);
    result.message() << "not glibc's malloc";
    return result;
#else
    return true;
#endif
  }
};

constexpr size_t kBlock = 4 * 1024 * 1024;  // a 4 MiB message's buffer

// In a child process: `prepare`, then a Runtime with `tune`, then whether a 4 MiB block was
// mapped on its own (mallinfo2's count of mapped blocks went up) rather than taken from a heap.
// Exit status: 0 heap, 1 mapped, 2 the child failed.
int blockMappedInChild(bool tune, const std::function<void()>& prepare) {
  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    int status = 2;
    try {
      prepare();
      ferry::RuntimeOptions options;
      options.outOfProcess = false;
      options.tuneAllocator = tune;
      ferry::Runtime runtime(options);
      size_t before = mallinfo2().hblks;
      void* block = std::malloc(kBlock);
      asm volatile("" : : "r"(block) : "memory");  // kept: the pair is not dropped as unused
      size_t during = mallinfo2().hblks;
      std::free(block);
      status = during > before ? 1 : 0;
    } catch (...) {
    }
    _exit(status);
  }
  int status = 0;
  BOOST_REQUIRE(waitpid(pid, &status, 0) == pid);
  BOOST_REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

}  // namespace

BOOST_AUTO_TEST_CASE(after_a_runtime_starts_a_4_mib_block_comes_from_the_heap,
                     *boost::unit_test::precondition(GlibcMalloc())) {
  BOOST_TEST(blockMappedInChild(true, [] {}) == 0);
}

BOOST_AUTO_TEST_CASE(without_tune_allocator_a_4_mib_block_is_mapped_on_its_own,
                     *boost::unit_test::precondition(GlibcMalloc())) {
  BOOST_TEST(blockMappedInChild(false, [] {}) == 1);
}

BOOST_AUTO_TEST_CASE(a_program_that_set_the_mmap_threshold_itself_keeps_it,
                     *boost::unit_test::precondition(GlibcMalloc())) {
  BOOST_TEST(blockMappedInChild(true, [] { mallopt(M_MMAP_THRESHOLD, 256 * 1024); }) == 1);
}
