// The C++ types ferry signatures use for schema types, and which schema types are supported.
//
//   schema type          parameter                      result / member
//   Bool, IntN, FloatN   bool, intN_t, float, double    same
//   enum E               capnp's enum class ::ns::E     same
//   Text                 std::string_view               std::string
//   Data                 std::span<const uint8_t>       std::vector<uint8_t>
//   List(T), T any       const std::vector<C>&          std::vector<C>
//     type here but Void (C: the result type of T; std::vector<bool> for List(Bool);
//                         List(List(Int32)) is std::vector<std::vector<int32_t>>)
//   struct S             ::ns::S::Reader                ::ferry::Owned<::ns::S>
//   interface I          ::ferry::Ref<::ns::iface::I>   same
//
// Interfaces inside struct values and lists (a struct field of interface type, List(I), a struct
// holding a List(I), ...) travel as capability pointers (ferry/capability.h); such a type
// `carriesCaps`. Void fields are skipped by the caller. Everything else is unsupported:
// AnyPointer and its spellings (AnyStruct, AnyList, Capability), List(Void), generic parameters
// and branded types, and structs that contain (at any depth) an AnyPointer, because ferry cannot
// know what such a pointer holds.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include <capnp/schema.h>

#include "naming.h"

namespace ferry::idl {

enum class TypeKind { primitive, enumeration, text, data, list, structure, interface };

struct MappedType {
  TypeKind kind = TypeKind::primitive;
  // primitive: "int32_t"; enumeration and structure: capnp's "::ns::S"; interface: the ferry
  // class "::ns::iface::I"; list: the element's result type ("std::string", "::ns::E", ...).
  std::string name{};
  // Lists only: the element type.
  std::shared_ptr<const MappedType> element{};
  // enumeration, structure and interface: the type's node.
  uint64_t nodeId = 0;
  // A struct or list value that holds interface pointers (at any depth), which travel as
  // capability pointers beside the message rather than as the method's own capabilities.
  bool carriesCaps = false;

  // How a caller passes the value to a method.
  std::string paramType() const;
  // How a method returns the value, and how a results struct holds it.
  std::string valueType() const;
  // How a stub holds a received parameter for the duration of the call: the parameter type,
  // except that lists are materialized into a std::vector.
  std::string localParamType() const;
  // True if the value is worth std::move (owns memory or a reference).
  bool movable() const;
};

// What a message about generics advises.
inline constexpr std::string_view kGenericWorkaround =
    "; declare a concrete one for each type you need";

struct Unsupported {
  std::string what;  // e.g. "List(struct) is not supported"
};

// Maps a non-Void field type, or says why it is not supported.
std::variant<MappedType, Unsupported> mapType(capnp::Type type, const Naming& naming);

}  // namespace ferry::idl
