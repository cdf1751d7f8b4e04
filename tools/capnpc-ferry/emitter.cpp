// Helpers shared by the header and source emitters.

#include "emitter.h"

namespace ferry::idl {

void emitDocComment(Code& code, const std::string& indent, const std::string& doc) {
  size_t begin = 0;
  while (begin < doc.size()) {
    size_t end = doc.find('\n', begin);
    if (end == std::string::npos) end = doc.size();
    std::string text = doc.substr(begin, end - begin);
    code.line(indent, text.empty() ? "//" : "// " + text);
    begin = end + 1;
  }
}

std::vector<std::string> parameters(const Method& method, const std::string& first,
                                    bool withDefaults) {
  std::vector<std::string> list;
  if (!first.empty()) list.push_back(first);
  for (const Field& field : method.params) {
    bool defaulted = withDefaults && !field.defaultArgument.empty();
    list.push_back(field.type.paramType() + " " + field.name +
                   (defaulted ? " = " + field.defaultArgument : ""));
  }
  return list;
}

std::vector<std::string> arguments(const Method& method, const std::string& first) {
  std::vector<std::string> list;
  if (!first.empty()) list.push_back(first);
  for (const Field& field : method.params) {
    // A Ref argument is passed on, not shared: each generated forwarder uses it once.
    bool move = field.type.kind == TypeKind::interface;
    list.push_back(move ? "std::move(" + field.name + ")" : field.name);
  }
  return list;
}

void Code::list(const std::string& indent, const std::string& head,
                const std::vector<std::string>& items, const std::string& tail) {
  std::string oneLine = indent + head;
  for (size_t i = 0; i < items.size(); ++i) oneLine += (i == 0 ? "" : ", ") + items[i];
  oneLine += tail;
  if (oneLine.size() <= kLineWidth || items.empty()) {
    line(oneLine);
    return;
  }
  std::string continuation = indent + "    ";
  std::string current = indent + head;
  line(current);
  current = continuation;
  for (size_t i = 0; i < items.size(); ++i) {
    std::string item = items[i] + (i + 1 < items.size() ? "," : tail);
    if (current.size() > continuation.size() && current.size() + 1 + item.size() > kLineWidth) {
      line(current);
      current = continuation;
    }
    current += (current.size() > continuation.size() ? " " : "") + item;
  }
  line(current);
}

}  // namespace ferry::idl
