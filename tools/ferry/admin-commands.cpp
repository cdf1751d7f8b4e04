#include "admin-commands.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>

#include <capnp/compat/json.h>
#include <capnp/dynamic.h>
#include <capnp/schema-loader.h>
#include <capnp/schema-parser.h>
#include <capnp/serialize.h>
#include <kj/filesystem.h>

#include <ferry/ferry.h>
#include <ferry/generated.h>

#include "admin.capnp.h"
#include "tool-support.h"

namespace ferry::tools {

namespace {

using Clock = std::chrono::steady_clock;

// The runtime the commands call through: it publishes no admin object of its own (so `ferry ps`
// does not list itself) and finds this host's ferryd as every process does.
RuntimeOptions toolOptions() {
  RuntimeOptions options;
  options.admin = RuntimeOptions::Admin::off;
  return options;
}

std::optional<uint64_t> parseNumber(std::string_view text, int base) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

std::string readLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

bool processAlive(uint64_t pid) {
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string adminFile(uint64_t pid) { return internal::adminDirectory() + "/" + std::to_string(pid); }

// The OBJREF of process `pid`'s admin object, from its file.
ObjRefBytes adminObjRef(uint64_t pid) {
  std::string text = readLine(adminFile(pid));
  FERRY_REQUIRE(!text.empty() && processAlive(pid), Errc::objectNotRegistered,
                "process {} publishes no admin object in {}: it is not running, belongs to "
                "another user, runs no transport, or set RuntimeOptions::admin to off; `ferry ps` "
                "lists the processes that do",
                pid, internal::adminDirectory());
  return objRefFromText(text);
}

// JSON text of a string, as capnp's codec writes it.
std::string jsonString(const std::string& text) {
  capnp::JsonCodec codec;
  kj::String out = codec.encode(capnp::DynamicValue::Reader(capnp::Text::Reader(text.c_str())),
                                capnp::Type(capnp::schema::Type::TEXT));
  return std::string(out.cStr());
}

// ---- calls by method number -------------------------------------------------------------------

// A method of an interface, as the schema describes it.
struct MethodRef {
  capnp::InterfaceSchema::Method method;
  Iid iid;  // the interface that declares it
  uint16_t ordinal() const { return method.getOrdinal(); }
};

MethodRef methodOf(capnp::InterfaceSchema schema, kj::StringPtr name) {
  KJ_IF_MAYBE(method, schema.findMethodByName(name)) {
    return MethodRef{*method, Iid(method->getContainingInterface().getProto().getId())};
  }
  FERRY_FAIL(Errc::invalidArgument, "interface {} has no method '{}'",
             schema.getProto().getDisplayName().cStr(), name.cStr());
}

// The top-level interface-typed fields of a params or results struct: in ferry's convention
// they travel as the message's capabilities, numbered in this order (ferry/generated.h).
std::vector<capnp::StructSchema::Field> interfaceFields(capnp::StructSchema schema) {
  std::vector<capnp::StructSchema::Field> out;
  for (auto field : schema.getFields()) {
    if (field.getType().isInterface()) out.push_back(field);
  }
  return out;
}

// Sends one call and waits for its response. `fill` writes the params.
detail::ClientResponse send(Interface* object, const MethodRef& method,
                            const std::function<void(detail::ClientCall&)>& fill) {
  detail::ProxyBase* proxy = detail::asProxy(object);
  FERRY_REQUIRE(proxy != nullptr, Errc::invalidArgument,
                "the target is an object of this process, not a proxy");
  uint32_t capCount = static_cast<uint32_t>(interfaceFields(method.method.getParamType()).size());
  detail::ClientCall call = proxy->newCall(method.iid.value, method.ordinal(), capCount);
  fill(call);
  return call.send();
}

// ---- the admin object --------------------------------------------------------------------------

capnp::InterfaceSchema adminSchema() { return capnp::Schema::from<wire::Admin>(); }
Iid adminIid() { return Iid(capnp::typeId<wire::Admin>()); }

// A process's admin object, ready for calls.
class AdminClient {
public:
  explicit AdminClient(uint64_t pid) : AdminClient(pid, adminObjRef(pid)) {}
  AdminClient(uint64_t pid, const ObjRefBytes& objref)
      : _pid(pid), _object(internal::unmarshalForCalls(objref, adminIid())) {}

  uint64_t pid() const { return _pid; }

  detail::ClientResponse describe() { return call("describe", [](detail::ClientCall&) {}); }
  detail::ClientResponse health() { return call("health", [](detail::ClientCall&) {}); }

  std::vector<std::vector<uint8_t>> schema(Iid iid) {
    detail::ClientResponse response = call("schema", [iid](detail::ClientCall& c) {
      c.initParams<wire::Admin::SchemaParams>().setIid(iid.value);
    });
    std::vector<std::vector<uint8_t>> nodes;
    for (capnp::Data::Reader node : response.results<wire::Admin::SchemaResults>().getNodes()) {
      nodes.emplace_back(node.begin(), node.end());
    }
    return nodes;
  }

  ObjRefBytes object(Oid oid) {
    detail::ClientResponse response = call("object", [oid](detail::ClientCall& c) {
      auto params = c.initParams<wire::Admin::ObjectParams>();
      params.setOid(oid.value);
      params.setIid(0);
    });
    capnp::Data::Reader objref = response.results<wire::Admin::ObjectResults>().getObjref();
    return ObjRefBytes(objref.begin(), objref.end());
  }

private:
  detail::ClientResponse call(kj::StringPtr method,
                              const std::function<void(detail::ClientCall&)>& fill) {
    return send(_object.get(), methodOf(adminSchema(), method), fill);
  }

  uint64_t _pid;
  Ref<Interface> _object;
};

// ---- targets ----------------------------------------------------------------------------------

struct Target {
  ObjRefBytes objref;
  std::optional<uint64_t> pid;  // a process of this host whose admin object can be asked
  bool processOnly = false;     // the target is the process itself (<pid>)
};

Target resolveTarget(const std::string& text) {
  Target target;
  if (auto pid = parseNumber(text, 10)) {
    target.pid = *pid;
    target.processOnly = true;
    target.objref = adminObjRef(*pid);
    return target;
  }
  if (size_t slash = text.find('/'); slash != std::string::npos && text.rfind("ferry:", 0) != 0) {
    auto pid = parseNumber(std::string_view(text).substr(0, slash), 10);
    auto oid = parseNumber(std::string_view(text).substr(slash + 1), 16);
    FERRY_REQUIRE(pid && oid, Errc::invalidArgument,
                  "'{}' is not <pid>/<oid>: give a process id and an OID in hex, as `ferry ls` "
                  "prints them",
                  text);
    target.pid = *pid;
    target.objref = AdminClient(*pid).object(Oid(*oid));
    return target;
  }
  if (text.rfind("ferry://", 0) == 0) {
    target.objref = internal::lookupReference(text);
  } else {
    target.objref = objRefFromText(text);
  }
  ObjRefInfo info = decodeObjRef(target.objref);
  FERRY_REQUIRE(info.kind == ObjRefInfo::Kind::standard, Errc::invalidArgument,
                "the target is a {} OBJREF; only standard OBJREFs can be called from the shell",
                toString(info.kind));
  // The exporter's admin object, when it is a process of this host that publishes one: the file
  // of the same pid must name the same process (another host's pid may be a local one's too).
  uint64_t pid = info.processId >> 32;
  std::string admin = processAlive(pid) ? readLine(adminFile(pid)) : "";
  try {
    if (!admin.empty() && decodeObjRef(objRefFromText(admin)).processId == info.processId) {
      target.pid = pid;
    }
  } catch (const Error&) {
    // A file being replaced: no reflection through it.
  }
  return target;
}

// ---- printing ----------------------------------------------------------------------------------

std::string interfaceText(wire::InterfaceName::Reader name) {
  std::string text = name.getName().size() > 0 ? std::string(name.getName().cStr()) : "?";
  return text + " (IID " + toString(Iid(name.getIid())) + ")";
}

void printTree(wire::Process::Reader p) {
  std::printf("process %u (%s): %s%s%s\n", p.getPid(), p.getName().cStr(),
              p.getServing() ? "serving" : "NOT SERVING", p.getServingReason().size() ? ": " : "",
              p.getServingReason().cStr());
  for (auto b : p.getBindings()) std::printf("  binding %s\n", b.cStr());
  std::printf("  calls in flight %u, served calls kept %u\n", p.getCallsInFlight(),
              p.getServedCallsKept());
  for (auto a : p.getApartments()) {
    std::printf("  apartment %s%s%s oxid %s, %u thread(s), %u queued\n", a.getKind().cStr(),
                a.getName().size() ? " " : "", a.getName().cStr(),
                toString(Oxid(a.getOxid())).c_str(), a.getThreads(), a.getQueueDepth());
    for (auto o : a.getObjects()) {
      std::printf("    object %s %s: %u strong reference(s), %u weak entr(ies), %u in transit, "
                  "%u table entr(ies)%s\n",
                  toString(Oid(o.getOid())).c_str(), o.getClassName().cStr(), o.getStrongRefs(),
                  o.getWeakEntries(), o.getTransitRefs(), o.getTableEntries(),
                  o.getNoPing() ? ", not pinged" : "");
      for (auto i : o.getInterfaces()) std::printf("      interface %s\n", interfaceText(i).c_str());
      for (auto c : o.getClients()) {
        if (c.getProcess() == 0) {
          std::printf("      held by this process's apartments: %u reference(s)\n",
                      c.getReferences());
        } else {
          std::printf("      held by pid %llu: %u reference(s)\n",
                      static_cast<unsigned long long>(c.getProcess() >> 32), c.getReferences());
        }
      }
    }
    for (auto x : a.getProxies()) {
      std::printf("    proxy of oxid %s oid %s: %u cached reference(s)%s\n",
                  toString(Oxid(x.getOxid())).c_str(), toString(Oid(x.getOid())).c_str(),
                  x.getPublicRefs(), x.getDisconnected() ? ", disconnected" : "");
      for (auto i : x.getInterfaces()) std::printf("      interface %s\n", interfaceText(i).c_str());
    }
  }
  for (auto c : p.getConnections()) {
    std::printf("  connection %s %s %s", c.getProtseq().cStr(), c.getOutbound() ? "to" : "from",
                c.getPeer().cStr());
    if (c.getPeerPid() != 0) std::printf(" (pid %d, uid %u)", c.getPeerPid(), c.getPeerUid());
    std::printf(", level %s", c.getLevel().cStr());
    if (c.getProvider().size() > 0) {
      std::printf(" by %s as '%s'", c.getProvider().cStr(), c.getPrincipal().cStr());
    }
    if (c.getCallerProcess() != 0) {
      std::printf(", requests of pid %llu",
                  static_cast<unsigned long long>(c.getCallerProcess() >> 32));
    }
    std::printf("\n    sent %llu message(s), %llu byte(s); received %llu message(s), %llu "
                "byte(s); %u call(s) in flight\n",
                static_cast<unsigned long long>(c.getMessagesSent()),
                static_cast<unsigned long long>(c.getBytesSent()),
                static_cast<unsigned long long>(c.getMessagesReceived()),
                static_cast<unsigned long long>(c.getBytesReceived()), c.getCallsInFlight());
    if (c.getRttMicros() != 0) {
      std::printf("    rtt %llu us (deviation %llu us), %llu packet(s) lost, %llu byte(s) sent "
                  "again\n",
                  static_cast<unsigned long long>(c.getRttMicros()),
                  static_cast<unsigned long long>(c.getRttVarMicros()),
                  static_cast<unsigned long long>(c.getPacketsLost()),
                  static_cast<unsigned long long>(c.getBytesRetransmitted()));
    }
  }
  for (auto t : p.getTransports()) {
    std::printf("  transport %s\n", t.getProtseq().cStr());
    for (auto c : t.getCounters()) {
      std::printf("    %-32s %lld\n", c.getName().cStr(), static_cast<long long>(c.getValue()));
    }
  }
  for (auto g : p.getPlugins()) {
    std::printf("  plugin %s %s %s\n", g.getKind().cStr(), g.getName().cStr(), g.getPath().cStr());
  }
  std::printf("  counters\n");
  for (auto c : p.getCounters()) {
    std::printf("    %-32s %lld\n", c.getName().cStr(), static_cast<long long>(c.getValue()));
  }
  auto bounds = p.getLatencyBoundsMicros();
  for (auto m : p.getMethods()) {
    std::string name = m.getIface().getName().size() ? m.getIface().getName().cStr()
                                                     : toString(Iid(m.getIface().getIid()));
    name += "." + (m.getMethodName().size() ? std::string(m.getMethodName().cStr())
                                            : "#" + std::to_string(m.getMethod()));
    std::printf("  method %s: %llu call(s), %llu error(s); latency", name.c_str(),
                static_cast<unsigned long long>(m.getCalls()),
                static_cast<unsigned long long>(m.getErrors()));
    auto latency = m.getLatency();
    for (unsigned k = 0; k < latency.size(); ++k) {
      if (latency[k] == 0) continue;
      if (k < bounds.size()) {
        std::printf(" <=%lluus:%llu", static_cast<unsigned long long>(bounds[k]),
                    static_cast<unsigned long long>(latency[k]));
      } else {
        std::printf(" more:%llu", static_cast<unsigned long long>(latency[k]));
      }
    }
    std::printf("\n");
  }
}

// ---- schemas for `ferry call` -----------------------------------------------------------------

// The interfaces a schema source declares, by their names.
class Schemas {
public:
  // By reflection: what process `pid` answers for `iid`.
  void loadFrom(AdminClient& admin, Iid iid) {
    for (const auto& bytes : admin.schema(iid)) {
      kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
      std::memcpy(words.begin(), bytes.data(), words.size() * sizeof(capnp::word));
      capnp::FlatArrayMessageReader reader(words);
      _loader.load(reader.getRoot<capnp::schema::Node>());
    }
    for (capnp::Schema s : _loader.getAllLoaded()) {
      if (s.getProto().isInterface()) add(s.asInterface());
    }
  }

  // A .capnp file.
  void parse(const std::string& file, const std::vector<std::string>& importPaths) {
    _fs = kj::newDiskFilesystem();
    std::vector<kj::Own<const kj::ReadableDirectory>> dirs;
    kj::Vector<const kj::ReadableDirectory*> imports;
    std::vector<std::string> paths = importPaths;
    paths.push_back("/usr/include");
    paths.push_back("/usr/local/include");
    for (const std::string& p : paths) {
      try {
        dirs.push_back(_fs->getRoot().openSubdir(_fs->getCurrentPath().evalNative(p)));
        imports.add(dirs.back().get());
      } catch (const kj::Exception&) {
        // An import path that does not exist adds nothing.
      }
    }
    auto path = _fs->getCurrentPath().evalNative(file);
    capnp::ParsedSchema parsed =
        _parser.parseFromDirectory(_fs->getRoot(), path.clone(), imports.asPtr());
    _importDirs = std::move(dirs);
    addNested(parsed);
  }

  capnp::InterfaceSchema find(const std::string& name) const {
    std::vector<std::string> known;
    for (const auto& [key, schema] : _byName) {
      if (key == name) return schema;
      known.push_back(key);
    }
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    FERRY_FAIL(Errc::invalidArgument, "no interface '{}' in the schema; it declares: {}", name,
               list.empty() ? std::string("none") : list);
  }

private:
  void add(capnp::InterfaceSchema schema) {
    std::string display = schema.getProto().getDisplayName().cStr();
    size_t colon = display.find(':');
    _byName.emplace(colon == std::string::npos ? display : display.substr(colon + 1), schema);
  }

  void addNested(capnp::ParsedSchema parsed) {
    for (capnp::ParsedSchema nested : parsed.getAllNested()) {
      if (nested.getProto().isInterface()) add(nested.asInterface());
      addNested(nested);
    }
  }

  capnp::SchemaLoader _loader;
  kj::Own<kj::Filesystem> _fs;
  std::vector<kj::Own<const kj::ReadableDirectory>> _importDirs;
  capnp::SchemaParser _parser;
  std::map<std::string, capnp::InterfaceSchema> _byName;
};

// The interface-typed params, given as OBJREF text in the JSON, leave the object before the
// codec reads it: they travel as capabilities.
struct Arguments {
  kj::Own<capnp::MallocMessageBuilder> message = kj::heap<capnp::MallocMessageBuilder>();
  std::map<std::string, std::string> objrefs;  // field name → OBJREF text
};

Arguments parseArguments(const std::string& json, capnp::StructSchema params) {
  capnp::JsonCodec codec;
  capnp::MallocMessageBuilder raw;
  auto value = raw.initRoot<capnp::JsonValue>();
  try {
    codec.decodeRaw(kj::ArrayPtr<const char>(json.data(), json.size()), value);
  } catch (const kj::Exception& e) {
    FERRY_FAIL(Errc::invalidArgument, "the arguments are not valid JSON ({}): give an object such "
               "as '{\"a\": 1}'",
               e.getDescription().cStr());
  }
  FERRY_REQUIRE(value.isObject(), Errc::invalidArgument,
                "the arguments must be a JSON object naming the parameters, such as '{\"a\": 1}'");
  std::string names;
  for (auto field : params.getFields()) {
    names += (names.empty() ? "" : ", ") + std::string(field.getProto().getName().cStr());
  }
  Arguments out;
  std::vector<capnp::JsonValue::Field::Reader> kept;
  for (auto field : value.getObject()) {
    KJ_IF_MAYBE(schemaField, params.findFieldByName(field.getName())) {
      if (schemaField->getType().isInterface()) {
        FERRY_REQUIRE(field.getValue().isString(), Errc::invalidArgument,
                      "parameter '{}' is an interface: give an OBJREF's text (as `ferry call` "
                      "prints an interface it returns) as a JSON string",
                      field.getName().cStr());
        out.objrefs[field.getName().cStr()] = field.getValue().getString().cStr();
        continue;
      }
      kept.push_back(field);
    } else {
      FERRY_FAIL(Errc::invalidArgument, "the method has no parameter '{}'; its parameters: {}",
                 field.getName().cStr(), names.empty() ? std::string("none") : names);
    }
  }
  auto filtered = out.message->initRoot<capnp::JsonValue>();
  auto fields = filtered.initObject(static_cast<unsigned>(kept.size()));
  for (unsigned i = 0; i < kept.size(); ++i) {
    fields[i].setName(kept[i].getName());
    fields[i].setValue(kept[i].getValue());
  }
  return out;
}

void registerInterfacesOf(capnp::StructSchema schema) {
  for (auto field : interfaceFields(schema)) {
    auto iface = field.getType().asInterface();
    internal::registerDynamicInterface(Iid(iface.getProto().getId()),
                                       iface.getProto().getDisplayName().cStr());
  }
}

}  // namespace

bool isProcess(const std::string& text) {
  size_t slash = text.rfind('/');
  if (slash == std::string::npos) return parseNumber(text, 10).has_value();
  return slash > 0 && parseNumber(std::string_view(text).substr(slash + 1), 10).has_value();
}

bool isTarget(const std::string& text) {
  return !text.empty();  // resolveTarget says what is wrong with one it cannot use
}

namespace {

// A process `ferry ps` lists.
struct Listed {
  uint64_t pid = 0;
  std::string name;                   // "" where unknown (another host)
  std::optional<uint32_t> uid;        // as ferryd knows it
  std::string admin;                  // its admin object's OBJREF text; "" when not shown
  std::vector<std::string> bindings;  // its admin object's
};

std::string commOf(uint64_t pid) { return readLine("/proc/" + std::to_string(pid) + "/comm"); }

// This user's processes whose admin file is in the runtime directory.
std::vector<Listed> fromRuntimeDirectory() {
  std::vector<uint64_t> pids;
  if (DIR* d = ::opendir(internal::adminDirectory().c_str())) {
    while (dirent* entry = ::readdir(d)) {
      if (auto pid = parseNumber(entry->d_name, 10); pid && processAlive(*pid)) pids.push_back(*pid);
    }
    ::closedir(d);
  }
  std::sort(pids.begin(), pids.end());
  std::vector<Listed> out;
  for (uint64_t pid : pids) {
    Listed l;
    l.pid = pid;
    l.name = commOf(pid);
    l.admin = readLine(adminFile(pid));
    try {
      l.bindings = decodeObjRef(objRefFromText(l.admin)).bindings;
    } catch (const Error&) {
      continue;  // a file being replaced
    }
    out.push_back(std::move(l));
  }
  return out;
}

// The processes registered with the ferryd of `host` ("": this host's).
std::vector<Listed> fromFerryd(const std::string& host) {
  std::vector<Listed> out;
  for (const internal::RegisteredProcess& p : internal::listProcesses(host)) {
    Listed l;
    l.pid = p.processId >> 32;
    if (host.empty()) l.name = commOf(l.pid);
    l.uid = p.uid;
    if (!p.admin.empty()) {
      try {
        l.bindings = decodeObjRef(p.admin).bindings;
        l.admin = objRefToText(p.admin);
      } catch (const Error&) {
        // Not an OBJREF this tool reads: listed without its admin object.
      }
    }
    out.push_back(std::move(l));
  }
  return out;
}

// The admin object of process `pid` on `host`, as that host's ferryd gives it to this process.
ObjRefBytes remoteAdmin(const std::string& host, uint64_t pid) {
  for (const internal::RegisteredProcess& p : internal::listProcesses(host)) {
    if (p.processId >> 32 != pid) continue;
    FERRY_REQUIRE(!p.admin.empty(), Errc::accessDenied,
                  "access denied: process {} on {} serves its admin object to its own host only "
                  "(or has none); set its RuntimeOptions::admin to network to serve other hosts",
                  pid, host);
    return ObjRefBytes(p.admin.begin(), p.admin.end());
  }
  FERRY_FAIL(Errc::objectNotRegistered,
             "no process {} is registered with the ferryd of {}; `ferry ps {}` lists those that "
             "are",
             pid, host, host);
}

}  // namespace

int ps(const std::string& host, bool json) {
  Runtime runtime(toolOptions());
  auto mta = runtime.joinMta();
  std::vector<Listed> listed;
  std::string source;
  if (!host.empty()) {
    listed = fromFerryd(host);
    source = "the ferryd of " + host;
  } else {
    std::string ferryd = internal::ferrydBinding();
    std::string why = "this process registers with no ferryd";
    if (!ferryd.empty()) {
      try {
        listed = fromFerryd("");
        source = "ferryd at " + ferryd;
      } catch (const Error& e) {
        if (e.code() != Errc::unavailable) throw;
        why = e.message();
      }
    }
    if (source.empty()) {
      listed = fromRuntimeDirectory();
      source = "the runtime directory " + internal::adminDirectory() + " (" + why + ")";
    }
  }
  if (json) {
    std::printf("{\"source\":%s,\"processes\":[", jsonString(source).c_str());
    bool first = true;
    for (const Listed& l : listed) {
      std::string list;
      for (const auto& b : l.bindings) list += (list.empty() ? "" : ",") + jsonString(b);
      std::string uid = l.uid ? ",\"uid\":" + std::to_string(*l.uid) : "";
      std::printf("%s{\"pid\":%llu,\"name\":%s%s,\"admin\":%s,\"bindings\":[%s]}",
                  first ? "" : ",", static_cast<unsigned long long>(l.pid),
                  jsonString(l.name).c_str(), uid.c_str(), jsonString(l.admin).c_str(),
                  list.c_str());
      first = false;
    }
    std::printf("]}\n");
    return 0;
  }
  std::printf("from %s:\n", source.c_str());
  for (const Listed& l : listed) {
    std::string list;
    for (const auto& b : l.bindings) list += (list.empty() ? "" : " ") + b;
    if (l.admin.empty()) list = "(no admin object this user may call)";
    std::string uid = l.uid ? "uid " + std::to_string(*l.uid) : "";
    std::printf("%-8llu %-16s %-10s %s\n", static_cast<unsigned long long>(l.pid),
                l.name.empty() ? "-" : l.name.c_str(), uid.c_str(), list.c_str());
  }
  if (listed.empty()) std::printf("no ferry process is listed there\n");
  return 0;
}

int ls(const std::string& process, bool json) {
  size_t slash = process.rfind('/');
  std::string host = slash == std::string::npos ? "" : process.substr(0, slash);
  auto pid = parseNumber(slash == std::string::npos ? process : process.substr(slash + 1), 10);
  FERRY_REQUIRE(pid.has_value() && (slash == std::string::npos || !host.empty()),
                Errc::invalidArgument,
                "'{}' is not a process: give a pid `ferry ps` lists, or HOST[:PORT]/<pid> for "
                "one on another host",
                process);
  Runtime runtime(toolOptions());
  auto mta = runtime.joinMta();
  std::optional<AdminClient> admin;
  if (host.empty()) {
    admin.emplace(*pid);
  } else {
    admin.emplace(*pid, remoteAdmin(host, *pid));
  }
  detail::ClientResponse response = admin->describe();
  wire::Process::Reader p = response.results<wire::Admin::DescribeResults>().getProcess();
  if (json) {
    capnp::JsonCodec codec;
    codec.setPrettyPrint(true);
    std::printf("%s\n", codec.encode(p).cStr());
  } else {
    printTree(p);
  }
  return 0;
}

int ping(const std::string& text, unsigned count) {
  Runtime runtime(toolOptions());
  auto mta = runtime.joinMta();
  Target target = resolveTarget(text);
  int status = 0;
  if (target.processOnly) {
    AdminClient admin(*target.pid);
    for (unsigned i = 0; i < count; ++i) {
      auto start = Clock::now();
      detail::ClientResponse response = admin.health();
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      auto health = response.results<wire::Admin::HealthResults>();
      std::printf("reply from pid %llu: %s%s%s, time=%.3f ms\n",
                  static_cast<unsigned long long>(*target.pid),
                  health.getServing() ? "serving" : "not serving",
                  health.getReason().size() ? ": " : "", health.getReason().cStr(), ms);
      if (!health.getServing()) status = 1;
    }
    return status;
  }
  ObjRefInfo info = decodeObjRef(target.objref);
  Ref<Interface> object = internal::unmarshalForCalls(target.objref, info.iid);
  for (unsigned i = 0; i < count; ++i) {
    auto start = Clock::now();
    internal::pingObject(object.get());
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    std::printf("reply from object %s of pid %llu: exported, time=%.3f ms\n",
                toString(info.oid).c_str(), static_cast<unsigned long long>(info.processId >> 32),
                ms);
  }
  return status;
}

int call(const CallOptions& options) {
  size_t dot = options.method.rfind('.');
  FERRY_REQUIRE(dot != std::string::npos && dot > 0 && dot + 1 < options.method.size(),
                Errc::invalidArgument,
                "'{}' does not name a method: give Interface.method, such as Calculator.add",
                options.method);
  std::string interfaceName = options.method.substr(0, dot);
  std::string methodName = options.method.substr(dot + 1);

  Runtime runtime(toolOptions());
  auto mta = runtime.joinMta();
  Target target = resolveTarget(options.target);
  ObjRefInfo info = decodeObjRef(target.objref);

  Schemas schemas;
  if (!options.schemaFile.empty()) {
    schemas.parse(options.schemaFile, options.importPaths);
  } else {
    FERRY_REQUIRE(target.pid.has_value(), Errc::unavailable,
                  "the target's process (pid {}) cannot be asked for its schema: it is not a "
                  "process of this user on this host; give the schema with --schema FILE.capnp",
                  info.processId >> 32);
    AdminClient admin(*target.pid);
    schemas.loadFrom(admin, info.iid);
  }
  capnp::InterfaceSchema iface = schemas.find(interfaceName);
  MethodRef method = methodOf(iface, kj::StringPtr(methodName.c_str()));
  capnp::StructSchema paramsType = method.method.getParamType();
  capnp::StructSchema resultsType = method.method.getResultType();

  Arguments arguments = parseArguments(options.arguments, paramsType);
  internal::registerDynamicInterface(method.iid, iface.getProto().getDisplayName().cStr());
  registerInterfacesOf(paramsType);
  registerInterfacesOf(resultsType);
  Ref<Interface> object = internal::unmarshalForCalls(target.objref, method.iid);

  // Interface-typed params: unmarshaled here, marshaled again by the call.
  std::vector<Ref<Interface>> caps;
  std::vector<Iid> capIids;
  for (auto field : interfaceFields(paramsType)) {
    Iid iid(field.getType().asInterface().getProto().getId());
    auto it = arguments.objrefs.find(field.getProto().getName().cStr());
    caps.push_back(it == arguments.objrefs.end()
                       ? Ref<Interface>()
                       : internal::unmarshalForCalls(objRefFromText(it->second), iid));
    capIids.push_back(iid);
  }

  capnp::JsonCodec codec;
  detail::ClientResponse response = send(object.get(), method, [&](detail::ClientCall& c) {
    auto params = c.initParams<capnp::AnyPointer>().initAs<capnp::DynamicStruct>(paramsType);
    try {
      codec.decode(arguments.message->getRoot<capnp::JsonValue>().asReader(), params);
    } catch (const kj::Exception& e) {
      FERRY_FAIL(Errc::invalidArgument, "the arguments do not fit the parameters of {} ({})",
                 options.method, e.getDescription().cStr());
    }
    for (uint32_t k = 0; k < caps.size(); ++k) c.setCap(k, caps[k].get(), capIids[k]);
  });

  capnp::DynamicStruct::Reader results =
      response.results<capnp::AnyPointer>().getAs<capnp::DynamicStruct>(resultsType);
  std::string out = codec.encode(results).cStr();
  // Interface-typed results: as OBJREF text, each usable as the target of another call.
  std::string extra;
  uint32_t k = 0;
  for (auto field : interfaceFields(resultsType)) {
    Iid iid(field.getType().asInterface().getProto().getId());
    Ref<Interface> identity = response.cap<Interface>(k++);
    std::string value = "null";
    if (identity) {
      Ref<Interface> typed = internal::queryForCalls(identity.get(), iid);
      value = jsonString(objRefToText(
          marshalInterface(typed.get(), iid, MarshalContext::differentMachine)));
    }
    extra += "," + jsonString(field.getProto().getName().cStr()) + ":" + value;
  }
  if (!extra.empty()) {
    out.pop_back();  // the closing brace
    out += (out.size() == 1 ? extra.substr(1) : extra) + "}";
  }
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace ferry::tools
