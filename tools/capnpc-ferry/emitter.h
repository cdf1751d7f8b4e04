// Prints a FileModel as the two generated files. The contract the output follows is described
// in core/include/ferry/generated.h; the model (model.h) guarantees it is expressible.
//
// Generated function bodies name their own locals and parameters with a leading underscore
// (`_call`, `_params`, `_self`): schema names cannot contain underscores, so they never clash
// with an argument. And the .ferry.c++ names everything fully qualified, so an argument called
// `iid` or `add` cannot shadow what the generated code means.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "model.h"

namespace ferry::idl {

// foo.ferry.h: the interface classes.
std::string emitHeader(const FileModel& file);

// foo.ferry.c++: companions, stubs, proxies and registrations.
std::string emitSource(const FileModel& file);

// Generated text, built a line at a time.
class Code {
public:
  // Appends the parts and a line break.
  template <typename... Parts>
  void line(const Parts&... parts) {
    ((_out << parts), ...);
    _out << '\n';
  }

  // `head`, the comma-separated `items`, then `tail`: on one line when it fits in kLineWidth
  // columns, else with the items packed on continuation lines indented 4 more than `indent`.
  // `head` ends with the opening parenthesis and `tail` starts with the closing one.
  void list(const std::string& indent, const std::string& head,
            const std::vector<std::string>& items, const std::string& tail);

  std::string text() const { return _out.str(); }

  static constexpr size_t kLineWidth = 100;

private:
  std::ostringstream _out;
};

// A doc comment as `//` lines at `indent`.
void emitDocComment(Code& code, const std::string& indent, const std::string& doc);

// {"int32_t a", "std::string_view name"}: a method's parameters, optionally preceded by `first`;
// `withDefaults` adds the default arguments (for declarations only).
std::vector<std::string> parameters(const Method& method, const std::string& first = "",
                                    bool withDefaults = false);

// {"a", "std::move(listener)"}: the parameters passed on, optionally preceded by `first`.
std::vector<std::string> arguments(const Method& method, const std::string& first = "");

}  // namespace ferry::idl
