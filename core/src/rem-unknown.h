// The RemUnknown servant every apartment exports (core/schema/remunknown.capnp).
#pragma once

#include <ferry/generated.h>
#include <ferry/object.h>

namespace ferry::detail {

class ApartmentImpl;

struct RemUnknownServant {
  Ref<Interface> object;
  void* itf = nullptr;  // the RemUnknown interface of `object`
  StubDispatch dispatch = nullptr;
};

RemUnknownServant makeRemUnknown(ApartmentImpl& apartment);

}  // namespace ferry::detail
