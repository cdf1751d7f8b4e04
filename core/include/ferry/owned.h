// Owned<S>: a Cap'n Proto struct value that owns its message.
//
// Struct-typed parameters arrive in a servant as `S::Reader`, valid for the duration of the call.
// Struct-typed results are returned as `Owned<S>`: the servant builds one, the stub copies it into
// the response; on the client side the proxy returns an `Owned<S>` the caller may keep.
#pragma once

#include <memory>

#include <capnp/message.h>

namespace ferry {

template <typename S>
class Owned {
public:
  using Reader = typename S::Reader;
  using Builder = typename S::Builder;

  // An empty (default-valued) struct, ready to fill through builder().
  Owned() : _message(std::make_unique<capnp::MallocMessageBuilder>(kFirstSegmentWords)) {
    _message->initRoot<S>();
  }

  // A deep copy of `value`.
  explicit Owned(Reader value)
      : _message(std::make_unique<capnp::MallocMessageBuilder>(kFirstSegmentWords)) {
    _message->setRoot(value);
  }

  Owned(Owned&&) noexcept = default;
  Owned& operator=(Owned&&) noexcept = default;

  Owned(const Owned& other) : Owned(other.reader()) {}
  Owned& operator=(const Owned& other) {
    if (this != &other) *this = Owned(other.reader());
    return *this;
  }

  Builder builder() { return _message->getRoot<S>(); }
  Reader reader() const { return _message->getRoot<S>().asReader(); }

private:
  static constexpr unsigned kFirstSegmentWords = 64;
  // unique_ptr: MallocMessageBuilder is neither movable nor copyable.
  std::unique_ptr<capnp::MallocMessageBuilder> _message;
};

}  // namespace ferry
