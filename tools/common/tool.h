// What ferry's command-line tools share: the version they print for --version, and the process
// context their kj::MainBuilder parsers run in.
//
//     int main(int argc, char** argv) {
//       ferry::tools::ToolContext context("ferry-foo", kUsage);
//       FooMain foo(context);
//       return ferry::tools::runTool(context, foo.getMain(), argc, argv);
//     }
//
// kj::MainBuilder gives every tool --help, --version and its errors for bad arguments. Exit
// status: 0 on success and for --help/--version; 1 when the work fails (the tool says why in a
// sentence on stderr); 2 on bad usage (what was wrong, then the tool's usage lines, on stderr).
#pragma once

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <kj/debug.h>
#include <kj/main.h>

#include "ferry-version.h"

namespace ferry::tools {

// "ferry 0.1.0": the project's version (meson.project_version()), the same in every tool.
inline constexpr char kVersion[] = "ferry " FERRY_VERSION;

class ToolContext final : public kj::ProcessContext {
public:
  // `usage`: the tool's usage lines, each ending in a newline ("usage: ferry-foo [--bar N]\n").
  ToolContext(const char* programName, const char* usage)
      : _programName(programName), _usage(usage) {}

  // Thrown to leave runTool with an exit status; unwinds the stack, so destructors run.
  struct Exit {
    int status;
  };

  // Prints "<program>: <why>" on stderr and exits with status 1: the work failed.
  [[noreturn]] void fail(std::string_view why) {
    std::fprintf(stderr, "%s: %.*s\n", _programName, static_cast<int>(why.size()), why.data());
    throw Exit{1};
  }

  // Prints "<program>: <why>" and the usage lines on stderr and exits with status 2.
  [[noreturn]] void usageError(std::string_view why) {
    std::fprintf(stderr, "%s: %.*s\n%s", _programName, static_cast<int>(why.size()), why.data(),
                 _usage);
    throw Exit{2};
  }

  // Exits with `status`, the tool having said what it had to say.
  [[noreturn]] void exitWith(int status) { throw Exit{status}; }

  bool failed() const noexcept { return _failed; }

  // kj::ProcessContext, as kj::MainBuilder uses it.
  kj::StringPtr getProgramName() override { return _programName; }
  [[noreturn]] void exit() override { throw Exit{_failed ? 1 : 0}; }
  void warning(kj::StringPtr message) override { printLine(message); }
  void error(kj::StringPtr message) override {
    _failed = true;
    printLine(message);
  }
  // A bad argument: kj's message ("<program>: --x: unrecognized option\nTry '<program> --help'
  // for more information."), with the usage lines before its last line.
  [[noreturn]] void exitError(kj::StringPtr message) override {
    std::string_view text(message.cStr(), message.size());
    size_t hint = text.rfind("\nTry '");
    std::string_view head = text.substr(0, hint);
    std::fprintf(stderr, "%.*s\n%s", static_cast<int>(head.size()), head.data(), _usage);
    if (hint != std::string_view::npos) {
      std::string_view tail = text.substr(hint + 1);
      std::fprintf(stderr, "%.*s\n", static_cast<int>(tail.size()), tail.data());
    }
    throw Exit{2};
  }
  // --help and --version.
  [[noreturn]] void exitInfo(kj::StringPtr message) override {
    std::fputs(message.cStr(), stdout);
    if (!message.endsWith("\n")) std::fputc('\n', stdout);
    throw Exit{0};
  }
  void increaseLoggingVerbosity() override {
    kj::_::Debug::setLogLevel(kj::_::Debug::Severity::INFO);
  }

private:
  void printLine(kj::StringPtr message) {
    std::fputs(message.cStr(), stderr);
    if (!message.endsWith("\n")) std::fputc('\n', stderr);
  }

  const char* _programName;
  const char* _usage;
  bool _failed = false;
};

// Parses the arguments with `main` (built by a kj::MainBuilder on `context`) and runs what its
// callbacks do. Returns the exit status; an exception that escapes the tool is reported as
// "<program>: <what>" with status 1.
inline int runTool(ToolContext& context, kj::MainFunc main, int argc, char** argv) {
  std::vector<kj::StringPtr> params(argv + (argc > 0 ? 1 : 0), argv + argc);
  try {
    main(context.getProgramName(), kj::arrayPtr(params.data(), params.size()));
    return context.failed() ? 1 : 0;
  } catch (const ToolContext::Exit& exit) {
    return exit.status;
  } catch (const kj::Exception& e) {
    std::fprintf(stderr, "%s: %s\n", context.getProgramName().cStr(),
                 e.getDescription().cStr());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", context.getProgramName().cStr(), e.what());
  }
  return 1;
}

}  // namespace ferry::tools
