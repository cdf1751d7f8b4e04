// Prints foo.ferry.h: one abstract class per interface, as generated.h describes.

#include "emitter.h"

namespace ferry::idl {

namespace {

std::string baseList(const Interface& interface) {
  if (interface.bases.empty()) return "public virtual ::ferry::Interface";
  std::string list;
  for (const Interface* base : interface.bases) {
    if (!list.empty()) list += ", ";
    list += "public virtual " + base->qualified;
  }
  return list;
}

// What a servant implementer needs to know about the annotations of a method.
void emitAnnotationNotes(Code& code, const Method& method) {
  if (method.oneway) {
    code.line("  // One-way ($Ferry.oneway): a remote caller does not wait and sees no errors.");
  }
  if (method.idempotent) {
    code.line("  // Idempotent ($Ferry.idempotent); capnpc-ferry does not use this yet.");
  }
}

void emitResultsStruct(Code& code, const Method& method) {
  code.line("  // The results of ", method.name, "().");
  code.line("  struct ", method.resultsName, " {");
  for (const Field& field : method.results) {
    bool scalar = !field.type.movable();
    code.line("    ", field.type.valueType(), " ", field.name, scalar ? "{};" : ";");
  }
  code.line("  };");
  code.line();
}

void emitInterface(Code& code, const Interface& interface) {
  const std::string& self = interface.className;
  emitDocComment(code, "", interface.doc);
  code.line("class ", self, " : ", baseList(interface), " {");
  code.line("public:");
  code.line("  static constexpr ::ferry::Iid iid{", hexLiteral(interface.id), "};");
  code.line("  static constexpr const char* interfaceName = ", stringLiteral(interface.displayName),
            ";");
  code.line("  // capnp's type for this interface: its Client is what struct fields and lists hold");
  code.line("  // (ferry/capability.h).");
  code.line("  using CapnpInterface = ", interface.capnpQualified, ";");
  code.line();
  if (!interface.constants.empty()) {
    code.line("  // The constants the schema declares in this interface.");
    for (const Constant& constant : interface.constants) {
      code.line("  static constexpr const auto& ", constant.name, " = ", constant.capnpQualified,
                ";");
    }
    code.line();
  }

  for (const Method& method : interface.methods) {
    if (!method.resultsName.empty()) emitResultsStruct(code, method);
  }

  for (const Method& method : interface.methods) {
    emitDocComment(code, "  ", method.doc);
    emitAnnotationNotes(code, method);
    code.list("  ", "virtual " + method.returnType() + " " + method.name + "(",
              parameters(method, "", true), ") = 0;");
    code.line();
  }

  if (!interface.methods.empty()) {
    code.line("  // Asynchronous forms: on a proxy they send the call and return at once; on a");
    code.line("  // real object they run the method now (see ferry/future.h).");
    for (const Method& method : interface.methods) {
      code.list("  ", "::ferry::Future<" + method.returnType() + "> " + method.stem + "Async(",
                parameters(method, "", true), ");");
    }
    code.line();
  }

  code.line("  // `self` as the interface `id` names (this one or a base), or nullptr.");
  code.line("  static void* ferryCast(", self, "* self, ::ferry::Iid id) noexcept;");
  code.line("  // The stub of this interface's own methods.");
  code.list("  ", "static void _ferryDispatch(",
            {self + "* self", "uint16_t methodId", "::ferry::detail::ServerCall& call"}, ");");

  if (!interface.methods.empty()) {
    code.line();
    code.line("protected:");
  }
  for (const Method& method : interface.methods) {
    code.list("  ", "static void _ferryBuild_" + method.stem + "(",
              parameters(method, "::ferry::detail::ClientCall& _call"), ");");
    if (!method.oneway) {
      code.list("  ", "static " + method.returnType() + " _ferryRead_" + method.stem + "(",
                {"::ferry::detail::ClientResponse& _response"}, ");");
    }
  }
  code.line("};");
  code.line();
}

void emitException(Code& code, const ExceptionType& exception) {
  const std::string& name = exception.className;
  const std::string& fields = exception.capnpQualified;
  emitDocComment(code, "", exception.doc);
  code.line("class ", name, " : public ::ferry::ApplicationError {");
  code.line("public:");
  code.line("  using Fields = ", fields, ";  // typeId() is ::capnp::typeId<Fields>()");
  code.line();
  code.line("  // The error with the fields `fill` sets: throw ", name, "([&](", name,
            "::Fields::Builder f) { ... });");
  code.line("  template <typename Fill>");
  code.line("    requires std::is_invocable_v<Fill&, typename ", fields, "::Builder>");
  code.line("  explicit ", name, "(Fill&& fill) : ", name, "(_ferryBuild(fill)) {}");
  code.line("  // The error with a copy of `fields`.");
  code.line("  explicit ", name, "(typename ", fields, "::Reader fields)");
  code.line("      : ::ferry::ApplicationError(::capnp::typeId<Fields>(), ::capnp::AnyStruct::Reader(fields),");
  code.line("                                  ::kj::str(", stringLiteral(exception.shortName),
            ", fields).cStr()) {}");
  code.line("  // A received error of this type (Error::rethrow).");
  code.line("  explicit ", name, "(const ::ferry::ApplicationError& received)");
  code.line("      : ::ferry::ApplicationError(received) {}");
  code.line();
  code.line("  typename ", fields, "::Reader fields() const {");
  code.line("    return ::ferry::ApplicationError::fields().as<", fields, ">();");
  code.line("  }");
  code.line();
  code.line("private:");
  code.line("  template <typename Fill>");
  code.line("  static typename ", fields, "::Reader _ferryBuild(Fill& fill,");
  code.line("      ::capnp::MallocMessageBuilder&& message = ::capnp::MallocMessageBuilder(64)) {");
  code.line("    fill(message.initRoot<", fields, ">());");
  code.line("    return message.getRoot<", fields, ">().asReader();");
  code.line("  }");
  code.line("};");
  code.line();
}

}  // namespace

std::string emitHeader(const FileModel& file) {
  Code code;
  code.line("// Generated by capnpc-ferry from ", file.filename, ". Do not edit.");
  code.line("#pragma once");
  code.line();
  code.line("#include <cstdint>");
  code.line("#include <span>");
  code.line("#include <string>");
  code.line("#include <string_view>");
  code.line("#include <type_traits>");
  code.line("#include <vector>");
  code.line();
  code.line("#include <capnp/message.h>");
  code.line("#include <ferry/application-error.h>");
  code.line("#include <ferry/generated.h>");
  code.line();
  code.line("#include \"", baseName(file.filename), ".h\"");
  for (const std::string& include : file.includes) code.line("#include ", include);
  code.line();
  code.line("namespace ", file.ferryNamespace, " {");
  code.line();
  for (const Interface* interface : file.interfaces) code.line("class ", interface->className, ";");
  if (!file.interfaces.empty()) code.line();
  for (const Interface* interface : file.interfaces) emitInterface(code, *interface);
  for (const ExceptionType& exception : file.exceptions) emitException(code, exception);
  code.line("}  // namespace ", file.ferryNamespace);
  return code.text();
}

}  // namespace ferry::idl
