// capnpc-ferry: the Cap'n Proto compiler plugin that generates ferry interface classes, proxies
// and stubs. capnp runs it with the output directory as working directory:
//
//     capnp compile -oc++:OUTDIR -o/path/to/capnpc-ferry:OUTDIR dir/foo.capnp
//
// It reads the CodeGeneratorRequest on stdin and writes, for each requested dir/foo.capnp,
// dir/foo.ferry.h and dir/foo.ferry.c++ (both always, even for a schema without interfaces, so
// that build systems can list them as outputs). If a schema uses anything ferry cannot
// generate, it prints every problem as `foo.capnp:LINE: error: WHAT (Interface.method)` on
// stderr, writes nothing and exits 1. Run by hand, it takes --help and --version (and refuses to
// wait for a request on a terminal).

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <capnp/schema-loader.h>
#include <capnp/schema.capnp.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include "emitter.h"
#include "model.h"
#include "schema-text.h"
#include "tool.h"

namespace ferry::idl {
namespace {

struct Located {
  int line;
  std::string text;
};

// The problems of one requested file, each as one line of text, in schema order.
std::vector<std::string> describeProblems(const ModelBuilder& builder, const FileModel& file) {
  const Naming& naming = builder.naming();
  std::vector<Located> located;
  std::optional<SchemaText> text;
  for (const Problem& problem : builder.problems()) {
    if (naming.fileOf(problem.interfaceId) != file.id) continue;
    if (!text) text = SchemaText::load(file.filename);
    int line = text->lineOf(naming.scopePath(problem.interfaceId), problem.method,
                            problem.method.empty() ? std::nullopt
                                                   : std::optional<unsigned>(problem.ordinal));
    located.push_back({line, file.filename + ":" + std::to_string(line) + ": error: " +
                                 problem.message + " (" + problem.subject + ")"});
  }
  std::stable_sort(located.begin(), located.end(),
                   [](const Located& a, const Located& b) { return a.line < b.line; });
  std::vector<std::string> lines;
  for (auto& entry : located) lines.push_back(std::move(entry.text));
  return lines;
}

void writeFile(const std::string& path, const std::string& text) {
  std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  std::ofstream out(target, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    throw std::runtime_error("cannot write " + path + " (" + std::strerror(errno) +
                             "); check that the output directory given to capnp compile "
                             "(-o<plugin>:OUTDIR) exists and is writable");
  }
}

int run() {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = uint64_t(1) << 40;  // the request is trusted; never limit it
  kj::Own<capnp::StreamFdMessageReader> reader;
  try {
    reader = kj::heap<capnp::StreamFdMessageReader>(STDIN_FILENO, options);
  } catch (const kj::Exception&) {
    throw std::runtime_error(
        "standard input holds no CodeGeneratorRequest (it ended early, or is not a Cap'n Proto "
        "message); capnpc-ferry is run by `capnp compile -o<path>/capnpc-ferry:OUTDIR "
        "<schema>.capnp`");
  }
  auto request = reader->getRoot<capnp::schema::CodeGeneratorRequest>();

  capnp::SchemaLoader loader;
  for (auto node : request.getNodes()) loader.load(node);

  ModelBuilder builder(loader, request);
  std::vector<FileModel> files;
  for (auto requested : request.getRequestedFiles()) files.push_back(builder.file(requested));

  std::vector<std::string> problems;
  for (const FileModel& file : files) {
    auto lines = describeProblems(builder, file);
    problems.insert(problems.end(), lines.begin(), lines.end());
  }
  if (!problems.empty()) {
    for (const auto& line : problems) std::cerr << line << '\n';
    return 1;
  }

  for (const FileModel& file : files) {
    std::string stem = withoutCapnpSuffix(file.filename);
    writeFile(stem + ".ferry.h", emitHeader(file));
    writeFile(stem + ".ferry.c++", emitSource(file));
  }
  return 0;
}

constexpr char kUsage[] =
    "usage: capnp compile -o<path>/capnpc-ferry:OUTDIR [-I<dir>] <schema>.capnp\n"
    "       capnpc-ferry --help | --version\n";

// The command line: no arguments when capnp runs it; --help and --version by hand.
class IdlMain {
public:
  explicit IdlMain(ferry::tools::ToolContext& context) : _context(context) {}

  kj::MainFunc getMain() {
    return kj::MainBuilder(
               _context, ferry::tools::kVersion,
               "Generates ferry interface classes, proxies and stubs from Cap'n Proto schemas. "
               "It is a capnp compiler plugin: it reads the CodeGeneratorRequest on standard "
               "input and writes <schema>.ferry.h and <schema>.ferry.c++ for each requested "
               "schema, in the directory capnp runs it in.",
               "Run it through capnp: capnp compile -oc++:OUTDIR -o/path/to/capnpc-ferry:OUTDIR "
               "foo.capnp (in meson, ferry_capnp_gen does this). For a schema ferry cannot "
               "generate, it prints each problem as foo.capnp:LINE: error: WHAT, writes "
               "nothing and exits 1.")
        .callAfterParsing(KJ_BIND_METHOD(*this, generate))
        .build();
  }

private:
  kj::MainBuilder::Validity generate() {
    if (isatty(STDIN_FILENO)) {
      _context.usageError(
          "standard input is a terminal, but capnpc-ferry reads a CodeGeneratorRequest from it; "
          "run it through capnp compile");
    }
    _context.exitWith(run());
  }

  ferry::tools::ToolContext& _context;
};

}  // namespace
}  // namespace ferry::idl

int main(int argc, char** argv) {
  ferry::tools::ToolContext context("capnpc-ferry", ferry::idl::kUsage);
  ferry::idl::IdlMain idl(context);
  return ferry::tools::runTool(context, idl.getMain(), argc, argv);
}
