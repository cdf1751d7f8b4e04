// The error a resolver reply carries (an ErrorInfo of resolver.capnp or activation.capnp), thrown.
#pragma once

#include <string>

#include <ferry/error.h>

#include "orpc.capnp.h"

namespace ferry::detail {

// Throws Error with the reply's code and message; a code this process does not know, or 0, is
// read as protocolError (orpc.capnp ErrorInfo).
[[noreturn]] inline void throwErrorInfo(wire::ErrorInfo::Reader error) {
  uint16_t code = error.getCode();
  Errc errc = isKnownErrc(code) && code != 0 ? static_cast<Errc>(code) : Errc::protocolError;
  throw Error(errc, std::string(error.getMessage().cStr()));
}

}  // namespace ferry::detail
