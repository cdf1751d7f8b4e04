#include <ferry/git.h>

#include <ferry/error.h>

#include "ids-impl.h"
#include "marshal-impl.h"

namespace ferry {

namespace {
constexpr char kUnknownCookie[] =
    "no interface is registered in the GlobalInterfaceTable under cookie {}: it was revoked, or "
    "never registered";
}  // namespace

GlobalInterfaceTable::Cookie GlobalInterfaceTable::registerInterface(Interface* object, Iid iid) {
  FERRY_REQUIRE(object != nullptr, Errc::invalidArgument,
                "GlobalInterfaceTable::registerInterface needs an object and was given a null "
                "pointer");
  ObjRefBytes packet = marshalInterface(object, iid, MarshalContext::inproc,
                                        MarshalFlags::tableStrong);
  Cookie cookie = detail::randomNonZero64();
  std::lock_guard lock(_mutex);
  _entries.emplace(cookie, std::move(packet));
  return cookie;
}

ObjRefBytes GlobalInterfaceTable::packetOf(Cookie cookie) {
  std::lock_guard lock(_mutex);
  auto it = _entries.find(cookie);
  FERRY_REQUIRE(it != _entries.end(), Errc::invalidArgument,
                kUnknownCookie, cookie);
  return it->second;
}

void* GlobalInterfaceTable::getErased(Cookie cookie, Iid iid) {
  return detail::unmarshalInterfaceErased(packetOf(cookie), iid);
}

void GlobalInterfaceTable::revoke(Cookie cookie) {
  ObjRefBytes packet;
  {
    std::lock_guard lock(_mutex);
    auto it = _entries.find(cookie);
    FERRY_REQUIRE(it != _entries.end(), Errc::invalidArgument,
                  kUnknownCookie, cookie);
    packet = std::move(it->second);
    _entries.erase(it);
  }
  releaseMarshalData(packet);
}

size_t GlobalInterfaceTable::size() {
  std::lock_guard lock(_mutex);
  return _entries.size();
}

}  // namespace ferry
