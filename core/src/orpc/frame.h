// ORPC frames: the unit a transport carries between two processes (core/schema/orpc.capnp
// specifies them). A 24-byte header — magic "FRY1", kind, flags, two reserved bytes, the call id
// and the target OXID, little-endian — then a Cap'n Proto message (none for a cancel).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <capnp/message.h>

#include <ferry/ids.h>

#include "../message.h"

namespace ferry::detail::orpc {

constexpr size_t kFrameHeader = 24;

enum class FrameKind : uint8_t {
  request = 1,
  response = 2,
  resolve = 3,
  resolveReply = 4,
  registration = 5,  // to ferryd: an apartment of the sending process
  withdrawal = 6,    // to ferryd: that apartment is gone
  cancel = 7,        // no payload
  ping = 8,          // distributed GC (ping.capnp)
  pingReply = 9,
  bind = 10,         // the bind exchange (orpc/bind.h), before any other frame
  names = 16,         // a named-object request (resolver.capnp NameRequest)
  namesReply = 17,    // its answer (NameReply)
  nameWithdrawal = 18,  // to ferryd: the publisher revokes a name (NameWithdrawal)
  classObject = 19,     // to ferryd: a class object registered or revoked (activation.capnp)
  activation = 20,      // an activation request (ActivationRequest)
  activationReply = 21,  // its answer (ActivationReply)
  adminRegistration = 25,  // to ferryd: the sender's admin object (AdminRegistration)
};

// The kind of a sealed frame (security/record.h): not a FrameKind, since decodeFrame never sees
// one — the bind layer opens it and hands on the frame inside.
constexpr uint8_t kSealedFrameKind = 11;

// Header flags bit 0, requests only: sent before on a connection that was lost.
constexpr uint8_t kFrameFlagResent = 1;

// The largest message a frame carries (16 MiB of payload, DESIGN §3).
constexpr size_t kMaxMessageBytes = 16u * 1024 * 1024;

struct FrameHeader {
  FrameKind kind{};
  uint8_t flags = 0;
  uint64_t callId = 0;
  Oxid oxid;
};

// A frame carrying `message`.
std::vector<uint8_t> encodeFrame(FrameKind kind, uint64_t callId, Oxid oxid,
                                 capnp::MessageBuilder& message);
// A frame without payload (a cancel).
std::vector<uint8_t> encodeBareFrame(FrameKind kind, uint64_t callId);

// The call id of an encoded frame.
uint64_t frameCallId(const std::vector<uint8_t>& frame) noexcept;
// Sets the resent flag of an encoded request frame.
void markResent(std::vector<uint8_t>& frame) noexcept;

// A received frame: its header and, except for a cancel, its message.
struct Frame {
  FrameHeader header;
  std::optional<OrpcMessage> message;
};

// Reads a received frame. Throws protocolError saying what is wrong: shorter than a header, bad
// magic, unknown kind, flags or reserved bytes set where none may be, a payload that is not whole
// words or is too large, a message Cap'n Proto cannot read. The message's reader is bounded
// linearly in its size (traversal and nesting limits).
Frame decodeFrame(const uint8_t* data, size_t size);

}  // namespace ferry::detail::orpc
