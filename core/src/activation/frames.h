// The activation frames (core/schema/activation.capnp), encoded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ferry/error.h>
#include <ferry/marshal.h>

namespace ferry::detail::activation {

// Frame kind 19.
std::vector<uint8_t> classObjectFrame(const std::string& clsid, bool singleUse, bool revoke);
// Frame kind 20: an activation, an idle query, an exit request.
std::vector<uint8_t> activateFrame(uint64_t callId, const std::string& clsid, uint64_t iid);
std::vector<uint8_t> idleQueryFrame(uint64_t callId);
std::vector<uint8_t> exitFrame(uint64_t callId);
// Frame kind 21.
std::vector<uint8_t> objrefReplyFrame(uint64_t callId, const ObjRefBytes& objref);
std::vector<uint8_t> idleReplyFrame(uint64_t callId, uint64_t objects);
std::vector<uint8_t> doneReplyFrame(uint64_t callId);
std::vector<uint8_t> errorReplyFrame(uint64_t callId, Errc code, const std::string& message);

}  // namespace ferry::detail::activation
