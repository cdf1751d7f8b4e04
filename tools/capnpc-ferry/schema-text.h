// The text of a schema, searched for the line of a declaration so that errors can name it.
//
// capnp 0.9.2 hands plugins no source positions, so capnpc-ferry re-reads the schema and finds
// `interface Name` (nested inside each enclosing `struct`/`interface` body) and `name @N` inside
// it. Comments and string literals are blanked out before searching, so a declaration mentioned
// in a comment is never matched.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "naming.h"

namespace ferry::idl {

class SchemaText {
public:
  // The schema `filename` (as capnp reports it: relative to capnp's working directory, minus
  // any --src-prefix) read from where capnp found it. capnp runs plugins with the output
  // directory as working directory, so this looks at the parent process: under each
  // --src-prefix on its command line, then in its working directory, then at `filename` itself.
  // A schema that cannot be found yields an empty text, in which every lookup answers line 1.
  static SchemaText load(std::string_view filename);

  explicit SchemaText(std::string text);

  // The 1-based line of member `name @ordinal` of the declaration at `path`; without a member,
  // or when it is not found, the line of the declaration; failing that, 1.
  int lineOf(const std::vector<ScopeStep>& path, std::string_view member = {},
             std::optional<unsigned> ordinal = std::nullopt) const;

private:
  struct Range {
    size_t begin;
    size_t end;
  };

  // Where `keyword name` is declared directly inside `scope` (not inside a nested body).
  std::optional<size_t> findDeclaration(Range scope, std::string_view keyword,
                                        std::string_view name) const;
  // Where `name @ordinal` is declared directly inside `scope`.
  std::optional<size_t> findMember(Range scope, std::string_view name, unsigned ordinal) const;
  // The text between the braces of the declaration starting at `declaration`.
  std::optional<Range> bodyOf(size_t declaration) const;
  // The offsets inside `scope` at brace depth zero, where `word` starts as a whole word.
  std::vector<size_t> wordsAtTopLevel(Range scope, std::string_view word) const;
  int lineAt(size_t offset) const;

  std::string _masked;  // the schema, comments and string literals replaced by spaces
};

}  // namespace ferry::idl
