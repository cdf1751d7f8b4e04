#include "naming.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <stdexcept>

namespace ferry::idl {

bool hasAnnotation(capnp::List<Annotation>::Reader annotations, uint64_t id) {
  // A loop: capnp's list iterators do not model std iterators.
  for (auto annotation : annotations) {
    if (annotation.getId() == id) return true;
  }
  return false;
}

std::string cxxName(capnp::List<Annotation>::Reader annotations, std::string_view declaredName) {
  for (auto annotation : annotations) {
    if (annotation.getId() == kCxxNameAnnotation) return annotation.getValue().getText().cStr();
  }
  return std::string(declaredName);
}

std::string titleCase(std::string_view name) {
  std::string result(name);
  if (!result.empty() && result[0] >= 'a' && result[0] <= 'z') {
    result[0] = char(result[0] - 'a' + 'A');
  }
  return result;
}

std::string safeIdentifier(std::string_view name) {
  // The C++20 keywords and alternative tokens. A superset of capnp's list, which only matters
  // for names capnpc-ferry itself declares (methods, parameters, result members).
  static constexpr std::string_view kKeywords[] = {
      "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break",
      "case", "catch", "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept",
      "const", "consteval", "constexpr", "constinit", "const_cast", "continue", "co_await",
      "co_return", "co_yield", "decltype", "default", "delete", "do", "double", "dynamic_cast",
      "else", "enum", "explicit", "export", "extern", "false", "float", "for", "friend", "goto",
      "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
      "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register",
      "reinterpret_cast", "requires", "return", "short", "signed", "sizeof", "static",
      "static_assert", "static_cast", "struct", "switch", "template", "this", "thread_local",
      "throw", "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using",
      "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq", "final", "override",
      "import", "module"};
  bool keyword = std::find(std::begin(kKeywords), std::end(kKeywords), name) != std::end(kKeywords);
  return keyword ? std::string(name) + "_" : std::string(name);
}

std::string baseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string withoutCapnpSuffix(std::string_view path) {
  constexpr std::string_view suffix = ".capnp";
  if (path.size() > suffix.size() && path.substr(path.size() - suffix.size()) == suffix) {
    path.remove_suffix(suffix.size());
  }
  return std::string(path);
}

std::string stringLiteral(std::string_view text) {
  std::string literal = "\"";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      literal += '\\';
      literal += c;
    } else if (byte < 0x20 || byte >= 0x7f) {
      char escape[5];
      std::snprintf(escape, sizeof escape, "\\%03o", byte);
      literal += escape;
    } else {
      literal += c;
    }
  }
  return literal + "\"";
}

std::string hexLiteral(uint64_t id) {
  char text[32];
  std::snprintf(text, sizeof(text), "0x%016llxull", static_cast<unsigned long long>(id));
  return text;
}

uint64_t Naming::fileOf(uint64_t nodeId) const {
  auto current = node(nodeId);
  while (!current.isFile()) {
    if (current.getScopeId() == 0) {
      throw std::logic_error("node " + hexLiteral(nodeId) + " has no enclosing file");
    }
    current = node(current.getScopeId());
  }
  return current.getId();
}

std::string Naming::cxxNamespace(uint64_t fileId) const {
  for (auto annotation : node(fileId).getAnnotations()) {
    if (annotation.getId() == kCxxNamespaceAnnotation) {
      return annotation.getValue().getText().cStr();
    }
  }
  return "";
}

std::string Naming::ferryNamespace(uint64_t fileId) const {
  std::string ns = cxxNamespace(fileId);
  return ns.empty() ? "iface" : ns + "::iface";
}

std::vector<ScopeStep> Naming::scopePath(uint64_t nodeId) const {
  std::vector<ScopeStep> path;
  auto current = node(nodeId);
  while (!current.isFile()) {
    auto parent = node(current.getScopeId());
    std::string declared;
    for (auto nested : parent.getNestedNodes()) {
      if (nested.getId() == current.getId()) declared = nested.getName().cStr();
    }
    if (declared.empty()) {
      throw std::logic_error("node " + hexLiteral(current.getId()) +
                             " is not a nested node of its scope (a group?)");
    }
    path.push_back(ScopeStep{current.isInterface() ? "interface" : "struct", declared,
                             cxxName(current.getAnnotations(), declared)});
    current = parent;
  }
  std::reverse(path.begin(), path.end());
  return path;
}

std::string Naming::capnpType(uint64_t nodeId) const {
  std::string ns = cxxNamespace(fileOf(nodeId));
  std::string name = ns.empty() ? "" : "::" + ns;
  for (const auto& step : scopePath(nodeId)) name += "::" + step.cxxName;
  return name;
}

std::string Naming::capnpMethodStruct(capnp::InterfaceSchema::Method method, uint64_t structId,
                                      std::string_view suffix) const {
  if (node(structId).getScopeId() != 0) return capnpType(structId);
  auto proto = method.getProto();
  uint64_t interfaceId = method.getContainingInterface().getProto().getId();
  return capnpType(interfaceId) + "::" +
         titleCase(cxxName(proto.getAnnotations(), proto.getName().cStr())) + std::string(suffix);
}

std::string Naming::ferryClass(uint64_t interfaceId) const {
  std::string name;
  for (const auto& step : scopePath(interfaceId)) {
    if (!name.empty()) name += "_";
    name += step.cxxName;
  }
  return name;
}

std::string Naming::ferryQualified(uint64_t interfaceId) const {
  return "::" + ferryNamespace(fileOf(interfaceId)) + "::" + ferryClass(interfaceId);
}

}  // namespace ferry::idl
