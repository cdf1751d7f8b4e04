// What an Error of a schema-declared type carries beside its code and message: the struct's type
// id and a copy of its fields, in a message of its own (shared by the error's copies).
#pragma once

#include <cstdint>

#include <capnp/any.h>
#include <capnp/message.h>

#include <ferry/error.h>

namespace ferry {

class ErrorDetail {
public:
  ErrorDetail(uint64_t typeId, capnp::AnyStruct::Reader fields);

  uint64_t typeId() const noexcept { return _typeId; }
  capnp::AnyStruct::Reader fields() const;

private:
  uint64_t _typeId;
  capnp::MallocMessageBuilder _message{64};
};

}  // namespace ferry
