// What capnpc-ferry generates, decided once: the interfaces of a schema file with their C++
// names, methods, parameter and result types, and everything about them ferry cannot support.
//
// The emitters (emitter.h) only print a model; every "can this be generated?" question is
// answered here, so a model without problems always yields C++ that compiles.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <capnp/schema-loader.h>
#include <capnp/schema.capnp.h>

#include "naming.h"
#include "type-mapping.h"

namespace ferry::idl {

// One parameter or result.
struct Field {
  std::string name;  // C++ identifier of the argument or result member
  // capnp's accessor suffix: get<accessor>(), set<accessor>(), ...; empty for a field that
  // stands for the whole params or results struct (see Method::wholeParams).
  std::string accessor;
  MappedType type;
  uint32_t capIndex = 0;  // interface-typed fields: index in the message's capability list
  // Parameters only: the C++ default argument for the schema's explicit default value ("1",
  // "::ns::Color::GREEN", "\"text\""); empty when there is none or it cannot be spelled.
  std::string defaultArgument{};
};

// A constant declared inside an interface, re-exported by its ferry class.
struct Constant {
  std::string name;     // capnp's C++ name: "MAX_ITEMS"
  std::string capnpQualified;  // "::ns::Interface::MAX_ITEMS"
};

struct Method {
  std::string name;       // the C++ method, keyword-escaped ("delete_")
  std::string stem;       // unescaped, for companions: <stem>Async, _ferryBuild_<stem>
  std::string capnpName;  // as declared in the schema
  uint16_t ordinal = 0;
  bool oneway = false;
  bool idempotent = false;
  std::string doc;
  std::string paramsStruct;   // capnp's C++ params struct, e.g. "::calc::Calculator::AddParams"
  std::string resultsStruct;  // likewise for results
  std::vector<Field> params;  // code order, Void fields dropped
  std::vector<Field> results;
  uint32_t paramCaps = 0;   // interface-typed params
  uint32_t resultCaps = 0;  // interface-typed results
  // A params (results) struct with a union or a group is passed whole, as capnp's struct type:
  // `params` (`results`) is then its one field, with an empty accessor.
  bool wholeParams = false;
  bool wholeResults = false;
  // Some param (result) holds interface pointers inside a struct or list value.
  bool paramsCarryCaps = false;
  bool resultsCarryCaps = false;
  std::string resultsName;  // the generated results struct ("DivmodResults"), if results > 1

  // The C++ return type, relative to the interface class ("DivmodResults") ...
  std::string returnType() const;
  // ... or qualified by it, for use outside the class.
  std::string returnType(const std::string& interfaceQualified) const;
};

struct Interface {
  uint64_t id = 0;
  uint64_t fileId = 0;
  std::string className;    // "Outer_Inner"
  std::string capnpQualified;  // capnp's C++ type: "::calc::Outer::Inner"
  std::string qualified;    // "::calc::iface::Outer_Inner"
  std::string displayName;  // "calc.capnp:Outer.Inner"
  std::string shortName;    // "Outer.Inner"
  std::string doc;
  std::vector<const Interface*> bases;      // `extends`, in declaration order
  std::vector<const Interface*> ancestors;  // all interfaces it extends, transitively, once each
  std::vector<Method> methods;              // code order
  std::vector<Constant> constants;          // declaration order
  bool usable = true;                       // false if it (or a base) has a problem
};

// Something ferry cannot generate, located at an interface and optionally one of its methods.
struct Problem {
  uint64_t interfaceId = 0;
  std::string method;    // capnp name; empty for the interface itself
  uint16_t ordinal = 0;  // meaningful with `method`
  std::string subject;   // "Calculator.add", or "Calculator"
  std::string message;
};

// A struct annotated $Ferry.exception: an exception class of the same name beside the
// interface classes.
struct ExceptionType {
  uint64_t id = 0;
  std::string className;       // "Outer_OutOfStock"
  std::string capnpQualified;  // capnp's C++ type: "::inv::Outer::OutOfStock"
  std::string shortName;       // "Outer.OutOfStock"
  std::string doc;
};

struct FileModel {
  uint64_t id = 0;
  std::string filename;                     // as requested: "dir/calc.capnp"
  std::string ferryNamespace;               // "calc::iface"
  // The ferry headers of the imports whose interfaces this file names: "\"x.ferry.h\"".
  std::vector<std::string> includes;
  std::vector<const Interface*> interfaces;  // bases before the interfaces extending them
  std::vector<ExceptionType> exceptions;     // declaration order
};

class ModelBuilder {
public:
  // `loader` holds every node of the request; `request` supplies doc comments. Both must
  // outlive the builder.
  ModelBuilder(const capnp::SchemaLoader& loader,
               capnp::schema::CodeGeneratorRequest::Reader request);

  // The model of one requested file. Problems found on the way are added to problems().
  FileModel file(capnp::schema::CodeGeneratorRequest::RequestedFile::Reader requested);

  // Every problem found so far, for interfaces of any file.
  const std::vector<Problem>& problems() const { return _problems; }

  const Naming& naming() const { return _naming; }

private:
  // Builds (once) the model of an interface and of everything it extends.
  const Interface& interface(uint64_t id);
  Method method(Interface& owner, capnp::InterfaceSchema::Method schema);
  // Appends the non-Void fields of a params or results struct to `fields`, or reports why not.
  void addFields(Interface& owner, const Method& method, capnp::StructSchema schema,
                 const std::string& role, std::vector<Field>& fields, uint32_t& caps);
  // Makes `fields` the one field standing for the whole struct `schema` (C++ type `cxxType`).
  void addWholeStruct(Interface& owner, const Method& method, capnp::StructSchema schema,
                      const std::string& cxxType, const std::string& role,
                      std::vector<Field>& fields);
  // Names that would clash in C++ across the interface and its ancestors.
  void checkGeneratedNames(Interface& model);
  // Records a problem of `owner` (at `method` if given) and marks `owner` unusable.
  void addProblem(Interface& owner, const Method* method, std::string message);
  std::string docComment(uint64_t id, int member = -1) const;
  void collectInterfaces(uint64_t scopeId, std::vector<uint64_t>& out) const;
  // The structs annotated $Ferry.exception in a scope, at any depth; problems for those that
  // cannot be one.
  void collectExceptions(uint64_t scopeId, std::vector<ExceptionType>& out);

  const capnp::SchemaLoader& _loader;
  Naming _naming;
  std::map<uint64_t, capnp::schema::Node::SourceInfo::Reader> _sourceInfo;
  std::map<uint64_t, std::unique_ptr<Interface>> _interfaces;
  std::set<uint64_t> _building;  // interfaces whose model is being built (breaks `extends` cycles)
  std::vector<Problem> _problems;
};

}  // namespace ferry::idl
