// How schema declarations are named in C++: the names capnp's own C++ generator gives to the
// types ferry code refers to, and the names capnpc-ferry gives to what it generates.
//
// capnp side (must match capnpc-c++ exactly, or the generated code does not compile):
//   a type is its file's $Cxx.namespace followed by its scope path, each step named by its
//   $Cxx.name or else its declared name: `::calc::Calculator::Op`;
//   an implicit params/results struct is nested in the interface's struct and named after the
//   method in TitleCase: `::calc::Calculator::AddParams`;
//   field accessors are get/set/init + the field's name in TitleCase.
// ferry side:
//   interfaces live in `<namespace>::iface`; a nested interface is named by its scope path joined
//   with '_' (`Outer.Inner` -> `Outer_Inner`), which cannot clash because capnp forbids
//   underscores in declaration names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <capnp/schema-loader.h>
#include <capnp/schema.capnp.h>

namespace ferry::idl {

inline constexpr uint64_t kCxxNamespaceAnnotation = 0xb9c6f99ebf805f2cull;
inline constexpr uint64_t kCxxNameAnnotation = 0xf264a779fef191ceull;
inline constexpr uint64_t kOnewayAnnotation = 0xbfff24751f0de528ull;
inline constexpr uint64_t kIdempotentAnnotation = 0xda852124e0c1b0d0ull;
inline constexpr uint64_t kExceptionAnnotation = 0xadb5a649ee0e4343ull;

using capnp::schema::Annotation;

// True if `annotations` contains the annotation `id`.
bool hasAnnotation(capnp::List<Annotation>::Reader annotations, uint64_t id);

// The C++ name of a node, method or field: its $Cxx.name if annotated, else `declaredName`.
std::string cxxName(capnp::List<Annotation>::Reader annotations, std::string_view declaredName);

// "divmod" -> "Divmod".
std::string titleCase(std::string_view name);

// A C++ keyword gets a trailing underscore, as capnp does ("delete" -> "delete_").
std::string safeIdentifier(std::string_view name);

// "dir/calc.capnp" -> "calc.capnp".
std::string baseName(std::string_view path);

// "dir/calc.capnp" -> "dir/calc": the stem of generated file names.
std::string withoutCapnpSuffix(std::string_view path);

// A C++ string literal for `text`; anything but printable ASCII as an octal escape.
std::string stringLiteral(std::string_view text);

// "0x8c2f...ull": a 64-bit id as a C++ literal.
std::string hexLiteral(uint64_t id);

// One step on the way from a file to a declaration: `interface Inner` inside `struct Outer`.
struct ScopeStep {
  std::string keyword;   // "struct" or "interface"
  std::string name;      // the name declared in the schema (not $Cxx.name)
  std::string cxxName;   // the C++ name of this step
};

class Naming {
public:
  // `loader` must hold every node of the CodeGeneratorRequest and outlive this object.
  explicit Naming(const capnp::SchemaLoader& loader) : _loader(loader) {}

  capnp::schema::Node::Reader node(uint64_t id) const { return _loader.get(id).getProto(); }

  // The file that declares `nodeId` (following scopeId; not for implicit params structs).
  uint64_t fileOf(uint64_t nodeId) const;

  // The file's $Cxx.namespace ("calc", "a::b") or "" when absent.
  std::string cxxNamespace(uint64_t fileId) const;

  // "calc::iface", or "iface" for a file without a namespace.
  std::string ferryNamespace(uint64_t fileId) const;

  // The steps from the file (excluded) to `nodeId` (included).
  std::vector<ScopeStep> scopePath(uint64_t nodeId) const;

  // capnp's fully qualified C++ name of a struct or enum: "::calc::Point".
  std::string capnpType(uint64_t nodeId) const;

  // capnp's C++ name of a method's params (suffix "Params") or results (suffix "Results") struct,
  // be it implicit (`add @0 (a :Int32)`) or a named struct type.
  std::string capnpMethodStruct(capnp::InterfaceSchema::Method method, uint64_t structId,
                                std::string_view suffix) const;

  // The ferry class of an interface: "Outer_Inner" ...
  std::string ferryClass(uint64_t interfaceId) const;
  // ... and fully qualified: "::calc::iface::Outer_Inner".
  std::string ferryQualified(uint64_t interfaceId) const;

private:
  const capnp::SchemaLoader& _loader;
};

}  // namespace ferry::idl
