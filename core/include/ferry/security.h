// Security: protection levels, who is calling, and the process's access check (the model is
// DCOM's; core/src/security/README.md tells how it is carried out).
//
// A link between two processes runs at one level, agreed in its bind exchange and applied by the
// record layer to every frame after it: `none` (frames as the transport carries them),
// `integrity` (each frame carries an AEAD tag; its contents stay readable on the wire) or
// `privacy` (encrypted too). The `local` provider's pipe links are at `privacy`: the kernel keeps
// them. Every check compares the level the link actually has, never a claim in a frame.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <ferry/api.h>
#include <ferry/ids.h>

namespace ferry {

// Lowest first; the numbers are the plugin ABI's (ferry_security_level).
enum class SecurityLevel : uint8_t { none = 1, integrity = 2, privacy = 3 };

FERRY_API std::string_view toString(SecurityLevel level) noexcept;

// Who made the call a servant is serving (CoQueryClientBlanket).
struct ClientBlanket {
  // The provider that authenticated the caller ("local", "psk", "tls"), or "" at level none.
  std::string provider;
  // The caller as the provider names it ("uid:1000"; the key id; the certificate's mapped
  // name), or "" when it is anonymous (level none, a TLS client without certificate).
  std::string principal;
  // The level the caller's link has.
  SecurityLevel level = SecurityLevel::none;
};

// What a call from another process is for, as the access check sees it.
struct CallTarget {
  Oxid oxid;         // the apartment
  Ipid ipid;         // the object and interface
  Iid interfaceId;   // the interface that declares the method
  uint16_t methodId = 0;
};

// RuntimeOptions::accessCheck: true lets the call run. Runs on the servant's thread before any
// argument is read; a call it refuses is answered accessDenied and the servant never runs. It
// may not call ferry (no outgoing calls).
using AccessCheck = std::function<bool(const ClientBlanket&, const CallTarget&)>;

// Inside a served call that came from another process: who made it. Null on a thread that is
// not serving such a call (a call from this process's own apartments included).
FERRY_API std::optional<ClientBlanket> clientBlanket();

}  // namespace ferry
