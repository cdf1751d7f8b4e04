#include "type-mapping.h"

#include <optional>
#include <set>

namespace ferry::idl {

namespace {

using Which = capnp::schema::Type::Which;

const char* primitiveName(Which which) {
  switch (which) {
    case Which::BOOL: return "bool";
    case Which::INT8: return "int8_t";
    case Which::INT16: return "int16_t";
    case Which::INT32: return "int32_t";
    case Which::INT64: return "int64_t";
    case Which::UINT8: return "uint8_t";
    case Which::UINT16: return "uint16_t";
    case Which::UINT32: return "uint32_t";
    case Which::UINT64: return "uint64_t";
    case Which::FLOAT32: return "float";
    case Which::FLOAT64: return "double";
    default: return nullptr;
  }
}

bool isGeneric(const capnp::Schema& schema) {
  return schema.getProto().getIsGeneric() || schema.isBranded();
}

// Why a struct cannot travel by value through ferry, if it cannot: it holds, at any depth, an
// interface or AnyPointer. `visited` breaks cycles of recursive structs.
std::optional<std::string> structObstacle(capnp::StructSchema schema,
                                          std::set<uint64_t>& visited) {
  if (!visited.insert(schema.getProto().getId()).second) return std::nullopt;
  for (auto field : schema.getFields()) {
    capnp::Type type = field.getType();
    while (type.isList()) type = type.asList().getElementType();
    std::string where = std::string(schema.getShortDisplayName().cStr()) + "." +
                        field.getProto().getName().cStr();
    if (type.isInterface()) return "an interface (field '" + where + "')";
    if (type.isAnyPointer()) return "an AnyPointer (field '" + where + "')";
    if (type.isStruct()) {
      if (auto inner = structObstacle(type.asStruct(), visited)) return inner;
    }
  }
  return std::nullopt;
}

// "AnyPointer", "AnyStruct", "AnyList" or "Capability": how the schema spelled an
// unconstrained AnyPointer type.
std::string anyPointerName(capnp::Type type) {
  switch (type.whichAnyPointerKind()) {
    case capnp::schema::Type::AnyPointer::Unconstrained::STRUCT: return "AnyStruct";
    case capnp::schema::Type::AnyPointer::Unconstrained::LIST: return "AnyList";
    case capnp::schema::Type::AnyPointer::Unconstrained::CAPABILITY: return "Capability";
    default: return "AnyPointer";
  }
}

std::variant<MappedType, Unsupported> mapListElement(capnp::Type element, const Naming& naming) {
  MappedType list{TypeKind::list, "", TypeKind::primitive};
  switch (element.which()) {
    case Which::TEXT:
      list.elementKind = TypeKind::text;
      list.name = "std::string";
      return list;
    case Which::DATA:
      list.elementKind = TypeKind::data;
      list.name = "std::vector<uint8_t>";
      return list;
    case Which::ENUM:
      if (isGeneric(element.asEnum())) {
        return Unsupported{"enums of generic scopes are not supported"};
      }
      list.elementKind = TypeKind::enumeration;
      list.name = naming.capnpType(element.asEnum().getProto().getId());
      return list;
    case Which::VOID: return Unsupported{"List(Void) is not supported"};
    case Which::STRUCT: return Unsupported{"List(struct) is not supported"};
    case Which::LIST: return Unsupported{"List(List) is not supported"};
    case Which::INTERFACE: return Unsupported{"List(interface) is not supported"};
    case Which::ANY_POINTER:
      if (element.getBrandParameter() != nullptr || element.getImplicitParameter() != nullptr) {
        return Unsupported{"generic parameters are not supported"};
      }
      return Unsupported{"List(" + anyPointerName(element) + ") is not supported"};
    default:
      list.elementKind = TypeKind::primitive;
      list.name = primitiveName(element.which());
      return list;
  }
}

}  // namespace

std::string MappedType::paramType() const {
  switch (kind) {
    case TypeKind::primitive:
    case TypeKind::enumeration: return name;
    case TypeKind::text: return "std::string_view";
    case TypeKind::data: return "std::span<const uint8_t>";
    case TypeKind::list: return "const std::vector<" + name + ">&";
    case TypeKind::structure: return name + "::Reader";
    case TypeKind::interface: return "::ferry::Ref<" + name + ">";
  }
  return name;
}

std::string MappedType::valueType() const {
  switch (kind) {
    case TypeKind::primitive:
    case TypeKind::enumeration: return name;
    case TypeKind::text: return "std::string";
    case TypeKind::data: return "std::vector<uint8_t>";
    case TypeKind::list: return "std::vector<" + name + ">";
    case TypeKind::structure: return "::ferry::Owned<" + name + ">";
    case TypeKind::interface: return "::ferry::Ref<" + name + ">";
  }
  return name;
}

std::string MappedType::localParamType() const {
  return kind == TypeKind::list ? valueType() : paramType();
}

bool MappedType::movable() const {
  return kind != TypeKind::primitive && kind != TypeKind::enumeration;
}

std::variant<MappedType, Unsupported> mapType(capnp::Type type, const Naming& naming) {
  switch (type.which()) {
    case Which::VOID: return Unsupported{"Void cannot be mapped"};  // callers skip Void fields
    case Which::TEXT: return MappedType{TypeKind::text, "", TypeKind::primitive};
    case Which::DATA: return MappedType{TypeKind::data, "", TypeKind::primitive};
    case Which::ENUM: {
      auto schema = type.asEnum();
      if (isGeneric(schema)) return Unsupported{"enums of generic scopes are not supported"};
      return MappedType{TypeKind::enumeration, naming.capnpType(schema.getProto().getId()),
                        TypeKind::primitive, schema.getProto().getId()};
    }
    case Which::STRUCT: {
      auto schema = type.asStruct();
      if (isGeneric(schema)) return Unsupported{"generic structs are not supported"};
      std::set<uint64_t> visited;
      if (auto obstacle = structObstacle(schema, visited)) {
        return Unsupported{"struct " + std::string(schema.getShortDisplayName().cStr()) +
                           " contains " + *obstacle +
                           "; interfaces can only be parameters or results"};
      }
      return MappedType{TypeKind::structure, naming.capnpType(schema.getProto().getId()),
                        TypeKind::primitive, schema.getProto().getId()};
    }
    case Which::INTERFACE: {
      auto schema = type.asInterface();
      if (isGeneric(schema)) return Unsupported{"generic interfaces are not supported"};
      return MappedType{TypeKind::interface, naming.ferryQualified(schema.getProto().getId()),
                        TypeKind::primitive, schema.getProto().getId()};
    }
    case Which::LIST: return mapListElement(type.asList().getElementType(), naming);
    case Which::ANY_POINTER:
      if (type.getBrandParameter() != nullptr || type.getImplicitParameter() != nullptr) {
        return Unsupported{"generic parameters are not supported"};
      }
      return Unsupported{anyPointerName(type) + " is not supported"};
    default:
      return MappedType{TypeKind::primitive, primitiveName(type.which()), TypeKind::primitive};
  }
}

}  // namespace ferry::idl
