// The Global Interface Table (COM's IGlobalInterfaceTable): one per process, reached through
// Runtime::git(). It makes an interface pointer available to every apartment of the process.
//
//   registerInterface  in the apartment that holds the pointer (a real object or a proxy): a
//                      tableStrong marshal, so the entry keeps the object alive;
//   get                from any apartment, any number of times: the real object in the
//                      registering apartment (or the object's own), a proxy elsewhere;
//   revoke             from any apartment: releases the entry.
//
// The registering apartment must outlive the entry (it exports the object). Do not race get()
// and revoke() on one cookie.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>

#include <ferry/api.h>
#include <ferry/marshal.h>
#include <ferry/object.h>

namespace ferry {

class FERRY_API GlobalInterfaceTable {
public:
  using Cookie = uint64_t;  // never 0; never reused within the process

  Cookie registerInterface(Interface* object, Iid iid);
  template <InterfaceType I>
  Cookie registerInterface(const Ref<I>& object) {
    return registerInterface(static_cast<Interface*>(object.get()), I::iid);
  }

  // Throws invalidArgument for an unknown cookie.
  template <InterfaceType I>
  Ref<I> get(Cookie cookie) {
    return Ref<I>::adopt(static_cast<I*>(getErased(cookie, I::iid)));
  }

  // Throws invalidArgument for an unknown cookie.
  void revoke(Cookie cookie);

  size_t size();

private:
  void* getErased(Cookie cookie, Iid iid);
  ObjRefBytes packetOf(Cookie cookie);

  std::mutex _mutex;
  std::unordered_map<Cookie, ObjRefBytes> _entries;
};

}  // namespace ferry
