// Interface pointers inside Cap'n Proto values (ferry/capability.h): the capnp capability that
// wraps one.
#include <ferry/capability.h>

#include <ferry/error.h>

#include "interface-registry.h"
#include "capability-impl.h"

namespace ferry::detail {

namespace {

// A capability that is settled and cannot be called through capnp (ferry makes the calls).
// Atomically counted: copies of one value may live in several threads of an MTA.
class SettledHook : public capnp::ClientHook, public kj::AtomicRefcounted {
public:
  capnp::Request<capnp::AnyPointer, capnp::AnyPointer> newCall(
      uint64_t, uint16_t, kj::Maybe<capnp::MessageSize>) override {
    failCall();
  }
  VoidPromiseAndPipeline call(uint64_t, uint16_t, kj::Own<capnp::CallContextHook>&&) override {
    failCall();
  }
  kj::Maybe<capnp::ClientHook&> getResolved() override { return nullptr; }
  kj::Maybe<kj::Promise<kj::Own<capnp::ClientHook>>> whenMoreResolved() override {
    return nullptr;
  }
  kj::Maybe<int> getFd() override { return nullptr; }

private:
  [[noreturn]] static void failCall() {
    FERRY_FAIL(Errc::invalidArgument,
               "an interface pointer inside a value was called through capnp's Client; call the "
               "Ref that ferry::refOf() returns for it");
  }
};

// Holds one reference to an interface of an object. capnp copies of a value share it (addRef).
class InterfaceHook final : public SettledHook {
public:
  // Adopts a reference the caller owns.
  InterfaceHook(Interface* object, Iid iid) noexcept : _object(object), _iid(iid) {}
  ~InterfaceHook() noexcept override { _object->release(); }

  kj::Own<capnp::ClientHook> addRef() override { return kj::atomicAddRef(*this); }
  const void* getBrand() override { return &kBrand; }

  Interface* object() const noexcept { return _object; }
  Iid iid() const noexcept { return _iid; }

  static const char kBrand;

private:
  Interface* _object;
  Iid _iid;
};

const char InterfaceHook::kBrand = 0;

// Capability pointer k read through this table is copied as capability pointer k.
class IndexHook final : public SettledHook {
public:
  explicit IndexHook(unsigned index) noexcept : index(index) {}
  kj::Own<capnp::ClientHook> addRef() override { return kj::atomicAddRef(*this); }
  const void* getBrand() override { return &kBrand; }

  static const char kBrand;
  const unsigned index;
};

const char IndexHook::kBrand = 0;

class IndexTable final : public capnp::_::CapTableBuilder {
public:
  kj::Maybe<kj::Own<capnp::ClientHook>> extractCap(unsigned index) override {
    return kj::Own<capnp::ClientHook>(kj::atomicRefcounted<IndexHook>(index));
  }
  unsigned injectCap(kj::Own<capnp::ClientHook>&& cap) override {
    FERRY_ASSERT(cap->getBrand() == &IndexHook::kBrand);
    return static_cast<IndexHook&>(*cap).index;
  }
  void dropCap(unsigned) override {}
};

// The InterfaceHook `hook` is, for a value about to be marshaled.
InterfaceHook& ferryHookToSend(capnp::ClientHook& hook) {
  FERRY_REQUIRE(hook.getBrand() == &InterfaceHook::kBrand, Errc::invalidArgument,
                "a value holds a capnp capability that ferry did not make; only interface "
                "pointers wrapped by ferry::capability() (or received through ferry) can be "
                "marshaled");
  return static_cast<InterfaceHook&>(hook);
}

// The InterfaceHook `hook` is, for a value read from a message or built locally.
InterfaceHook& ferryHookReceived(capnp::ClientHook& hook) {
  FERRY_REQUIRE(!hook.isError(), Errc::protocolError,
                "a value holds an interface pointer outside its message's capability list; "
                "the peer was built from another version of the schema");
  return ferryHookToSend(hook);
}

}  // namespace

kj::Own<capnp::ClientHook> wrapInterface(Interface* object, Iid iid) {
  if (object == nullptr) return capnp::ClientHook::from(capnp::Capability::Client(nullptr));
  object->addRef();
  return kj::atomicRefcounted<InterfaceHook>(object, iid);
}

void* unwrapInterface(capnp::ClientHook& hook, Iid iid) {
  if (hook.isNull()) return nullptr;
  Interface* object = ferryHookReceived(hook).object();
  void* found = object->queryInterface(iid);
  FERRY_REQUIRE(found != nullptr, Errc::noInterface,
                "a value holds an interface pointer to an object that does not implement {}; "
                "the peer put another interface in that field",
                describeInterface(iid));
  return found;
}

std::pair<Interface*, Iid> wrappedInterface(capnp::ClientHook& hook) {
  if (hook.isNull()) return {nullptr, Iid()};
  InterfaceHook& ours = ferryHookToSend(hook);
  return {ours.object(), ours.iid()};
}

}  // namespace ferry::detail

namespace ferry::detail {

void copyKeepingCapIndexes(capnp::AnyPointer::Reader from, capnp::AnyPointer::Builder to) {
  using Helpers = capnp::_::PointerHelpers<capnp::AnyPointer>;
  IndexTable table;
  capnp::AnyPointer::Builder target(Helpers::getInternalBuilder(kj::mv(to)).imbue(&table));
  target.set(capnp::AnyPointer::Reader(Helpers::getInternalReader(from).imbue(&table)));
}

}  // namespace ferry::detail
