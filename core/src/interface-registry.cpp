#include "interface-registry.h"

#include <mutex>
#include <unordered_map>

#include "log.h"

namespace ferry::detail {

namespace {

struct Registry {
  std::mutex mutex;
  std::unordered_map<Iid, InterfaceInfo> byIid;
};

// Function-local static: registrations run from static initializers of other translation units.
Registry& registry() {
  static Registry instance;
  return instance;
}

// An object's identity (Interface::iid) marshals like any interface: its stub holds references
// and names the object, but has no methods to call. Its proxy is the proxy manager itself, so it
// has no proxy factory.
void dispatchIdentity(void*, uint64_t, uint16_t, ServerCall&) {
  FERRY_FAIL(Errc::noInterface,
             "an object's identity has no methods; query one of the object's interfaces and call "
             "that instead");
}

}  // namespace

InterfaceRegistration::InterfaceRegistration(const InterfaceInfo& info) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto [it, inserted] = r.byIid.emplace(info.iid, info);
  if (!inserted && it->second.dispatch != info.dispatch) {
    // The same schema compiled into two modules of one process: the first registration wins;
    // both were generated from the same IID, so either serves.
    FERRY_LOG(debug, "interface " << info.name << " registered twice; keeping the first");
  }
}

const InterfaceInfo* tryFindInterface(Iid iid) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.byIid.find(iid);
  return it == r.byIid.end() ? nullptr : &it->second;
}

std::string describeInterface(Iid iid) {
  const InterfaceInfo* info = tryFindInterface(iid);
  if (info == nullptr) return "interface " + toString(iid);
  return std::string(info->name) + " (IID " + toString(iid) + ")";
}
std::string describeMethod(Iid iid, uint16_t method) {
  const InterfaceInfo* info = tryFindInterface(iid);
  if (info == nullptr) return "interface " + toString(iid) + " method " + std::to_string(method);
  if (method < info->methodCount && info->methodNames[method] != nullptr) {
    return std::string(info->name) + "." + info->methodNames[method];
  }
  return std::string(info->name) + " method " + std::to_string(method);
}

namespace {
const InterfaceRegistration identityRegistration(
    InterfaceInfo{Interface::iid, Interface::interfaceName, nullptr, &dispatchIdentity,
                  [](void* pointer) noexcept { return static_cast<Interface*>(pointer); },
                  nullptr});
}  // namespace

void unknownMethod(uint64_t interfaceId, uint16_t methodId) {
  FERRY_FAIL(Errc::protocolError,
             "the call names method number {} of {}, which the object's stub does not serve: "
             "the caller and the server were built from different versions of the schema; "
             "build both from the same schema",
             methodId, describeInterface(Iid(interfaceId)));
}

}  // namespace ferry::detail
