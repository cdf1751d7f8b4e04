// The C++ types ferry signatures use for schema types, and which schema types are supported.
//
//   schema type          parameter                      result / member
//   Bool, IntN, FloatN   bool, intN_t, float, double    same
//   enum E               capnp's enum class ::ns::E     same
//   Text                 std::string_view               std::string
//   Data                 std::span<const uint8_t>       std::vector<uint8_t>
//   List(T), T one of    const std::vector<C>&          std::vector<C>
//     the above          (C: the result type of T; std::vector<bool> for List(Bool))
//   struct S             ::ns::S::Reader                ::ferry::Owned<::ns::S>
//   interface I          ::ferry::Ref<::ns::iface::I>   same
//
// Void fields are skipped by the caller. Everything else is unsupported: AnyPointer and
// capabilities, generic parameters and branded types, List(struct), List(List), List(interface),
// List(AnyPointer), and structs that contain (at any depth) an interface or AnyPointer, because
// ferry only carries interfaces in a message's capability list.
#pragma once

#include <string>
#include <variant>

#include <capnp/schema.h>

#include "naming.h"

namespace ferry::idl {

enum class TypeKind { primitive, enumeration, text, data, list, structure, interface };

struct MappedType {
  TypeKind kind = TypeKind::primitive;
  // primitive: "int32_t"; enumeration and structure: capnp's "::ns::S"; interface: the ferry
  // class "::ns::iface::I"; list: the element's result type ("std::string", "::ns::E", ...).
  std::string name;
  // Lists only: the element's kind (primitive, enumeration, text or data).
  TypeKind elementKind = TypeKind::primitive;
  // enumeration, structure and interface: the type's node.
  uint64_t nodeId = 0;

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

struct Unsupported {
  std::string what;  // e.g. "List(struct) is not supported"
};

// Maps a non-Void field type, or says why it is not supported.
std::variant<MappedType, Unsupported> mapType(capnp::Type type, const Naming& naming);

}  // namespace ferry::idl
