#include "resolution.h"

#include <cstring>
#include <string>

namespace ferry::detail {

void writeResolution(wire::Resolution::Builder out, const Resolution& r) {
  out.setOxid(r.oxid.value);
  out.initRemUnknown().setHi(r.remUnknown.hi);
  out.getRemUnknown().setLo(r.remUnknown.lo);
  auto list = out.initBindings(static_cast<unsigned>(r.bindings.size()));
  for (size_t i = 0; i < r.bindings.size(); ++i) {
    list[i].setProtseq(r.bindings[i].protseq);
    list[i].setAddress(r.bindings[i].address);
    list[i].setEndpoint(r.bindings[i].endpoint);
  }
  out.setProcessId(r.processId);
  out.setHostId(kj::arrayPtr(r.hostId.data(), r.hostId.size()));
}

Resolution readResolution(wire::Resolution::Reader in) {
  Resolution out;
  out.oxid = Oxid(in.getOxid());
  out.remUnknown = Ipid(in.getRemUnknown().getHi(), in.getRemUnknown().getLo());
  out.processId = in.getProcessId();
  auto host = in.getHostId();
  FERRY_REQUIRE(out.oxid && out.remUnknown && host.size() == 16 &&
                    in.getBindings().size() <= kMaxResolutionBindings,
                Errc::protocolError,
                "the resolver sent an OXID resolution without exporter id, RemUnknown IPID or a "
                "16-byte host id, or with more than 32 bindings; it does not follow the protocol");
  std::memcpy(out.hostId.data(), host.begin(), 16);
  for (auto b : in.getBindings()) {
    out.bindings.push_back({std::string(b.getProtseq().cStr()), std::string(b.getAddress().cStr()),
                            std::string(b.getEndpoint().cStr())});
  }
  return out;
}

}  // namespace ferry::detail
