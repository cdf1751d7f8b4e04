// libFuzzer target for the parameter decoding of stubs that capnpc-ferry generates: a request
// frame as it arrives (core/src/orpc/frame.h), dispatched as the serving apartment dispatches it,
// to a servant of tests/idl/everything.capnp's Everything (scalars, text, data, lists of
// structs, lists and interfaces, unions, groups, defaults). Whatever the parameters hold, the
// stub either runs the method or fails the call with ferry::Error; a kj::Exception is a
// malformed message, which the apartment answers as a protocol error. Capabilities in the
// parameters cannot be unmarshaled here (no runtime): that fails the call, as it must.
//
// Input: the request frame; its interface id is taken to be Everything's, its method id picks
// the method.
#include <cstdlib>

#include <kj/exception.h>

#include "everything-servants.h"
#include "message.h"
#include "orpc/frame.h"
#include "server-call.h"

using namespace ferry::detail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static everything_test::EverythingImpl* servant = new everything_test::EverythingImpl();
  try {
    orpc::Frame frame = orpc::decodeFrame(data, size);
    if (frame.header.kind != orpc::FrameKind::request) return 0;
    auto request = frame.message->root<ferry::wire::Request>();
    OutgoingResponse response;
    ServerCallImpl call(request, response, ferry::MarshalContext::differentMachine);
    idltest::iface::Everything* object = servant;
    idltest::iface::Everything::_ferryDispatch(object, request.getMethodId(), call);
  } catch (const ferry::Error&) {
    // The call fails with what the stub or the servant said.
  } catch (const kj::Exception&) {
    // A malformed message.
  } catch (const std::exception&) {
    // A servant's own exception (serverFault).
  }
  return 0;
}
