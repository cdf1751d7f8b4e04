// The internal API of ferry's tools (core/internal/tool-support.h).
#include "tool-support.h"

#include <ferry/error.h>

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

}  // namespace ferry::internal
