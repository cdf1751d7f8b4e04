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

// What a struct holds, at any depth: whether it can travel by value at all (an AnyPointer or a
// generic interface cannot) and whether it holds interface pointers. `visited` breaks cycles of
// recursive structs.
struct StructScan {
  std::optional<std::string> obstacle;
  bool carriesCaps = false;
};

void scanStruct(capnp::StructSchema schema, std::set<uint64_t>& visited, StructScan& scan) {
  if (!visited.insert(schema.getProto().getId()).second) return;
  for (auto field : schema.getFields()) {
    capnp::Type type = field.getType();
    while (type.isList()) type = type.asList().getElementType();
    std::string where = std::string(schema.getShortDisplayName().cStr()) + "." +
                        field.getProto().getName().cStr();
    if (type.isAnyPointer()) {
      scan.obstacle = "an AnyPointer (field '" + where + "')";
      return;
    }
    if (type.isInterface()) {
      if (isGeneric(type.asInterface())) {
        scan.obstacle = "a generic interface (field '" + where + "')";
        return;
      }
      scan.carriesCaps = true;
    }
    if (type.isStruct()) {
      scanStruct(type.asStruct(), visited, scan);
      if (scan.obstacle) return;
    }
  }
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

std::variant<MappedType, Unsupported> mapList(capnp::Type element, const Naming& naming) {
  if (element.isVoid()) return Unsupported{"List(Void) is not supported; pass a count (UInt32) instead"};
  if (element.isAnyPointer() && element.getBrandParameter() == nullptr &&
      element.getImplicitParameter() == nullptr) {
    return Unsupported{"List(" + anyPointerName(element) +
                       ") is not supported; use a list of a concrete type"};
  }
  auto mapped = mapType(element, naming);
  if (auto* unsupported = std::get_if<Unsupported>(&mapped)) return *unsupported;
  auto inner = std::make_shared<MappedType>(std::get<MappedType>(std::move(mapped)));
  MappedType list{TypeKind::list, inner->valueType()};
  list.carriesCaps = inner->carriesCaps || inner->kind == TypeKind::interface;
  list.element = std::move(inner);
  return list;
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
    case Which::TEXT: return MappedType{TypeKind::text};
    case Which::DATA: return MappedType{TypeKind::data};
    case Which::ENUM: {
      auto schema = type.asEnum();
      if (isGeneric(schema)) return Unsupported{"enums of generic scopes are not supported; declare the enum outside "
                                              "the generic struct"};
      return MappedType{TypeKind::enumeration, naming.capnpType(schema.getProto().getId()),
                        nullptr, schema.getProto().getId()};
    }
    case Which::STRUCT: {
      auto schema = type.asStruct();
      if (isGeneric(schema)) return Unsupported{"generic structs are not supported" +
                                              std::string(kGenericWorkaround)};
      std::set<uint64_t> visited;
      StructScan scan;
      scanStruct(schema, visited, scan);
      if (scan.obstacle) {
        return Unsupported{"struct " + std::string(schema.getShortDisplayName().cStr()) +
                           " contains " + *scan.obstacle +
                           ", which ferry cannot marshal; use a concrete struct or interface "
                           "type there"};
      }
      return MappedType{TypeKind::structure, naming.capnpType(schema.getProto().getId()),
                        nullptr, schema.getProto().getId(), scan.carriesCaps};
    }
    case Which::INTERFACE: {
      auto schema = type.asInterface();
      if (isGeneric(schema)) return Unsupported{"generic interfaces are not supported" +
                                              std::string(kGenericWorkaround)};
      return MappedType{TypeKind::interface, naming.ferryQualified(schema.getProto().getId()),
                        nullptr, schema.getProto().getId()};
    }
    case Which::LIST: return mapList(type.asList().getElementType(), naming);
    case Which::ANY_POINTER:
      if (type.getBrandParameter() != nullptr || type.getImplicitParameter() != nullptr) {
        return Unsupported{"generic parameters are not supported; use a concrete type"};
      }
      return Unsupported{anyPointerName(type) +
                         " is not supported: ferry cannot know what it holds; use a concrete "
                         "struct, list or interface type"};
    default: return MappedType{TypeKind::primitive, primitiveName(type.which())};
  }
}

}  // namespace ferry::idl
