// Named objects and ferry:// references: how a client reaches a server without an OBJREF passed
// by hand.
//
// A server publishes an object under a name on its host (COM's running object table):
//
//     ferry::Publication published = ferry::publish("inventory", inventory);
//
// and a client anywhere binds to it by a reference naming the host:
//
//     auto inventory = ferry::bind<Inventory>("ferry://192.0.2.7/name/inventory");
//
// The syntax of a reference (README "Named objects"):
//
//     ferry://[HOST[:PORT]]/name/NAME
//     ferry://[HOST[:PORT]]/class/CLASS
//
//   HOST   an IPv4 address, an IPv6 address in brackets, or a DNS name (looked up when bound,
//          bounded by the call timeout); empty: this host, through its ferryd's pipe
//   PORT   where the host's resolver listens (tcp and udp); default 7135, ferryd's
//   NAME   1 to 128 characters: segments of [A-Za-z0-9._~-] separated by single '/'
//   CLASS  the same characters: a class to activate on HOST through its ferryd (bind() creates
//          an instance, as createInstance does; ferry/activation.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ferry/api.h>
#include <ferry/ids.h>
#include <ferry/marshal.h>
#include <ferry/object.h>

namespace ferry {

// ferryd's well-known port, tcp and udp.
inline constexpr std::string_view kFerrydPort = "7135";

// A parsed ferry:// reference.
struct FERRY_API ObjectUri {
  enum class Kind : uint8_t { name, klass };

  std::string host;  // as written, without brackets; "" for this host
  std::string port;  // "" for ferryd's well-known port
  Kind kind = Kind::name;
  std::string target;  // the name or the class

  // Throws invalidArgument with a sentence that says what is wrong and shows the syntax.
  static ObjectUri parse(std::string_view text);
  // The reference as text; parse(toString()) gives it back.
  std::string toString() const;

  friend bool operator==(const ObjectUri&, const ObjectUri&) = default;
};

// An object published under a name on this host (publish()). Revokes it when destroyed.
class FERRY_API Publication {
public:
  Publication() = default;
  Publication(Publication&& other) noexcept;
  Publication& operator=(Publication&& other) noexcept;
  Publication(const Publication&) = delete;
  Publication& operator=(const Publication&) = delete;
  ~Publication();

  const std::string& name() const noexcept { return _name; }
  explicit operator bool() const noexcept { return !_objref.empty(); }

  // Withdraws the name (from ferryd too) and releases the marshal that kept the object alive.
  // Idempotent; any thread of a process whose runtime still runs.
  void revoke() noexcept;

private:
  friend FERRY_API Publication publishErased(std::string name, Interface* object, Iid iid);
  Publication(std::string name, ObjRefBytes objref) noexcept
      : _name(std::move(name)), _objref(std::move(objref)) {}

  std::string _name;
  ObjRefBytes _objref;  // the table-strong marshal; empty once revoked
};

// Publishes `object` as interface `iid` under `name`: marshals it table-strong (the object lives
// at least until the publication is revoked) and registers it with this host's ferryd when the
// process registers with one (RuntimeOptions::resolver), which then answers lookups from every
// host. Without a ferryd the process answers lookups for its own names on its own endpoints.
// Throws invalidArgument for a malformed name, nameInUse when this process or (through ferryd)
// another process already published the name. Waits for ferryd's answer (bounded by the call
// timeout); while ferryd is unreachable the name is registered when it is back.
FERRY_API Publication publishErased(std::string name, Interface* object, Iid iid);

template <class I>
Publication publish(std::string name, const Ref<I>& object) {
  return publishErased(std::move(name), static_cast<Interface*>(object.get()), I::iid);
}

namespace detail {
FERRY_API void* bindErased(std::string_view reference, Iid iid);
}

// Resolves a ferry:// reference to a proxy (or, for an object of this process, the object).
// Call it qualified (`ferry::bind<I>(text)`): with a std::string argument an unqualified
// `bind<I>` also finds std::bind.
// A class reference creates a new instance (ferry/activation.h: createInstance with the host).
// Throws invalidArgument for a malformed reference, unavailable when the host cannot be reached
// (its name does not resolve, or nothing answers at its resolver's port), objectNotRegistered
// when nothing is published under the name there, what createInstance throws for a class
// reference, and what unmarshaling the OBJREF throws (noInterface, …).
template <class I>
Ref<I> bind(std::string_view reference) {
  return Ref<I>::adopt(static_cast<I*>(detail::bindErased(reference, I::iid)));
}

// A name published on a host, as listNames() reports it.
struct PublishedName {
  std::string name;
  uint64_t processId = 0;  // the publisher's, as in its OBJREFs (its pid in the high 32 bits)
};

// Every name published on `host` ("" : this host; "HOST[:PORT]" as in a ferry:// reference),
// sorted by name. Throws as bind() does when the host cannot be reached.
FERRY_API std::vector<PublishedName> listNames(std::string_view host = {});

}  // namespace ferry
