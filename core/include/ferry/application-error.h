// Errors a schema declares: a struct annotated $Ferry.exception becomes an exception class that a
// servant throws and a caller catches, with its fields, in any apartment, process or host.
//
//     struct OutOfStock $Ferry.exception { item @0 :Text; available @1 :UInt32; }
//
// capnpc-ferry emits `<ns>::iface::OutOfStock`, derived from ApplicationError:
//
//     throw iface::OutOfStock([&](OutOfStock::Builder f) { f.setItem(name); f.setAvailable(3); });
//     ...
//     catch (const iface::OutOfStock& e) { e.fields().getAvailable(); }
//
// On the wire it is an error response with code applicationError, the struct's type id and its
// fields (orpc.capnp, ErrorInfo). A caller whose process does not compile that schema catches it
// as ApplicationError (typeId() and the fields as an AnyStruct). Any other exception a servant
// throws still reaches the caller as serverFault.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include <capnp/any.h>

#include <ferry/api.h>
#include <ferry/error.h>

namespace ferry {

class FERRY_API ApplicationError : public Error {
public:
  // An error of the struct type `typeId` with a copy of `fields`; `text` is the message (the
  // generated classes pass the struct's name and fields in Cap'n Proto's text form).
  ApplicationError(uint64_t typeId, capnp::AnyStruct::Reader fields, std::string text);
  // The same error (shares its fields).
  explicit ApplicationError(const Error& error);

  // The Cap'n Proto type id of the struct.
  uint64_t typeId() const noexcept;
  // Its fields; valid while this error or a copy of it lives.
  capnp::AnyStruct::Reader fields() const;
};

namespace detail {

// A static object in each generated .ferry.c++ registers the exception classes of its schema:
// `rethrow` throws the generated class made from a received error.
using ApplicationErrorRethrow = void (*)(const ApplicationError& received);
class FERRY_API ApplicationErrorRegistration {
public:
  ApplicationErrorRegistration(uint64_t typeId, ApplicationErrorRethrow rethrow) noexcept;
};

}  // namespace detail

}  // namespace ferry
