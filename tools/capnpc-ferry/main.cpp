// capnpc-ferry: the Cap'n Proto compiler plugin that generates ferry interface classes, proxies
// and stubs. capnp runs it with the output directory as working directory:
//
//     capnp compile -oc++:OUTDIR -o/path/to/capnpc-ferry:OUTDIR dir/foo.capnp
//
// It reads the CodeGeneratorRequest on stdin and writes, for each requested dir/foo.capnp,
// dir/foo.ferry.h and dir/foo.ferry.c++ (both always, even for a schema without interfaces, so
// that build systems can list them as outputs). If a schema uses anything ferry cannot
// generate, it prints every problem as `foo.capnp:LINE: error: WHAT (Interface.method)` on
// stderr, writes nothing and exits 1.

#include <unistd.h>

#include <algorithm>
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
  if (!out) throw std::runtime_error("cannot write " + path);
}

int run() {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = uint64_t(1) << 40;  // the request is trusted; never limit it
  capnp::StreamFdMessageReader reader(STDIN_FILENO, options);
  auto request = reader.getRoot<capnp::schema::CodeGeneratorRequest>();

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

}  // namespace
}  // namespace ferry::idl

int main() {
  try {
    return ferry::idl::run();
  } catch (const kj::Exception& e) {
    std::cerr << "capnpc-ferry: " << e.getDescription().cStr() << '\n';
  } catch (const std::exception& e) {
    std::cerr << "capnpc-ferry: " << e.what() << '\n';
  }
  return 1;
}
