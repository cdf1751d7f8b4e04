// Lifetime operations on exported objects (COM's CoDisconnectObject, CoLockObjectExternal,
// IExternalConnection).
#pragma once

#include <ferry/object.h>

namespace ferry {

// An optional hook a servant implements (as a second base class, beside Implements<…>) to learn
// when its first strong external reference appears and when its last one goes. Weak table
// entries never count. Both run on the thread that changed the count, under ferry's export-table
// lock: record the fact, do not call back into ferry.
class ExternalConnection {
public:
  virtual void addConnection() = 0;
  // `lastReleaseCloses`: the releaser asked for the object to shut down (always true except for
  // lockObjectExternal(object, false, false)).
  virtual void releaseConnection(bool lastReleaseCloses) = 0;

protected:
  ~ExternalConnection() = default;
};

// Server side, in the object's apartment: every stub of the object goes and every external
// reference is dropped (the ExternalConnection hook is not told). Calls already running finish;
// new calls through proxies fail with `disconnected`. A no-op for an object never exported.
void disconnectObject(Interface* object);

// In the object's apartment: adds (lock) or removes (unlock) one strong external reference, as a
// proxy would, without one. With `lastUnlockReleases`, the unlock that removes the last strong
// reference releases the stub manager unless a tableWeak packet is outstanding.
void lockObjectExternal(Interface* object, bool lock, bool lastUnlockReleases = true);

}  // namespace ferry
