#include <ferry/lifetime.h>

#include "apartment-impl.h"
#include "thread-state.h"

namespace ferry {

void disconnectObject(Interface* object) {
  FERRY_REQUIRE(object != nullptr, Errc::invalidArgument,
                "disconnectObject needs an object and was given a null pointer");
  detail::ApartmentImpl& here = detail::requireCurrentApartment();
  detail::Retired retired = here.exports().disconnect(object);
  // The stub manager's reference is released here, in the object's apartment.
}

void lockObjectExternal(Interface* object, bool lock, bool lastUnlockReleases) {
  FERRY_REQUIRE(object != nullptr, Errc::invalidArgument,
                "lockObjectExternal needs an object and was given a null pointer");
  detail::ApartmentImpl& here = detail::requireCurrentApartment();
  detail::Retired retired;
  here.exports().lockExternal(object, lock, lastUnlockReleases, retired);
}

}  // namespace ferry
