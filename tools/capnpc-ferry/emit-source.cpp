// Prints foo.ferry.c++: for each interface its out-of-line members (ferryCast, the stub, the
// (de)serializers, the async companions), then its proxy, stub dispatcher and registration.

#include <algorithm>
#include <string>
#include <vector>

#include "emitter.h"

namespace ferry::idl {

namespace {

// `value` (a vector<uint8_t> or span<const uint8_t>) as capnp's Data::Reader.
std::string dataReader(const std::string& value) {
  return "::kj::arrayPtr(reinterpret_cast<const ::kj::byte*>(" + value + ".data()), " + value +
         ".size())";
}

bool usesReader(const std::vector<Field>& fields) {
  for (const Field& field : fields) {
    if (field.type.kind != TypeKind::interface) return true;
  }
  return false;
}

// The suffix that keeps the locals of nested list loops apart: "", "1", "2", ...
std::string depthSuffix(int depth) { return depth == 0 ? "" : std::to_string(depth); }

// Declares `name`, a std::vector holding the list `get` (a capnp List reader) of `type`.
void emitListRead(Code& code, const std::string& indent, const MappedType& type,
                  const std::string& name, const std::string& get, int depth) {
  const MappedType& element = *type.element;
  std::string item = "_element" + depthSuffix(depth);
  code.line(indent, type.valueType(), " ", name, ";");
  code.line(indent, name, ".reserve(", get, ".size());");
  std::string add;
  switch (element.kind) {
    case TypeKind::primitive:
    case TypeKind::enumeration: add = ".push_back(" + item + ");"; break;
    case TypeKind::text: add = ".emplace_back(" + item + ".cStr(), " + item + ".size());"; break;
    case TypeKind::data: add = ".emplace_back(" + item + ".begin(), " + item + ".end());"; break;
    case TypeKind::structure: add = ".emplace_back(" + item + ");"; break;
    case TypeKind::interface:
      add = ".push_back(::ferry::refOf<" + element.name + ">(" + item + "));";
      break;
    case TypeKind::list: {
      std::string inner = "_list" + std::to_string(depth + 1);
      code.line(indent, "for (auto ", item, " : ", get, ") {");
      emitListRead(code, indent + "  ", element, inner, item, depth + 1);
      code.line(indent, "  ", name, ".push_back(std::move(", inner, "));");
      code.line(indent, "}");
      return;
    }
  }
  code.line(indent, "for (auto ", item, " : ", get, ") ", name, add);
}

// Declares the local `field.name` holding `field`, read from `reader` (a params or results
// reader; a field without accessor is the whole of it) or, for an interface, from the
// capabilities of `capSource` (`_call` or `_response`). A stub reads parameters as views into
// the request (lists are materialized); a proxy reads results into owned values.
void emitRead(Code& code, const std::string& indent, const Field& field, const std::string& reader,
              const std::string& capSource, bool owning) {
  const std::string& name = field.name;
  std::string get = field.accessor.empty() ? reader : reader + ".get" + field.accessor + "()";
  const MappedType& type = field.type;
  switch (type.kind) {
    case TypeKind::primitive:
    case TypeKind::enumeration:
      code.line(indent, type.name, " ", name, " = ", get, ";");
      return;
    case TypeKind::text:
      code.line(indent, owning ? "std::string " : "std::string_view ", name, "(", get,
                ".cStr(), ", get, ".size());");
      return;
    case TypeKind::data:
      if (owning) {
        code.line(indent, "std::vector<uint8_t> ", name, "(", get, ".begin(), ", get, ".end());");
      } else {
        code.line(indent, "std::span<const uint8_t> ", name, "(", get, ".begin(), ", get,
                  ".size());");
      }
      return;
    case TypeKind::list: emitListRead(code, indent, type, name, get, 0); return;
    case TypeKind::structure:
      if (owning) {
        code.line(indent, type.valueType(), " ", name, "(", get, ");");
      } else {
        code.line(indent, type.paramType(), " ", name, " = ", get, ";");
      }
      return;
    case TypeKind::interface:
      code.line(indent, type.valueType(), " ", name, " = ", capSource, ".cap<", type.name, ">(",
                field.capIndex, ");");
      return;
  }
}

// Fills `list` (a capnp List builder of `type`'s elements, already sized) from `value` (a
// std::vector of them).
void emitListWrite(Code& code, const std::string& indent, const MappedType& type,
                   const std::string& list, const std::string& value, int depth) {
  const MappedType& element = *type.element;
  std::string i = "_i" + depthSuffix(depth);
  std::string item = value + "[" + i + "]";
  std::string loop = "for (unsigned " + i + " = 0; " + i + " < " + list + ".size(); ++" + i + ") ";
  switch (element.kind) {
    case TypeKind::primitive:
    case TypeKind::enumeration: break;
    case TypeKind::text:
      // Safe here, unlike for a string_view: a std::string is NUL-terminated.
      item = "::capnp::Text::Reader(" + item + ".c_str(), " + item + ".size())";
      break;
    case TypeKind::data: item = dataReader(item); break;
    case TypeKind::structure:
      code.line(indent, loop, list, ".setWithCaveats(", i, ", ", item, ".reader());");
      return;
    case TypeKind::interface: item = "::ferry::capability(" + item + ")"; break;
    case TypeKind::list: {
      std::string inner = "_list" + std::to_string(depth + 1);
      code.line(indent, loop, "{");
      code.line(indent, "  auto ", inner, " = ", list, ".init(", i, ", static_cast<unsigned>(",
                item, ".size()));");
      emitListWrite(code, indent + "  ", element, inner, item, depth + 1);
      code.line(indent, "}");
      return;
    }
  }
  code.line(indent, loop, list, ".set(", i, ", ", item, ");");
}

// Writes `value` (an expression of the field's parameter or result type) into field `field` of
// `builder`; an interface goes to the capability list through `setCap` (`_call.setCap` or
// `_call.setResultCap`). `owned` says a struct value is an Owned<S> rather than a Reader.
void emitWrite(Code& code, const std::string& indent, const Field& field,
               const std::string& builder, const std::string& value, const std::string& setCap,
               bool owned) {
  const std::string& accessor = field.accessor;
  const MappedType& type = field.type;
  switch (type.kind) {
    case TypeKind::primitive:
    case TypeKind::enumeration:
      code.line(indent, builder, ".set", accessor, "(", value, ");");
      return;
    case TypeKind::text:
      // Not Text::Reader(data, size): it requires a NUL terminator a string_view may lack.
      code.line(indent, "std::copy(", value, ".begin(), ", value, ".end(), ", builder, ".init",
                accessor, "(static_cast<unsigned>(", value, ".size())).begin());");
      return;
    case TypeKind::data:
      code.line(indent, builder, ".set", accessor, "(", dataReader(value), ");");
      return;
    case TypeKind::list:
      code.line(indent, "{");
      code.line(indent, "  auto _list = ", builder, ".init", accessor, "(static_cast<unsigned>(",
                value, ".size()));");
      emitListWrite(code, indent + "  ", type, "_list", value, 0);
      code.line(indent, "}");
      return;
    case TypeKind::structure:
      code.line(indent, builder, ".set", accessor, "(", value, owned ? ".reader()" : "", ");");
      return;
    case TypeKind::interface:
      code.line(indent, setCap, "(", field.capIndex, ", ", value, ".get(), ", type.name,
                "::iid);");
      return;
  }
}

void emitFerryCast(Code& code, const Interface& interface) {
  const std::string& self = interface.qualified;
  code.list("", "void* " + interface.className + "::ferryCast(",
            {self + "* self", "::ferry::Iid id"}, ") noexcept {");
  code.line("  if (id == ", self, "::iid) return static_cast<void*>(self);");
  for (const Interface* base : interface.bases) {
    code.line("  if (void* found = ", base->qualified, "::ferryCast(self, id)) return found;");
  }
  code.line("  return ::ferry::Interface::ferryCast(self, id);");
  code.line("}");
  code.line();
}

void emitBuildFunction(Code& code, const Interface& interface, const Method& method) {
  code.list("", "void " + interface.className + "::_ferryBuild_" + method.stem + "(",
            parameters(method, "::ferry::detail::ClientCall& _call"), ") {");
  std::string collect = method.paramsCarryCaps ? "true" : "";
  if (method.wholeParams) {
    code.line("  _call.setParams<", method.paramsStruct, ">(", method.params[0].name,
              collect.empty() ? "" : ", " + collect, ");");
  } else if (usesReader(method.params)) {
    code.line("  auto _params = _call.initParams<", method.paramsStruct, ">(", collect, ");");
  } else {
    code.line("  _call.initParams<", method.paramsStruct, ">();");
  }
  if (!method.wholeParams) {
    for (const Field& field : method.params) {
      emitWrite(code, "  ", field, "_params", field.name, "_call.setCap", false);
    }
  }
  if (method.paramsCarryCaps) code.line("  _call.sealCaps();");
  code.line("}");
  code.line();
}

void emitReadFunction(Code& code, const Interface& interface, const Method& method) {
  std::string returnType = method.returnType(interface.qualified);
  if (method.results.empty()) {
    code.line("void ", interface.className, "::_ferryRead_", method.stem,
              "(::ferry::detail::ClientResponse&) {}");
    code.line();
    return;
  }
  code.list("", returnType + " " + interface.className + "::_ferryRead_" + method.stem + "(",
            {"::ferry::detail::ClientResponse& _response"}, ") {");
  if (method.resultsCarryCaps) {
    code.line("  auto _results = _response.resultsWithCaps<", method.resultsStruct, ">(",
              method.resultCaps, ");");
  } else if (usesReader(method.results)) {
    code.line("  auto _results = _response.results<", method.resultsStruct, ">();");
  }
  std::vector<std::string> members;
  for (const Field& field : method.results) {
    emitRead(code, "  ", field, "_results", "_response", true);
    members.push_back(field.type.movable() ? "std::move(" + field.name + ")" : field.name);
  }
  if (method.results.size() == 1) {
    code.line("  return ", method.results[0].name, ";");
  } else {
    code.list("  ", "return {", members, "};");
  }
  code.line("}");
  code.line();
}

void emitAsync(Code& code, const Interface& interface, const Method& method) {
  std::string returnType = method.returnType(interface.qualified);
  std::string future = "::ferry::Future<" + returnType + ">";
  const std::string& self = interface.qualified;
  code.list("", future + " " + interface.className + "::" + method.stem + "Async(",
            parameters(method), ") {");
  code.line("  if (auto* _proxy = ::ferry::detail::asProxy(this)) {");
  code.line("    auto _call = _proxy->newCall(", self, "::iid.value, ", method.ordinal, ", ",
            method.paramCaps, ");");
  code.list("    ", self + "::_ferryBuild_" + method.stem + "(", arguments(method, "_call"), ");");
  if (method.idempotent) code.line("    _call.setIdempotent();");
  if (method.oneway) {
    code.line("    _call.sendOneway();");
    code.line("    return ::ferry::Future<void>::ready(::ferry::Result<void>());");
  } else {
    code.line("    return ", future, "(_call.sendAsync(), &", self, "::_ferryRead_", method.stem,
              ");");
  }
  code.line("  }");
  code.line("  return ::ferry::detail::runNow<", returnType, ">([&] {");
  code.list("    ", std::string(method.results.empty() ? "" : "return ") + "this->" + method.name +
            "(", arguments(method), ");");
  code.line("  });");
  code.line("}");
  code.line();
}

void emitStubCase(Code& code, const Method& method) {
  code.line("    case ", method.ordinal, ": {  // ", method.capnpName);
  if (method.paramsCarryCaps) {
    code.line("      auto _params = _call.paramsWithCaps<", method.paramsStruct, ">(",
              method.paramCaps, ");");
  } else if (usesReader(method.params)) {
    code.line("      auto _params = _call.params<", method.paramsStruct, ">();");
  }
  for (const Field& field : method.params) {
    emitRead(code, "      ", field, "_params", "_call", false);
  }
  std::string call = "_self->" + method.name + "(";
  code.list("      ", method.results.empty() ? call : "auto _result = " + call, arguments(method),
            ");");
  if (!method.oneway) {
    std::string collect = method.resultsCarryCaps ? ", true" : "";
    std::string init = "_call.initResults<" + method.resultsStruct + ">(" +
                       std::to_string(method.resultCaps) + collect + ")";
    if (method.wholeResults) {
      code.line("      _call.setResults<", method.resultsStruct, ">(", method.resultCaps,
                ", _result.reader()", collect, ");");
    } else if (usesReader(method.results)) {
      code.line("      auto _results = ", init, ";");
    } else {
      code.line("      ", init, ";");
    }
    if (!method.wholeResults) {
      for (const Field& field : method.results) {
        std::string value = method.results.size() == 1 ? "_result" : "_result." + field.name;
        emitWrite(code, "      ", field, "_results", value, "_call.setResultCap", true);
      }
    }
    if (method.resultsCarryCaps) code.line("      _call.sealResultCaps();");
  }
  code.line("      return;");
  code.line("    }");
}

void emitStub(Code& code, const Interface& interface) {
  const std::string& self = interface.qualified;
  std::string head = "void " + interface.className + "::_ferryDispatch(";
  if (interface.methods.empty()) {
    code.list("", head, {self + "*", "uint16_t _methodId", "::ferry::detail::ServerCall&"}, ") {");
  } else {
    code.list("", head,
              {self + "* _self", "uint16_t _methodId", "::ferry::detail::ServerCall& _call"},
              ") {");
    code.line("  switch (_methodId) {");
    for (const Method& method : interface.methods) emitStubCase(code, method);
    code.line("    default:");
    code.line("      break;");
    code.line("  }");
  }
  code.line("  ::ferry::detail::unknownMethod(", self, "::iid.value, _methodId);");
  code.line("}");
  code.line();
}

void emitMembers(Code& code, const Interface& interface) {
  code.line("// ", interface.displayName);
  code.line();
  emitFerryCast(code, interface);
  emitStub(code, interface);
  for (const Method& method : interface.methods) {
    emitBuildFunction(code, interface, method);
    if (!method.oneway) emitReadFunction(code, interface, method);
    emitAsync(code, interface, method);
  }
}

// An override in a proxy: marshal, send, unmarshal, through the static members of `owner`, the
// interface that declares the method.
void emitProxyMethod(Code& code, const Interface& owner, const Method& method) {
  const std::string& declaring = owner.qualified;
  std::string returnType = method.returnType(declaring);
  code.list("  ", returnType + " " + method.name + "(", parameters(method), ") override {");
  code.line("    auto _call = ::ferry::detail::ProxyBase::newCall(", declaring, "::iid.value, ",
            method.ordinal, ", ", method.paramCaps, ");");
  code.list("    ", declaring + "::_ferryBuild_" + method.stem + "(", arguments(method, "_call"),
            ");");
  if (method.idempotent) code.line("    _call.setIdempotent();");
  if (method.oneway) {
    code.line("    _call.sendOneway();");
  } else {
    code.line("    auto _response = _call.send();");
    code.line("    ", method.results.empty() ? "" : "return ", declaring, "::_ferryRead_",
              method.stem, "(_response);");
  }
  code.line("  }");
}

void emitProxy(Code& code, const Interface& interface) {
  const std::string& self = interface.qualified;
  std::string proxy = interface.className + "Proxy";
  code.line("class ", proxy, " final : public ", self, ", public ::ferry::detail::ProxyBase {");
  code.line("public:");
  code.line("  explicit ", proxy, "(const ::ferry::detail::ProxyInit& init)");
  code.line("      : ::ferry::detail::ProxyBase(init) {}");
  for (const Method& method : interface.methods) {
    code.line();
    emitProxyMethod(code, interface, method);
  }
  for (const Interface* ancestor : interface.ancestors) {
    for (const Method& method : ancestor->methods) {
      code.line();
      emitProxyMethod(code, *ancestor, method);
    }
  }
  code.line();
  code.line("private:");
  code.line("  void* castSelf(::ferry::Iid id) noexcept override {");
  code.line("    return ", self, "::ferryCast(this, id);");
  code.line("  }");
  code.line("};");
  code.line();
}

// The stub dispatcher serves the interface and every interface it extends: a client may call a
// base's method through the derived interface's IPID.
void emitDispatcher(Code& code, const Interface& interface) {
  const std::string& self = interface.qualified;
  code.list("", "void dispatch" + interface.className + "(",
            {"void* object", "uint64_t interfaceId", "uint16_t methodId",
             "::ferry::detail::ServerCall& call"},
            ") {");
  code.line("  auto* self = static_cast<", self, "*>(object);");
  code.line("  switch (interfaceId) {");
  code.line("    case ", self, "::iid.value:");
  code.line("      return ", self, "::_ferryDispatch(self, methodId, call);");
  for (const Interface* ancestor : interface.ancestors) {
    code.line("    case ", ancestor->qualified, "::iid.value:");
    code.line("      return ", ancestor->qualified, "::_ferryDispatch(self, methodId, call);");
  }
  code.line("    default:");
  code.line("      break;");
  code.line("  }");
  code.line("  ::ferry::detail::unknownMethod(interfaceId, methodId);");
  code.line("}");
  code.line();
}

void emitRegistration(Code& code, const Interface& interface) {
  const std::string& self = interface.qualified;
  // The schema names of the interface's own methods, by ordinal (for logs and error messages).
  uint16_t methodCount = 0;
  for (const Method& method : interface.methods) {
    methodCount = std::max<uint16_t>(methodCount, static_cast<uint16_t>(method.ordinal + 1));
  }
  if (methodCount > 0) {
    std::vector<std::string> names(methodCount, "nullptr");
    for (const Method& method : interface.methods) names[method.ordinal] = stringLiteral(method.capnpName);
    code.line("constexpr const char* k", interface.className, "MethodNames[] = {");
    for (const std::string& name : names) code.line("    ", name, ",");
    code.line("};");
  }
  code.line("const ::ferry::detail::InterfaceRegistration register", interface.className, "{{");
  code.line("    ", self, "::iid,");
  code.line("    ", self, "::interfaceName,");
  code.line("    [](const ::ferry::detail::ProxyInit& init) -> ::ferry::detail::ProxyBase* {");
  code.line("      return new ", interface.className, "Proxy(init);");
  code.line("    },");
  code.line("    &dispatch", interface.className, ",");
  code.line("    [](void* pointer) noexcept -> ::ferry::Interface* {");
  code.line("      return static_cast<", self, "*>(pointer);");
  code.line("    },");
  if (methodCount > 0) {
    code.line("    k", interface.className, "MethodNames,");
    code.line("    ", std::to_string(methodCount), ",");
  } else {
    code.line("    nullptr,");
    code.line("    0,");
  }
  code.line("    &::capnp::_::rawSchema<", interface.capnpQualified, ">()}};");
  code.line();
}

}  // namespace

std::string emitSource(const FileModel& file) {
  Code code;
  code.line("// Generated by capnpc-ferry from ", file.filename, ". Do not edit.");
  code.line("#include \"", baseName(withoutCapnpSuffix(file.filename)), ".ferry.h\"");
  code.line();
  code.line("#include <algorithm>");
  code.line("#include <utility>");
  code.line();
  code.line("namespace ", file.ferryNamespace, " {");
  code.line();
  for (const Interface* interface : file.interfaces) emitMembers(code, *interface);
  code.line("}  // namespace ", file.ferryNamespace);
  if (file.interfaces.empty() && file.exceptions.empty()) return code.text();

  // A namespace of its own: no schema type can be named `generated` (type names start with a
  // capital letter), so the proxies cannot clash with an interface.
  code.line();
  code.line("namespace ", file.ferryNamespace, "::generated {");
  code.line("namespace {");
  code.line();
  for (const Interface* interface : file.interfaces) {
    emitProxy(code, *interface);
    emitDispatcher(code, *interface);
    emitRegistration(code, *interface);
  }
  for (const ExceptionType& exception : file.exceptions) {
    const std::string qualified = "::" + file.ferryNamespace + "::" + exception.className;
    code.line("const ::ferry::detail::ApplicationErrorRegistration registerException_", exception.className,
              "{");
    code.line("    ::capnp::typeId<", qualified, "::Fields>(),");
    code.line("    [](const ::ferry::ApplicationError& received) { throw ", qualified,
              "(received); }};");
    code.line();
  }
  code.line("}  // namespace");
  code.line("}  // namespace ", file.ferryNamespace, "::generated");
  return code.text();
}

}  // namespace ferry::idl
