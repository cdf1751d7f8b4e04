#include "schema-text.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace ferry::idl {

namespace {

bool isWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The --src-prefix values on the parent's (capnp's) command line, both `--src-prefix=DIR` and
// `--src-prefix DIR` forms.
std::vector<std::string> parentSrcPrefixes(const std::string& parentProc) {
  std::vector<std::string> prefixes;
  auto cmdline = readFile(parentProc + "/cmdline");
  if (!cmdline) return prefixes;
  std::vector<std::string> args;
  std::istringstream in(*cmdline);
  for (std::string arg; std::getline(in, arg, '\0');) args.push_back(arg);
  const std::string option = "--src-prefix";
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].rfind(option + "=", 0) == 0) {
      prefixes.push_back(args[i].substr(option.size() + 1));
    } else if (args[i] == option && i + 1 < args.size()) {
      prefixes.push_back(args[++i]);
    }
  }
  return prefixes;
}

// Comments (`#` to the end of the line) and string literals become spaces; line breaks stay, so
// offsets and line numbers are those of the original text.
std::string maskCommentsAndStrings(std::string text) {
  enum class State { code, comment, string } state = State::code;
  for (size_t i = 0; i < text.size(); ++i) {
    char& c = text[i];
    switch (state) {
      case State::code:
        if (c == '#') {
          state = State::comment;
          c = ' ';
        } else if (c == '"') {
          state = State::string;
        }
        break;
      case State::comment:
        if (c == '\n') {
          state = State::code;
        } else {
          c = ' ';
        }
        break;
      case State::string:
        if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n') {
          c = ' ';
          text[++i] = ' ';
        } else if (c == '"') {
          state = State::code;
        } else if (c != '\n') {
          c = ' ';
        }
        break;
    }
  }
  return text;
}

}  // namespace

SchemaText SchemaText::load(std::string_view filename) {
  std::string name(filename);
  std::vector<std::string> candidates;
  if (!name.empty() && name[0] == '/') {
    candidates.push_back(name);
  } else {
    std::string parentProc = "/proc/" + std::to_string(getppid());
    std::string parentCwd = parentProc + "/cwd";
    // A hit under a --src-prefix is the more specific one: capnp stripped that prefix.
    for (const auto& prefix : parentSrcPrefixes(parentProc)) {
      std::string base = !prefix.empty() && prefix[0] == '/' ? prefix : parentCwd + "/" + prefix;
      candidates.push_back(base + "/" + name);
    }
    candidates.push_back(parentCwd + "/" + name);
    candidates.push_back(name);
    // Given a file outside every --src-prefix, capnp names it by its absolute path minus the
    // leading slash.
    candidates.push_back("/" + name);
  }
  for (const auto& path : candidates) {
    if (auto text = readFile(path)) return SchemaText(std::move(*text));
  }
  return SchemaText("");
}

SchemaText::SchemaText(std::string text) : _masked(maskCommentsAndStrings(std::move(text))) {}

int SchemaText::lineOf(const std::vector<ScopeStep>& path, std::string_view member,
                       std::optional<unsigned> ordinal) const {
  Range scope{0, _masked.size()};
  std::optional<size_t> found;
  for (const auto& step : path) {
    auto declaration = findDeclaration(scope, step.keyword, step.name);
    if (!declaration) return found ? lineAt(*found) : 1;
    found = declaration;
    auto body = bodyOf(*declaration);
    if (!body) return lineAt(*found);
    scope = *body;
  }
  if (!member.empty() && ordinal) {
    if (auto position = findMember(scope, member, *ordinal)) return lineAt(*position);
  }
  return found ? lineAt(*found) : 1;
}

std::vector<size_t> SchemaText::wordsAtTopLevel(Range scope, std::string_view word) const {
  std::vector<size_t> positions;
  int depth = 0;
  for (size_t i = scope.begin; i < scope.end; ++i) {
    char c = _masked[i];
    if (c == '{') {
      ++depth;
    } else if (c == '}') {
      --depth;
    } else if (depth == 0 && (i == 0 || !isWordChar(_masked[i - 1])) &&
               _masked.compare(i, word.size(), word) == 0 &&
               (i + word.size() >= _masked.size() || !isWordChar(_masked[i + word.size()]))) {
      positions.push_back(i);
    }
  }
  return positions;
}

std::optional<size_t> SchemaText::findDeclaration(Range scope, std::string_view keyword,
                                                  std::string_view name) const {
  for (size_t position : wordsAtTopLevel(scope, keyword)) {
    size_t i = position + keyword.size();
    while (i < scope.end && isSpace(_masked[i])) ++i;
    if (_masked.compare(i, name.size(), name) == 0 &&
        (i + name.size() >= _masked.size() || !isWordChar(_masked[i + name.size()]))) {
      return position;
    }
  }
  return std::nullopt;
}

std::optional<size_t> SchemaText::findMember(Range scope, std::string_view name,
                                             unsigned ordinal) const {
  for (size_t position : wordsAtTopLevel(scope, name)) {
    size_t i = position + name.size();
    while (i < scope.end && isSpace(_masked[i])) ++i;
    if (i >= scope.end || _masked[i] != '@') continue;
    ++i;
    while (i < scope.end && isSpace(_masked[i])) ++i;
    size_t digits = i;
    unsigned value = 0;
    while (i < scope.end && _masked[i] >= '0' && _masked[i] <= '9') {
      value = value * 10 + unsigned(_masked[i] - '0');
      ++i;
    }
    if (i > digits && value == ordinal) return position;
  }
  return std::nullopt;
}

std::optional<SchemaText::Range> SchemaText::bodyOf(size_t declaration) const {
  size_t open = _masked.find('{', declaration);
  if (open == std::string::npos) return std::nullopt;
  int depth = 0;
  for (size_t i = open; i < _masked.size(); ++i) {
    if (_masked[i] == '{') {
      ++depth;
    } else if (_masked[i] == '}' && --depth == 0) {
      return Range{open + 1, i};
    }
  }
  return Range{open + 1, _masked.size()};
}

int SchemaText::lineAt(size_t offset) const {
  int line = 1;
  for (size_t i = 0; i < offset && i < _masked.size(); ++i) {
    if (_masked[i] == '\n') ++line;
  }
  return line;
}

}  // namespace ferry::idl
