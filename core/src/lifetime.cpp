#include <ferry/lifetime.h>

#include "apartment-impl.h"
#include "import-table.h"
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

ExternalReferences externalReferences(Interface* object) {
  FERRY_REQUIRE(object != nullptr, Errc::invalidArgument,
                "externalReferences needs an object; it was given a null pointer");
  FERRY_REQUIRE(!isProxy(object), Errc::invalidArgument,
                "externalReferences was given a proxy; a proxy has no stub manager, so ask in the "
                "apartment of the object it stands for");
  detail::ApartmentImpl& here = detail::requireCurrentApartment();
  return here.exports().externalReferences(object);
}

}  // namespace ferry
