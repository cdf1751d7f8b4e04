// Lifetime operations on exported objects (COM's CoDisconnectObject, CoLockObjectExternal,
// IExternalConnection).
#pragma once

#include <ferry/api.h>
#include <ferry/object.h>

namespace ferry {

// An optional hook a servant implements (as a second base class, beside Implements<…>) to learn
// when its first strong external reference appears and when its last one goes. Weak table
// entries are not connections, but while one is outstanding an object with the hook keeps its
// stub manager (and stays alive) after its last connection went, until releaseMarshalData of
// the entry. Both run on the thread that changed the count, under ferry's export-table lock:
// record the fact, do not call back into ferry.
class FERRY_API ExternalConnection {
public:
  virtual void addConnection() = 0;
  // `lastReleaseCloses`: the releaser asked for the object to shut down. False for
  // lockObjectExternal(object, false, false), for a normal packet unmarshaled in the object's own
  // apartment, and when the apartment tears down with connections outstanding; true otherwise.
  virtual void releaseConnection(bool lastReleaseCloses) = 0;

protected:
  ~ExternalConnection() = default;
};

// Server side, in the object's apartment: every stub of the object goes and every external
// reference is dropped (the ExternalConnection hook is not told). Calls already running finish;
// new calls through proxies fail with `disconnected`. A no-op for an object never exported.
FERRY_API void disconnectObject(Interface* object);

// In the object's apartment: adds (lock) or removes (unlock) one strong external reference, as a
// proxy would, without one. The unlock that removes the last strong reference tells the hook
// releaseConnection(lastUnlockReleases) and releases the stub manager, unless a tableWeak packet
// is outstanding and either `lastUnlockReleases` is false or the object has the hook (COM's
// CoLockObjectExternal). Throws invalidArgument when unlocking an object with no strong
// reference.
FERRY_API void lockObjectExternal(Interface* object, bool lock, bool lastUnlockReleases = true);

// What an object's stub manager in the calling apartment holds (a diagnostic; the admin
// interface shows the same). `strong`: the strong external references (normal packets'
// references held by importers or still in the packet, tableStrong entries, locks); `weak`: the
// outstanding tableWeak entries; `stubManager`: whether the object is exported from this
// apartment at all (false: both counts are zero). The values are a snapshot: other apartments
// and processes change them concurrently.
struct ExternalReferences {
  uint32_t strong = 0;
  uint32_t weak = 0;
  bool stubManager = false;
};

// In the object's apartment. Throws invalidArgument for a null pointer or a proxy (ask in the
// object's own apartment), notInitialized outside any apartment.
FERRY_API ExternalReferences externalReferences(Interface* object);

}  // namespace ferry
