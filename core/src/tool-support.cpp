// The internal API of ferry's tools (core/internal/tool-support.h).
#include "tool-support.h"

#include <deque>
#include <mutex>

#include <ferry/error.h>
#include <ferry/marshal.h>

#include "admin/admin.h"
#include "import-table.h"
#include "interface-registry.h"

#include "objref.h"
#include "orpc/endpoint.h"
#include "plugin-loader.h"
#include "resolver/names.h"
#include "runtime-impl.h"
#include "transport/hub.h"

namespace ferry::internal {

std::string describePluginSearch() { return detail::PluginRegistry::instance().describeSearch(); }

bool isStringBinding(std::string_view text) { return detail::tryParseBinding(text).has_value(); }

ResolvedExporter resolveExporter(std::string_view binding, Oxid oxid) {
  std::optional<detail::StringBindingData> where = detail::tryParseBinding(binding);
  FERRY_REQUIRE(where, Errc::invalidArgument,
                "'{}' is not a string binding: give protseq:address[endpoint], such as "
                "tcp:127.0.0.1[7135]",
                binding);
  detail::TransportHub* hub = detail::currentRuntime().hub();
  FERRY_REQUIRE(hub != nullptr && hub->hasTransport(where->protseq), Errc::unavailable,
                "no '{}' transport is loaded, so the resolver at {} cannot be asked; `ferry "
                "plugins` lists the loaded ones and where the loader looked (FERRY_PLUGIN_PATH)",
                where->protseq, binding);
  detail::Resolution resolution =
      detail::currentRuntime().endpoint()->resolver().resolve(*where, oxid);
  ResolvedExporter out{resolution.oxid, resolution.remUnknown, resolution.processId, {}};
  for (const auto& b : resolution.bindings) out.bindings.push_back(detail::bindingText(b));
  return out;
}

std::vector<uint8_t> lookupReference(std::string_view reference) {
  return detail::lookupReference(reference);
}

std::string ferrydBinding() {
  detail::RuntimeImpl& runtime = detail::currentRuntime();
  if (runtime.endpoint() == nullptr) return "";
  const detail::StringBindingData& ferryd = runtime.endpoint()->resolver().ferryd();
  return ferryd.protseq.empty() ? "" : detail::bindingText(ferryd);
}

std::string adminDirectory() { return detail::admin::directory(); }

namespace {

// The proxy of an interface this program has no generated code for: it takes calls by method
// number only (ProxyBase::newCall).
class DynamicProxy final : public detail::ProxyBase {
public:
  explicit DynamicProxy(const detail::ProxyInit& init) noexcept : ProxyBase(init) {}

protected:
  void* castSelf(Iid id) noexcept override {
    if (id == proxiedIid()) return static_cast<Interface*>(this);
    return Interface::ferryCast(this, id);
  }
};

void refuseDispatch(void*, uint64_t interfaceId, uint16_t, detail::ServerCall&) {
  FERRY_FAIL(Errc::noInterface,
             "{} was registered by a tool for calling only; this process serves no object of it",
             detail::describeInterface(Iid(interfaceId)));
}

// The registrations' names live as long as the registry.
std::mutex gDynamicMutex;
std::deque<std::string> gDynamicNames;

// The Interface of an interface pointer (what queryInterface returned for `iid`).
Ref<Interface> adoptInterface(void* pointer, Iid iid) {
  const detail::InterfaceInfo* info = detail::tryFindInterface(iid);
  FERRY_ASSERT(info != nullptr && info->upcast != nullptr);
  return Ref<Interface>::adopt(info->upcast(pointer));
}

}  // namespace

void registerDynamicInterface(Iid iid, const std::string& name) {
  std::lock_guard lock(gDynamicMutex);
  if (const detail::InterfaceInfo* info = detail::tryFindInterface(iid);
      info != nullptr && info->newProxy != nullptr) {
    return;
  }
  const std::string& stored = gDynamicNames.emplace_back(name);
  detail::InterfaceRegistration registration(detail::InterfaceInfo{
      iid, stored.c_str(),
      [](const detail::ProxyInit& init) -> detail::ProxyBase* { return new DynamicProxy(init); },
      &refuseDispatch,
      [](void* pointer) noexcept { return static_cast<Interface*>(pointer); }, nullptr});
}

Ref<Interface> unmarshalForCalls(std::span<const uint8_t> objref, Iid iid) {
  ObjRefInfo info = decodeObjRef(objref);
  // The proxy made first is for the OBJREF's own interface.
  if (info.kind == ObjRefInfo::Kind::standard && detail::tryFindInterface(info.iid) == nullptr) {
    registerDynamicInterface(info.iid, "interface " + toString(info.iid));
  }
  return adoptInterface(detail::unmarshalInterfaceErased(objref, iid), iid);
}

Ref<Interface> queryForCalls(Interface* object, Iid iid) {
  Iid iids[] = {iid};
  std::vector<void*> found = detail::queryInterfacesErased(object, iids);
  FERRY_REQUIRE(!found.empty() && found[0] != nullptr, Errc::noInterface,
                "the object does not implement {}", detail::describeInterface(iid));
  return adoptInterface(found[0], iid);
}

void pingObject(Interface* proxy) {
  detail::ProxyBase* p = detail::asProxy(proxy);
  FERRY_REQUIRE(p != nullptr, Errc::invalidArgument,
                "pingObject needs a proxy; this object lives in this process");
  std::shared_ptr<detail::ExporterLink> link = p->manager().link();
  link->addRefs(p->ipid(), 1);
  link->release(p->ipid(), 1);
}

}  // namespace ferry::internal
