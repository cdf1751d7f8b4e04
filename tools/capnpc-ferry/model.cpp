#include "model.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <utility>

namespace ferry::idl {

namespace {

// Names every generated interface class already has (from ferry::Interface or the generator).
constexpr std::string_view kReservedNames[] = {"iid",     "interfaceName", "ferryCast",
                                               "addRef",  "release",       "queryInterface"};
constexpr std::string_view kReservedPrefix = "_ferry";

// The results struct of a `-> stream` method (capnp/stream.capnp).
constexpr uint64_t kStreamResultId = 0x995f9a3377c0b16eull;

// capnp's C++ name of a constant or enumerant: "maxItems" -> "MAX_ITEMS".
std::string upperCase(std::string_view name) {
  std::string result;
  for (char c : name) {
    if (c >= 'a' && c <= 'z') {
      result += static_cast<char>(c - 'a' + 'A');
    } else if (!result.empty() && c >= 'A' && c <= 'Z') {
      result += '_';
      result += c;
    } else {
      result += c;
    }
  }
  return result;
}

// A floating-point literal that converts back exactly (hexadecimal), or "" for inf and NaN.
std::string floatLiteral(double value, bool single) {
  if (!std::isfinite(value)) return "";
  char text[64];
  std::snprintf(text, sizeof text, "%a", value);
  return std::string(text) + (single ? "f" : "");
}

// The C++ default argument for the explicit default of a parameter of type `type`, or "" if
// there is none or it is not a scalar, enum or Text.
std::string defaultArgument(capnp::StructSchema::Field field, const MappedType& type) {
  auto proto = field.getProto();
  if (!proto.isSlot() || !proto.getSlot().getHadExplicitDefault()) return "";
  auto value = proto.getSlot().getDefaultValue();
  using V = capnp::schema::Value;
  switch (value.which()) {
    case V::BOOL: return value.getBool() ? "true" : "false";
    case V::INT8: return std::to_string(value.getInt8());
    case V::INT16: return std::to_string(value.getInt16());
    case V::INT32:
      return value.getInt32() == INT32_MIN ? "INT32_MIN" : std::to_string(value.getInt32());
    case V::INT64:
      return value.getInt64() == INT64_MIN ? "INT64_MIN"
                                           : "int64_t{" + std::to_string(value.getInt64()) + "}";
    case V::UINT8: return std::to_string(value.getUint8()) + "u";
    case V::UINT16: return std::to_string(value.getUint16()) + "u";
    case V::UINT32: return std::to_string(value.getUint32()) + "u";
    case V::UINT64: return "uint64_t{" + std::to_string(value.getUint64()) + "u}";
    case V::FLOAT32: return floatLiteral(value.getFloat32(), true);
    case V::FLOAT64: return floatLiteral(value.getFloat64(), false);
    case V::ENUM: {
      auto enumerants = field.getType().asEnum().getEnumerants();
      if (value.getEnum() >= enumerants.size()) return "";
      auto enumerant = enumerants[value.getEnum()].getProto();
      return type.name + "::" +
             upperCase(cxxName(enumerant.getAnnotations(), enumerant.getName().cStr()));
    }
    case V::TEXT:
      if (type.kind != TypeKind::text) return "";
      return stringLiteral(value.getText().cStr());
    default: return "";
  }
}

// The interface a value of `type` is, or its list elements are (at any depth), for includes.
void interfacesNamed(const MappedType& type, std::vector<uint64_t>& out) {
  if (type.kind == TypeKind::interface) out.push_back(type.nodeId);
  if (type.element) interfacesNamed(*type.element, out);
}

// A struct with a union or a group cannot be spread into C++ arguments.
bool needsWholeStruct(capnp::StructSchema schema) {
  if (schema.getProto().getStruct().getDiscriminantCount() > 0) return true;
  for (auto field : schema.getFields()) {
    if (field.getProto().isGroup()) return true;
  }
  return false;
}

// capnp's rule for the header of an import, applied to ferry headers: "/x/y.capnp" ->
// <x/y.ferry.h>, "y.capnp" -> "y.ferry.h".
std::string includeFor(std::string_view importName) {
  if (!importName.empty() && importName[0] == '/') {
    return "<" + withoutCapnpSuffix(importName.substr(1)) + ".ferry.h>";
  }
  return "\"" + withoutCapnpSuffix(importName) + ".ferry.h\"";
}

// A name a method brings into its interface class.
struct GeneratedName {
  const Interface* owner;
  const Method* method;
  const char* kind;  // "method", "async companion", "results struct"

  bool sameOrigin(const GeneratedName& other) const {
    return owner == other.owner && method == other.method;
  }
  std::string describe(const std::string& name) const {
    std::string where = owner->shortName + "." + method->capnpName;
    if (std::string_view(kind) == "method") return "method '" + where + "'";
    return std::string("the ") + kind + " '" + name + "' of '" + where + "'";
  }
};

// True if `a` and `b` are both `base` or interfaces it extends.
bool bothWithin(const Interface& base, const Interface* a, const Interface* b) {
  auto within = [&](const Interface* x) {
    return x == &base || std::find(base.ancestors.begin(), base.ancestors.end(), x) !=
                             base.ancestors.end();
  };
  return within(a) && within(b);
}

}  // namespace

std::string Method::returnType() const {
  if (results.empty()) return "void";
  if (results.size() == 1) return results[0].type.valueType();
  return resultsName;
}

std::string Method::returnType(const std::string& interfaceQualified) const {
  return results.size() > 1 ? interfaceQualified + "::" + resultsName : returnType();
}

ModelBuilder::ModelBuilder(const capnp::SchemaLoader& loader,
                           capnp::schema::CodeGeneratorRequest::Reader request)
    : _loader(loader), _naming(loader) {
  for (auto info : request.getSourceInfo()) _sourceInfo.emplace(info.getId(), info);
}

FileModel ModelBuilder::file(capnp::schema::CodeGeneratorRequest::RequestedFile::Reader requested) {
  FileModel model;
  model.id = requested.getId();
  model.filename = requested.getFilename().cStr();
  model.ferryNamespace = _naming.ferryNamespace(model.id);

  // Definition order: each interface after the bases it has in this file.
  std::vector<uint64_t> ids;
  collectInterfaces(model.id, ids);
  std::set<uint64_t> placed;
  auto place = [&](auto& self, const Interface& current) -> void {
    if (!placed.insert(current.id).second) return;
    for (const Interface* base : current.bases) {
      if (base->fileId == model.id) self(self, *base);
    }
    model.interfaces.push_back(&current);
  };
  for (uint64_t id : ids) place(place, interface(id));
  collectExceptions(model.id, model.exceptions);

  // Other files whose interfaces this file's declarations name.
  std::set<uint64_t> usedFiles;
  for (const Interface* current : model.interfaces) {
    for (const Interface* base : current->bases) usedFiles.insert(base->fileId);
    for (const Method& method : current->methods) {
      for (const auto* fields : {&method.params, &method.results}) {
        for (const Field& field : *fields) {
          std::vector<uint64_t> interfaces;
          interfacesNamed(field.type, interfaces);
          for (uint64_t id : interfaces) usedFiles.insert(_naming.fileOf(id));
        }
      }
    }
  }
  usedFiles.erase(model.id);
  for (auto import : requested.getImports()) {
    if (usedFiles.erase(import.getId()) > 0) {
      model.includes.push_back(includeFor(import.getName().cStr()));
    }
  }
  // Reached through another file's alias rather than imported: a display name is the path
  // under an import directory, so include it as an absolute import.
  for (uint64_t fileId : usedFiles) {
    std::string displayName = _naming.node(fileId).getDisplayName().cStr();
    model.includes.push_back(includeFor("/" + displayName));
  }
  return model;
}

void ModelBuilder::collectExceptions(uint64_t scopeId, std::vector<ExceptionType>& out) {
  for (auto nested : _naming.node(scopeId).getNestedNodes()) {
    auto node = _naming.node(nested.getId());
    if (node.isStruct() && hasAnnotation(node.getAnnotations(), kExceptionAnnotation)) {
      ExceptionType exception;
      exception.id = node.getId();
      exception.className = _naming.ferryClass(exception.id);
      exception.capnpQualified = _naming.capnpType(exception.id);
      std::string displayName = node.getDisplayName().cStr();
      exception.shortName = displayName.substr(displayName.find(':') + 1);
      exception.doc = docComment(exception.id);
      // Not an interface, but located and reported as problems of interfaces are.
      auto refuse = [&](std::string message) {
        _problems.push_back(Problem{exception.id, "", 0, exception.shortName, std::move(message)});
      };
      auto schema = _loader.get(exception.id).asStruct();
      if (node.getIsGeneric()) {
        refuse("a generic struct cannot be a $Ferry.exception; declare a struct without "
               "parameters");
      } else if (auto mapped = mapType(capnp::Type(schema), _naming);
                 auto* unsupported = std::get_if<Unsupported>(&mapped)) {
        refuse("a $Ferry.exception struct must travel by value: " + unsupported->what);
      } else if (std::get<MappedType>(mapped).carriesCaps) {
        refuse("a $Ferry.exception struct cannot hold interfaces (an error is not a way to hand "
               "out objects); return the interface from the method, or put its ferry:// name "
               "in a Text field");
      } else {
        out.push_back(std::move(exception));
      }
    }
    if (node.isInterface() || node.isStruct()) collectExceptions(node.getId(), out);
  }
}

void ModelBuilder::collectInterfaces(uint64_t scopeId, std::vector<uint64_t>& out) const {
  for (auto nested : _naming.node(scopeId).getNestedNodes()) {
    auto node = _naming.node(nested.getId());
    if (node.isInterface()) out.push_back(node.getId());
    if (node.isInterface() || node.isStruct()) collectInterfaces(node.getId(), out);
  }
}

const Interface& ModelBuilder::interface(uint64_t id) {
  if (auto found = _interfaces.find(id); found != _interfaces.end()) return *found->second;

  auto schema = _loader.get(id).asInterface();
  auto proto = schema.getProto();
  auto model = std::make_unique<Interface>();
  model->id = id;
  model->fileId = _naming.fileOf(id);
  model->className = _naming.ferryClass(id);
  model->capnpQualified = _naming.capnpType(id);
  model->qualified = _naming.ferryQualified(id);
  model->displayName = proto.getDisplayName().cStr();
  model->shortName = model->displayName.substr(model->displayName.find(':') + 1);
  model->doc = docComment(id);

  if (proto.getIsGeneric()) {
    addProblem(*model, nullptr, "generic interfaces are not supported" + std::string(kGenericWorkaround));
  } else {
    _building.insert(id);
    for (auto superclass : proto.getInterface().getSuperclasses()) {
      if (_building.count(superclass.getId()) > 0) {
        addProblem(*model, nullptr,
                   "extends form a cycle through " + _naming.ferryClass(superclass.getId()));
        continue;
      }
      const Interface& base = interface(superclass.getId());
      model->bases.push_back(&base);
      if (!base.usable) {
        model->usable = false;
        // A base in this file reports its own problems; one elsewhere is only named.
        if (base.fileId != model->fileId) {
          addProblem(*model, nullptr,
                     "extends " + base.displayName + ", which capnpc-ferry cannot generate");
        }
      }
    }
    _building.erase(id);

    // Depth first, each base before its own ancestors; a diamond's top appears once.
    for (const Interface* base : model->bases) {
      std::vector<const Interface*> reached{base};
      reached.insert(reached.end(), base->ancestors.begin(), base->ancestors.end());
      for (const Interface* ancestor : reached) {
        if (std::find(model->ancestors.begin(), model->ancestors.end(), ancestor) ==
            model->ancestors.end()) {
          model->ancestors.push_back(ancestor);
        }
      }
    }

    std::vector<std::pair<uint16_t, Method>> methods;
    for (auto method : schema.getMethods()) {
      methods.emplace_back(method.getProto().getCodeOrder(), this->method(*model, method));
    }
    std::sort(methods.begin(), methods.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& entry : methods) model->methods.push_back(std::move(entry.second));
    checkGeneratedNames(*model);

    for (auto nested : proto.getNestedNodes()) {
      auto node = _naming.node(nested.getId());
      if (!node.isConst()) continue;
      std::string name = upperCase(cxxName(node.getAnnotations(), nested.getName().cStr()));
      model->constants.push_back({name, model->capnpQualified + "::" + name});
    }
  }

  return *(_interfaces[id] = std::move(model));
}

Method ModelBuilder::method(Interface& owner, capnp::InterfaceSchema::Method schema) {
  auto proto = schema.getProto();
  Method method;
  method.capnpName = proto.getName().cStr();
  method.stem = cxxName(proto.getAnnotations(), method.capnpName);
  method.name = safeIdentifier(method.stem);
  method.ordinal = static_cast<uint16_t>(schema.getIndex());
  method.oneway = hasAnnotation(proto.getAnnotations(), kOnewayAnnotation);
  method.idempotent = hasAnnotation(proto.getAnnotations(), kIdempotentAnnotation);
  method.doc = docComment(owner.id, static_cast<int>(schema.getIndex()));

  bool reserved = std::find(std::begin(kReservedNames), std::end(kReservedNames), method.stem) !=
                  std::end(kReservedNames);
  if (reserved || method.stem.starts_with(kReservedPrefix)) {
    addProblem(owner, &method,
               "method name '" + method.stem +
                   "' is reserved for names ferry generates; rename it (in C++ only with "
                   "$Cxx.name)");
  }
  if (proto.getImplicitParameters().size() > 0) {
    addProblem(owner, &method, "generic methods are not supported" + std::string(kGenericWorkaround));
    return method;
  }

  method.paramsStruct = _naming.capnpMethodStruct(schema, proto.getParamStructType(), "Params");
  method.resultsStruct =
      _naming.capnpMethodStruct(schema, proto.getResultStructType(), "Results");
  bool stream = proto.getResultStructType() == kStreamResultId;
  if (stream) {
    addProblem(owner, &method,
               "streaming methods (-> stream) are not supported: ferry would send each call as "
               "a plain call, without flow control; declare `-> ()` and keep a bounded number of "
               "" + method.stem + "Async() futures in flight instead");
  }
  addFields(owner, method, schema.getParamType(), "parameter", method.params, method.paramCaps);
  if (!stream) {
    addFields(owner, method, schema.getResultType(), "result", method.results,
              method.resultCaps);
  }
  if (method.oneway && schema.getResultType().getFields().size() > 0) {
    addProblem(owner, &method, "a $Ferry.oneway method cannot have results; remove the results or the annotation");
  }
  method.wholeParams = !method.params.empty() && method.params[0].accessor.empty();
  method.wholeResults = !method.results.empty() && method.results[0].accessor.empty();
  for (const Field& field : method.params) method.paramsCarryCaps |= field.type.carriesCaps;
  for (const Field& field : method.results) method.resultsCarryCaps |= field.type.carriesCaps;
  // C++ default arguments must be trailing: only the last run of defaulted params keeps them.
  for (size_t i = method.params.size(); i-- > 0;) {
    if (method.params[i].defaultArgument.empty()) {
      for (size_t j = 0; j < i; ++j) method.params[j].defaultArgument.clear();
      break;
    }
  }
  if (method.results.size() > 1) method.resultsName = titleCase(method.stem) + "Results";
  return method;
}

void ModelBuilder::addFields(Interface& owner, const Method& method, capnp::StructSchema schema,
                             const std::string& role, std::vector<Field>& fields,
                             uint32_t& caps) {
  auto proto = schema.getProto();
  if (proto.getIsGeneric() || schema.isBranded()) {
    addProblem(owner, &method, "generic structs are not supported as " + role + "s" +
                                   std::string(kGenericWorkaround));
    return;
  }
  if (needsWholeStruct(schema)) {
    bool params = role == "parameter";
    addWholeStruct(owner, method, schema, params ? method.paramsStruct : method.resultsStruct,
                   role, fields);
    return;
  }

  std::vector<capnp::StructSchema::Field> inCodeOrder;
  for (auto field : schema.getFields()) inCodeOrder.push_back(field);
  std::sort(inCodeOrder.begin(), inCodeOrder.end(), [](const auto& a, const auto& b) {
    return a.getProto().getCodeOrder() < b.getProto().getCodeOrder();
  });

  for (const auto& field : inCodeOrder) {
    auto fieldProto = field.getProto();
    std::string declared = fieldProto.getName().cStr();
    if (field.getType().isVoid()) continue;
    auto mapped = mapType(field.getType(), _naming);
    if (auto* unsupported = std::get_if<Unsupported>(&mapped)) {
      addProblem(owner, &method, role + " '" + declared + "': " + unsupported->what);
      continue;
    }
    std::string name = cxxName(fieldProto.getAnnotations(), declared);
    Field result{safeIdentifier(name), titleCase(name), std::get<MappedType>(mapped)};
    if (result.type.kind == TypeKind::interface) result.capIndex = caps++;
    if (role == "parameter") {
      result.defaultArgument = defaultArgument(field, result.type);
    }
    fields.push_back(std::move(result));
  }
}

void ModelBuilder::addWholeStruct(Interface& owner, const Method& method,
                                  capnp::StructSchema schema, const std::string& cxxType,
                                  const std::string& role, std::vector<Field>& fields) {
  auto mapped = mapType(capnp::Type(schema), _naming);
  if (auto* unsupported = std::get_if<Unsupported>(&mapped)) {
    addProblem(owner, &method, role + "s: " + unsupported->what);
    return;
  }
  MappedType type = std::get<MappedType>(std::move(mapped));
  type.name = cxxType;  // an implicit params struct is named after the method
  fields.push_back({role == "parameter" ? "params" : "results", "", std::move(type)});
}

void ModelBuilder::checkGeneratedNames(Interface& model) {
  std::map<std::string, std::vector<GeneratedName>> names;
  std::vector<const Interface*> closure{&model};
  closure.insert(closure.end(), model.ancestors.begin(), model.ancestors.end());
  for (const Interface* owner : closure) {
    for (const Method& method : owner->methods) {
      names[method.name].push_back({owner, &method, "method"});
      names[method.stem + "Async"].push_back({owner, &method, "async companion"});
      if (!method.resultsName.empty()) {
        names[method.resultsName].push_back({owner, &method, "results struct"});
      }
    }
  }

  // One report per pair of clashing methods, so method names go first: a clash of two methods
  // implies one of their async companions, which is then not reported again.
  std::set<std::pair<const Method*, const Method*>> reportedPairs;
  auto report = [&](const std::string& name, const std::vector<const GeneratedName*>& claims) {
    // Report at a method of this interface when one is involved, preferably at the one that
    // declares `name` itself.
    auto rank = [&](const GeneratedName* claim) {
      bool own = claim->owner == &model;
      return (own ? 2 : 0) + (std::string_view(claim->kind) == "method" ? 1 : 0);
    };
    const GeneratedName* reported = claims.front();
    for (const GeneratedName* claim : claims) {
      if (rank(claim) > rank(reported)) reported = claim;
    }
    const GeneratedName* other = nullptr;
    for (const GeneratedName* claim : claims) {
      if (!claim->sameOrigin(*reported)) other = other != nullptr ? other : claim;
    }
    if (other == nullptr) return;
    auto pair = std::minmax(reported->method, other->method);
    if (!reportedPairs.insert(pair).second) return;
    if (reported->owner == &model) {
      addProblem(model, reported->method,
                 reported->describe(name) + " collides with " + other->describe(name) +
                     "; rename one of them (in C++ only with $Cxx.name)");
      return;
    }
    // Between two ancestors: already reported at a base that extends both.
    for (const Interface* base : model.bases) {
      if (bothWithin(*base, reported->owner, other->owner)) return;
    }
    addProblem(model, nullptr,
               reported->describe(name) + " and " + other->describe(name) +
                   " clash in C++ (both are inherited); rename one of them (in C++ only with "
                   "$Cxx.name)");
  };
  for (bool methodsOnly : {true, false}) {
    for (const auto& [name, claims] : names) {
      std::vector<const GeneratedName*> considered;
      for (const GeneratedName& claim : claims) {
        if (!methodsOnly || std::string_view(claim.kind) == "method") considered.push_back(&claim);
      }
      if (!considered.empty()) report(name, considered);
    }
  }
}

void ModelBuilder::addProblem(Interface& owner, const Method* method, std::string message) {
  owner.usable = false;
  Problem problem{owner.id, "", 0, owner.shortName, std::move(message)};
  if (method != nullptr) {
    problem.method = method->capnpName;
    problem.ordinal = method->ordinal;
    problem.subject += "." + method->capnpName;
  }
  _problems.push_back(std::move(problem));
}

std::string ModelBuilder::docComment(uint64_t id, int member) const {
  auto found = _sourceInfo.find(id);
  if (found == _sourceInfo.end()) return "";
  if (member < 0) return found->second.getDocComment().cStr();
  auto members = found->second.getMembers();
  if (static_cast<unsigned>(member) >= members.size()) return "";
  return members[static_cast<unsigned>(member)].getDocComment().cStr();
}

}  // namespace ferry::idl
