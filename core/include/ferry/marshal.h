// Marshaling interface pointers: COM's CoMarshalInterface / CoUnmarshalInterface contract.
//
// marshalInterface writes an OBJREF (core/schema/objref.capnp): a byte string naming the object,
// the interface and the apartment the object lives in — never the object's state. Marshal in the
// apartment that holds the pointer (the object's own apartment, or the apartment owning a proxy,
// which marshals the original object, never a proxy of a proxy).
//
// unmarshalInterface, in any apartment, returns:
//   * the real object, when the caller is in the object's apartment;
//   * otherwise a proxy. Unmarshaling the same object twice in one apartment gives proxies with the
//     same identity (one proxy manager per apartment and object).
//
// Flags (COM's MSHLFLAGS):
//   normal       the packet may be unmarshaled once; a successful unmarshal consumes it, a second
//                one fails with objectNotConnected. A packet never unmarshaled must be given to
//                releaseMarshalData, or the references it carries keep the object alive.
//   tableStrong  unmarshal any number of times; the packet keeps the object alive until
//                releaseMarshalData.
//   tableWeak    unmarshal any number of times while the object lives; the packet does not keep
//                it alive (but an object with the ExternalConnection hook lives until the packet
//                is released); after the object died unmarshal fails with objectNotRegistered.
//                As in COM, a copy of the bytes still unmarshals after releaseMarshalData while
//                the object is exported.
//
// Any interface may be marshaled, the object's identity (Interface::iid) included: an identity
// packet names the object and, unmarshaled, gives its identity holding references like any
// interface proxy.
//   noPing       (combinable) the object is exempt from distributed garbage collection.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ferry/api.h>
#include <ferry/object.h>
#include <ferry/security.h>

namespace ferry {

// How far the importer is from the exporter; decides the channel and marshaler choices.
enum class MarshalContext : uint8_t { inproc, local, noSharedMemory, differentMachine };

FERRY_API std::string_view toString(MarshalContext context) noexcept;

enum class MarshalFlags : uint8_t {
  normal = 0,
  tableStrong = 1,
  tableWeak = 2,
  noPing = 4,
};

constexpr MarshalFlags operator|(MarshalFlags a, MarshalFlags b) noexcept {
  return static_cast<MarshalFlags>(static_cast<uint8_t>(a) | static_cast<uint8_t>(b));
}
constexpr bool hasFlag(MarshalFlags set, MarshalFlags flag) noexcept {
  return (static_cast<uint8_t>(set) & static_cast<uint8_t>(flag)) != 0;
}

using ObjRefBytes = std::vector<uint8_t>;

// An object that marshals itself (COM's IMarshal), implemented as a second base class beside
// Implements<…>. Custom packets name an unmarshaler class registered in the importing process
// (Runtime::registerUnmarshaler), which turns the bytes back into an object there.
class FERRY_API CustomMarshaler {
public:
  struct Packet {
    std::string unmarshalerClass;
    std::vector<uint8_t> data;
    // By value: the packet carries the object's state and no reference to it remains; the
    // importer gets a fresh object of its own. Otherwise the packet is a custom reference whose
    // lifetime the marshaler manages (releaseCustom).
    bool byValue = false;
  };

  // Called by marshalInterface in the object's apartment. Return nullopt to be marshaled the
  // standard way (e.g. only marshal by value for some contexts).
  virtual std::optional<Packet> marshalCustom(Iid iid, MarshalContext context,
                                              MarshalFlags flags) = 0;

protected:
  ~CustomMarshaler() = default;
};

// Throws: invalidArgument (null object, tableStrong|tableWeak together), noInterface (the object
// lacks `iid`, or no proxy/stub is registered for it), notInitialized, wrongApartment (a proxy
// marshaled outside its apartment).
FERRY_API ObjRefBytes marshalInterface(Interface* object, Iid iid,
                                       MarshalContext context = MarshalContext::inproc,
                                       MarshalFlags flags = MarshalFlags::normal);

template <InterfaceType I>
ObjRefBytes marshalInterface(const Ref<I>& object, MarshalContext context = MarshalContext::inproc,
                             MarshalFlags flags = MarshalFlags::normal) {
  return marshalInterface(static_cast<Interface*>(object.get()), I::iid, context, flags);
}

namespace detail {
FERRY_API void* unmarshalInterfaceErased(std::span<const uint8_t> objref, Iid iid);
}

// Throws: invalidObjRef (malformed bytes: nothing changes), objectNotConnected (a consumed
// normal packet), objectNotRegistered (tableWeak, object gone), noInterface (the object lacks I;
// a normal packet is consumed all the same), disconnected/unavailable (exporter gone).
template <InterfaceType I>
Ref<I> unmarshalInterface(std::span<const uint8_t> objref) {
  return Ref<I>::adopt(static_cast<I*>(detail::unmarshalInterfaceErased(objref, I::iid)));
}

// An OBJREF as text (lower-case hex) and back, for passing it through files, pipes or command
// lines. objRefFromText throws invalidObjRef for text that is not an even number of hex digits;
// the bytes are validated when unmarshaled.
FERRY_API std::string objRefToText(const ObjRefBytes& objref);
FERRY_API ObjRefBytes objRefFromText(std::string_view text);

// The fields of an OBJREF (core/schema/objref.capnp), as `ferry objref` prints them. A
// diagnostic: it names the object and its apartment, and holds no reference.
struct ObjRefInfo {
  enum class Kind : uint8_t { null, standard, custom, byValue };
  struct SecurityBinding {
    std::string provider;
    std::string principal;
  };

  Kind kind = Kind::null;
  Iid iid;  // Interface::iid for an object's identity
  // standard
  Oxid oxid;              // the exporter's apartment
  Oid oid;                // the object
  Ipid ipid;              // the interface stub
  uint32_t publicRefs = 0;  // references the packet carries to its importer
  MarshalFlags flags = MarshalFlags::normal;
  uint64_t packetId = 0;  // the exporter's record of the packet; 0: a proxy's onward packet
  std::array<uint8_t, 16> hostId{};
  uint64_t processId = 0;  // the exporter process's id (its pid in the high 32 bits)
  std::vector<std::string> bindings;  // "tcp:127.0.0.1[40211]", cheapest first
  std::vector<SecurityBinding> securityBindings;
  // custom, byValue
  std::string unmarshalerClass;
  size_t dataSize = 0;
};

FERRY_API std::string_view toString(ObjRefInfo::Kind kind) noexcept;
// "normal", "tableStrong" or "tableWeak", then " noPing" when set.
FERRY_API std::string toString(MarshalFlags flags);

// Validates and decodes an OBJREF without unmarshaling it (no apartment needed). Throws
// invalidObjRef for bytes that are not a valid OBJREF.
FERRY_API ObjRefInfo decodeObjRef(std::span<const uint8_t> objref);

// Whether `object` is a proxy (an interface proxy or a proxy's identity) rather than a real
// object. False for null.
FERRY_API bool isProxy(Interface* object) noexcept;

template <typename I>
bool isProxy(const Ref<I>& object) noexcept {
  return isProxy(static_cast<Interface*>(object.get()));
}

// How calls through `object` travel: "direct" for a real object, "inproc" for a proxy to another
// apartment of this process, else the binding in use, e.g. "pipe:/run/user/0/ferry[ferry-1-1]"
// or "tcp:127.0.0.1[40211]".
FERRY_API std::string transportOf(Interface* object);

// Routes a proxy's later calls through another transport ("pipe", "tcp", "udp"), overriding the
// distance rule for this proxy only. In the proxy's apartment. Throws invalidArgument for a real
// object or an in-process proxy asked to leave the process, unavailable when the exporter has no
// usable binding of that transport.
FERRY_API void setTransport(Interface* proxy, const std::string& protseq);

// A proxy's blanket (DCOM's CoSetProxyBlanket): its later calls go over a connection of at
// least `least` — another connection to the same exporter than the process's own, whose bind
// exchange asks for that level; the server may raise it, never lower it, and a server that
// cannot give it refuses (the calls fail unavailable). The process's RuntimeOptions::minimumLevel
// still applies; `none` goes back to it. In the proxy's apartment; throws invalidArgument for a
// real object or an in-process proxy.
FERRY_API void setProxyBlanket(Interface* proxy, SecurityLevel least);
// The level a proxy asks for (CoQueryProxyBlanket): what setProxyBlanket set, none by default.
FERRY_API SecurityLevel queryProxyBlanket(Interface* proxy);

// Releases the references a packet holds: a normal packet never unmarshaled, or a table packet.
// Throws objectNotConnected for a packet already consumed or released.
FERRY_API void releaseMarshalData(std::span<const uint8_t> objref);

}  // namespace ferry
