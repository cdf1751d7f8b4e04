// Named objects and ferry:// references (ferry/naming.h). The names themselves live in the
// resolver service (resolver/service.h): this process's, and ferryd's registry of its host's.
#include <ferry/naming.h>

#include <netinet/in.h>

#include <algorithm>

#include <uv.h>

#include "activation/service.h"
#include "error-impl.h"
#include "log.h"
#include "objref.h"
#include "orpc/endpoint.h"
#include "resolver/names.h"
#include "runtime-impl.h"
#include "tool-support.h"

namespace ferry {

namespace {

constexpr std::string_view kScheme = "ferry://";
constexpr char kSyntax[] =
    "ferry://[HOST[:PORT]]/name/NAME or ferry://[HOST[:PORT]]/class/CLASS";

bool dnsCharacter(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-';
}

// "HOST[:PORT]" (HOST possibly "[v6]"), as in a reference; fills host and port.
void parseAuthority(std::string_view authority, std::string_view text, ObjectUri& out) {
  std::string_view host = authority;
  std::string_view port;
  bool hasPort = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    FERRY_REQUIRE(close != std::string_view::npos, Errc::invalidArgument,
                  "'{}' opens an IPv6 address with '[' and does not close it with ']'", text);
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    FERRY_REQUIRE(rest.empty() || rest.front() == ':', Errc::invalidArgument,
                  "'{}' has characters after the IPv6 address other than ':PORT'", text);
    hasPort = !rest.empty();
    if (hasPort) port = rest.substr(1);
    unsigned char buffer[16];
    FERRY_REQUIRE(uv_inet_pton(AF_INET6, std::string(host).c_str(), buffer) == 0,
                  Errc::invalidArgument, "'{}' names '{}' in brackets, which is not an IPv6 address",
                  text, host);
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      hasPort = true;
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    FERRY_REQUIRE(host.size() <= 253 && std::all_of(host.begin(), host.end(), dnsCharacter),
                  Errc::invalidArgument,
                  "'{}' names the host '{}', which is neither an address nor a host name (an IPv6 "
                  "address goes in brackets: ferry://[::1]/name/NAME)",
                  text, host);
  }
  if (hasPort) {
    bool digits = !port.empty() && port.size() <= 5 &&
                  std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    FERRY_REQUIRE(digits && std::stoul(std::string(port)) >= 1 && std::stoul(std::string(port)) <= 65535,
                  Errc::invalidArgument, "'{}' names the port '{}'; a port is a number from 1 to 65535",
                  text, port);
    FERRY_REQUIRE(!host.empty(), Errc::invalidArgument,
                  "'{}' names a port without a host; write the host too, or neither for this host",
                  text);
  }
  out.host = host;
  out.port = port;
}

// The resolver bindings to ask about `uri`'s names: ferryd's pipe (or this process) for this
// host, else the host's addresses at the port.
std::vector<detail::StringBindingData> resolversOf(detail::RuntimeImpl& runtime,
                                                   const ObjectUri& uri) {
  if (uri.host.empty()) return {runtime.endpoint()->resolver().ferryd()};
  return runtime.resolversOf(uri.host, uri.port.empty() ? std::string(kFerrydPort) : uri.port);
}

detail::RuntimeImpl& networkedRuntime(const char* what) {
  detail::RuntimeImpl& runtime = detail::currentRuntime();
  FERRY_REQUIRE(runtime.endpoint() != nullptr, Errc::unavailable,
                "cannot {}: this process runs no transport (RuntimeOptions::outOfProcess is "
                "false), so it can neither be reached by nor reach another process",
                what);
  return runtime;
}

// Asks each of `uri`'s resolvers in turn, until one answers; `ask` throws unavailable for one
// that cannot be reached.
template <class Ask>
auto askResolvers(detail::RuntimeImpl& runtime, const ObjectUri& uri, Ask ask) {
  std::string failures;
  for (const detail::StringBindingData& binding : resolversOf(runtime, uri)) {
    try {
      return ask(binding);
    } catch (const Error& e) {
      if (e.code() != Errc::unavailable) throw;
      failures += "; " + e.message();
    }
  }
  if (uri.host.empty()) {
    FERRY_FAIL(Errc::unavailable,
               "cannot reach this host's ferryd{}; start ferryd (or set RuntimeOptions::resolver "
               "to where it listens)",
               failures);
  }
  FERRY_FAIL(Errc::unavailable,
             "cannot reach the resolver of host {} at port {}{}; check that ferryd runs there and "
             "listens on an address this host reaches (ferryd.conf `listen`), and that this "
             "process runs a transport it listens on",
             uri.host, uri.port.empty() ? std::string(kFerrydPort) : uri.port, failures);
}

}  // namespace

ObjectUri ObjectUri::parse(std::string_view text) {
  FERRY_REQUIRE(text.substr(0, kScheme.size()) == kScheme, Errc::invalidArgument,
                "'{}' is not a ferry:// reference; write {}", text, kSyntax);
  std::string_view rest = text.substr(kScheme.size());
  size_t slash = rest.find('/');
  FERRY_REQUIRE(slash != std::string_view::npos, Errc::invalidArgument,
                "'{}' names no object; write {}", text, kSyntax);
  ObjectUri out;
  parseAuthority(rest.substr(0, slash), text, out);
  std::string_view path = rest.substr(slash + 1);
  if (path.substr(0, 5) == "name/") {
    out.kind = Kind::name;
    out.target = path.substr(5);
  } else if (path.substr(0, 6) == "class/") {
    out.kind = Kind::klass;
    out.target = path.substr(6);
  } else {
    FERRY_FAIL(Errc::invalidArgument,
               "'{}' names neither a name nor a class after the host; write {}", text, kSyntax);
  }
  std::string_view why = detail::whyBadObjectName(out.target);
  FERRY_REQUIRE(why.empty(), Errc::invalidArgument, "'{}' names '{}', which is not a valid {}: {}",
                text, out.target, out.kind == Kind::name ? "name" : "class", why);
  return out;
}

std::string ObjectUri::toString() const {
  std::string out(kScheme);
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (!port.empty()) out += ":" + port;
  out += kind == Kind::name ? "/name/" : "/class/";
  return out + target;
}

// ---- publications ------------------------------------------------------------------------------

Publication::Publication(Publication&& other) noexcept
    : _name(std::move(other._name)), _objref(std::move(other._objref)) {
  other._objref.clear();
}

Publication& Publication::operator=(Publication&& other) noexcept {
  if (this != &other) {
    revoke();
    _name = std::move(other._name);
    _objref = std::move(other._objref);
    other._objref.clear();
  }
  return *this;
}

Publication::~Publication() { revoke(); }

void Publication::revoke() noexcept {
  if (_objref.empty()) return;
  ObjRefBytes objref = std::move(_objref);
  _objref.clear();
  detail::RuntimeImpl* runtime = detail::tryCurrentRuntime();
  if (runtime == nullptr || runtime->endpoint() == nullptr) return;  // gone with the runtime
  try {
    runtime->endpoint()->resolver().withdrawName(_name);
    releaseMarshalData(objref);
  } catch (const std::exception& e) {
    FERRY_LOG(warn, "revoking the name '" << _name << "': " << e.what());
  }
}

Publication publishErased(std::string name, Interface* object, Iid iid) {
  std::string_view why = detail::whyBadObjectName(name);
  FERRY_REQUIRE(why.empty(), Errc::invalidArgument,
                "cannot publish an object under the name '{}': {} (a name is 1 to 128 characters: "
                "segments of letters, digits, '.', '_', '~' and '-', separated by single '/')",
                name, why);
  FERRY_REQUIRE(object != nullptr, Errc::invalidArgument,
                "publish needs an object and was given a null pointer for the name '{}'", name);
  detail::RuntimeImpl& runtime = networkedRuntime("publish an object");
  ObjRefBytes objref =
      marshalInterface(object, iid, MarshalContext::differentMachine, MarshalFlags::tableStrong);
  try {
    runtime.endpoint()->resolver().publishName(name, objref);
  } catch (...) {
    releaseMarshalData(objref);
    throw;
  }
  return Publication(std::move(name), std::move(objref));
}

// ---- binding -----------------------------------------------------------------------------------

namespace detail {

ObjRefBytes activateReference(const ObjectUri& uri, Iid iid) {
  RuntimeImpl& runtime = networkedRuntime("activate a class");
  return askResolvers(runtime, uri, [&](const StringBindingData& binding) {
    return runtime.endpoint()->resolver().activation().activate(binding, uri.target, iid);
  });
}

ObjRefBytes lookupReference(std::string_view reference, Iid iid) {
  ObjectUri uri = ObjectUri::parse(reference);
  if (uri.kind == ObjectUri::Kind::klass) return activateReference(uri, iid);
  RuntimeImpl& runtime = networkedRuntime("bind a ferry:// reference");
  return askResolvers(runtime, uri, [&](const StringBindingData& binding) {
    return runtime.endpoint()->resolver().lookupName(binding, uri.target);
  });
}

void* bindErased(std::string_view reference, Iid iid) {
  ObjectUri uri = ObjectUri::parse(reference);
  if (uri.kind == ObjectUri::Kind::klass) return unmarshalActivated(activateReference(uri, iid), iid);
  return unmarshalInterfaceErased(lookupReference(reference, iid), iid);
}

}  // namespace detail

namespace internal {

std::vector<RegisteredProcess> listProcesses(std::string_view host) {
  ObjectUri uri;
  std::string text = std::string(kScheme) + std::string(host) + "/name/any";
  FERRY_REQUIRE(host.find('/') == std::string_view::npos, Errc::invalidArgument,
                "'{}' is not a host; write HOST or HOST:PORT ([ADDRESS]:PORT for IPv6)", host);
  parseAuthority(host, text, uri);
  detail::RuntimeImpl& runtime = networkedRuntime("list a host's processes");
  std::vector<detail::RegisteredProcessEntry> entries =
      askResolvers(runtime, uri, [&](const detail::StringBindingData& binding) {
        return runtime.endpoint()->resolver().listProcesses(binding);
      });
  std::vector<RegisteredProcess> out;
  for (auto& e : entries) out.push_back({e.processId, e.uid, std::move(e.admin), e.adminNetwork});
  return out;
}

}  // namespace internal

std::vector<PublishedName> listNames(std::string_view host) {
  ObjectUri uri;
  std::string text = std::string(kScheme) + std::string(host) + "/name/any";
  FERRY_REQUIRE(host.find('/') == std::string_view::npos, Errc::invalidArgument,
                "'{}' is not a host; write HOST or HOST:PORT ([ADDRESS]:PORT for IPv6)", host);
  parseAuthority(host, text, uri);
  detail::RuntimeImpl& runtime = networkedRuntime("list published names");
  return askResolvers(runtime, uri, [&](const detail::StringBindingData& binding) {
    return runtime.endpoint()->resolver().listNames(binding);
  });
}

}  // namespace ferry
