// The server side of one call: what the generated stub reads params from and writes results to.
#pragma once

#include <ferry/generated.h>
#include <ferry/marshal.h>

#include "message.h"

namespace ferry::detail {

class ServerCallImpl final : public ServerCall {
public:
  ServerCallImpl(wire::Request::Reader request, OutgoingResponse& response,
                 MarshalContext distance)
      : _request(request), _response(response), _distance(distance) {}

  void setResultCap(uint32_t index, Interface* object, Iid iid) override;
  void sealResultCaps() override;

protected:
  capnp::AnyPointer::Reader paramsPointer() const override { return _request.getParams(); }
  void* unmarshalCap(uint32_t index, Iid iid) override;
  capnp::ReaderCapabilityTable& embeddedCaps(uint32_t first) override;
  capnp::AnyPointer::Builder resultsPointer(uint32_t capCount, bool collectCaps) override;

private:
  wire::Request::Reader _request;
  OutgoingResponse& _response;
  MarshalContext _distance;
  // Interface pointers inside the params (held until the call ends) and inside the results
  // (until sealResultCaps()).
  std::unique_ptr<capnp::ReaderCapabilityTable> _embeddedCaps;
  std::unique_ptr<capnp::BuilderCapabilityTable> _collectedCaps;
};

}  // namespace ferry::detail
