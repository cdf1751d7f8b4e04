// ferry: the command-line tool.
//
//   ferry plugins                    the plugins the loader found, and the ones it refused (why)
//   ferry objref <hex>               decodes an OBJREF: kind, IID, OXID, OID, IPID, references,
//                                    flags, host and process, bindings
//   ferry resolve <oxid> <binding>   asks the resolver at <binding> (e.g. tcp:127.0.0.1[7135])
//                                    where exporter <oxid> (hex) listens
//
// Exit status: 0 on success, 1 on failure (the error says what failed), 2 on bad usage.
#include <cstdio>
#include <cstring>
#include <string>

#include <ferry/ferry.h>

#include "runtime-impl.h"
#include "transport-hub.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: ferry plugins\n"
               "       ferry objref <hex>\n"
               "       ferry resolve <oxid-hex> <protseq:address[endpoint]>\n");
  return 2;
}

int plugins() {
  for (const auto& p : ferry::Runtime::plugins()) {
    std::printf("%-9s %-6s %s\n          %s\n", p.kind.c_str(), p.name.c_str(), p.path.c_str(),
                p.description.c_str());
  }
  for (const auto& r : ferry::Runtime::refusedPlugins()) {
    std::printf("refused   %s: %s\n", r.path.c_str(), r.reason.c_str());
  }
  if (ferry::Runtime::plugins().empty()) {
    std::printf("no plugins found (FERRY_PLUGIN_PATH is %s)\n",
                std::getenv("FERRY_PLUGIN_PATH") ? std::getenv("FERRY_PLUGIN_PATH") : "unset");
  }
  return 0;
}

int objref(const std::string& text) {
  ferry::ObjRefInfo d = ferry::decodeObjRef(ferry::objRefFromText(text));
  std::printf("kind        %s\niid         %s\n", std::string(ferry::toString(d.kind)).c_str(),
              ferry::toString(d.iid).c_str());
  if (d.kind == ferry::ObjRefInfo::Kind::custom || d.kind == ferry::ObjRefInfo::Kind::byValue) {
    std::printf("unmarshaler %s\ndata        %zu bytes\n", d.unmarshalerClass.c_str(), d.dataSize);
  }
  if (d.kind != ferry::ObjRefInfo::Kind::standard) return 0;
  std::printf("oxid        %s\noid         %s\nipid        %s\npublicRefs  %u\nflags       %s\n"
              "packetId    %016llx\nprocessId   %llu (pid %llu)\n",
              ferry::toString(d.oxid).c_str(), ferry::toString(d.oid).c_str(),
              ferry::toString(d.ipid).c_str(), d.publicRefs, ferry::toString(d.flags).c_str(),
              static_cast<unsigned long long>(d.packetId),
              static_cast<unsigned long long>(d.processId),
              static_cast<unsigned long long>(d.processId >> 32));
  for (const auto& b : d.bindings) std::printf("binding     %s\n", b.c_str());
  for (const auto& s : d.securityBindings) {
    std::printf("security    %s %s\n", s.provider.c_str(), s.principal.c_str());
  }
  return 0;
}

int resolve(const std::string& oxidText, const std::string& binding) {
  size_t colon = binding.find(':');
  size_t open = binding.rfind('[');
  if (colon == std::string::npos || open == std::string::npos || binding.back() != ']' ||
      open < colon) {
    std::fprintf(stderr, "ferry: '%s' is not a binding like tcp:127.0.0.1[7135]\n", binding.c_str());
    return 2;
  }
  ferry::detail::StringBindingData where{binding.substr(0, colon),
                                         binding.substr(colon + 1, open - colon - 1),
                                         binding.substr(open + 1, binding.size() - open - 2)};
  ferry::Oxid oxid(std::stoull(oxidText, nullptr, 16));
  ferry::RuntimeOptions options;
  options.resolver = "";
  ferry::Runtime runtime(options);
  auto mta = runtime.joinMta();
  ferry::detail::TransportHub* hub = runtime.impl().hub();
  if (hub == nullptr || !hub->hasTransport(where.protseq)) {
    std::fprintf(stderr, "ferry: no '%s' transport is loaded (see `ferry plugins`)\n",
                 where.protseq.c_str());
    return 1;
  }
  ferry::detail::Resolution r = hub->resolve(where, oxid);
  std::printf("oxid        %s\nremUnknown  %s\nprocessId   %llu (pid %llu)\n",
              ferry::toString(r.oxid).c_str(), ferry::toString(r.remUnknown).c_str(),
              static_cast<unsigned long long>(r.processId),
              static_cast<unsigned long long>(r.processId >> 32));
  for (const auto& b : r.bindings) std::printf("binding     %s\n", ferry::detail::bindingText(b).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 2 && std::strcmp(argv[1], "plugins") == 0) return plugins();
    if (argc == 3 && std::strcmp(argv[1], "objref") == 0) return objref(argv[2]);
    if (argc == 4 && std::strcmp(argv[1], "resolve") == 0) return resolve(argv[2], argv[3]);
    return usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferry: %s\n", e.what());
    return 1;
  }
}
