// ferry: the command-line tool.
//
//   ferry plugins                    the plugins the loader found, and the ones it refused (why)
//   ferry objref <hex>               decodes an OBJREF: kind, IID, OXID, OID, IPID, references,
//                                    flags, host and process, bindings
//   ferry resolve <oxid> <binding>   asks the resolver at <binding> (e.g. tcp:127.0.0.1[7135])
//                                    where exporter <oxid> (hex) listens
//   ferry names [HOST[:PORT]]        the names published on a host (this host's ferryd without one)
//   ferry bind <ferry://reference>   looks a reference up and decodes the OBJREF it names
//   ferry activate <ferry://HOST/class/CLASS>
//                                    creates an instance through the host's ferryd (launching its
//                                    server if need be), decodes its OBJREF, calls nothing on it
//                                    and releases it
//   ferry keygen <file> [--id NAME]  writes a new key file for the psk security provider (mode
//                                    0600; never replaces a file)
//   ferry ps [HOST[:PORT]] [--json]  the processes registered with a host's ferryd (this host's
//                                    without one; this user's admin files when none runs)
//   ferry ls [HOST[:PORT]/]<pid> [--json]
//                                    what a process runs, exports, holds and serves (its admin
//                                    object, core/schema/admin.capnp)
//   ferry ping <target> [-c N]       round trips to a process (its health) or an object
//   ferry call <target> <Interface.method> [<json>] [--schema FILE]
//                                    calls a method by reflection and prints its results as JSON
//                                    (admin-commands.h: the targets)
//   ferry --help, ferry <command> --help, ferry --version
//
// Exit status: 0 on success, 1 on failure (the error says what failed), 2 on bad usage.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ferry/ferry.h>

#include "admin-commands.h"
#include "key-file.h"
#include "tool-support.h"
#include "tool.h"

namespace {

constexpr char kUsage[] =
    "usage: ferry plugins\n"
    "       ferry objref <hex>\n"
    "       ferry resolve <oxid-hex> <protseq:address[endpoint]>\n"
    "       ferry names [HOST[:PORT]]\n"
    "       ferry bind <ferry://reference>\n"
    "       ferry activate <ferry://[HOST[:PORT]]/class/CLASS>\n"
    "       ferry keygen <file> [--id NAME]\n"
    "       ferry ps [HOST[:PORT]] [--json]\n"
    "       ferry ls [HOST[:PORT]/]<pid> [--json]\n"
    "       ferry ping <target> [-c N]\n"
    "       ferry call <target> <Interface.method> [<json>] [--schema FILE [-I DIR]]\n"
    "       ferry --help | --version\n";

int plugins() {
  for (const auto& p : ferry::Runtime::plugins()) {
    std::printf("%-9s %-6s %s\n          %s\n", p.kind.c_str(), p.name.c_str(), p.path.c_str(),
                p.description.c_str());
  }
  for (const auto& r : ferry::Runtime::refusedPlugins()) {
    std::printf("refused   %s: %s\n", r.path.c_str(), r.reason.c_str());
  }
  if (ferry::Runtime::plugins().empty()) {
    std::printf("no plugins found: %s\n", ferry::internal::describePluginSearch().c_str());
  }
  return 0;
}

int objref(const std::string& text) {
  ferry::ObjRefInfo d = ferry::decodeObjRef(ferry::objRefFromText(text));
  std::printf("kind        %s\niid         %s\n", std::string(ferry::toString(d.kind)).c_str(),
              ferry::toString(d.iid).c_str());
  if (d.kind == ferry::ObjRefInfo::Kind::custom || d.kind == ferry::ObjRefInfo::Kind::byValue) {
    std::printf("unmarshaler %s\ndata        %zu bytes\n", d.unmarshalerClass.c_str(), d.dataSize);
  }
  if (d.kind != ferry::ObjRefInfo::Kind::standard) return 0;
  std::printf("oxid        %s\noid         %s\nipid        %s\npublicRefs  %u\nflags       %s\n"
              "packetId    %016llx\nprocessId   %llu (pid %llu)\n",
              ferry::toString(d.oxid).c_str(), ferry::toString(d.oid).c_str(),
              ferry::toString(d.ipid).c_str(), d.publicRefs, ferry::toString(d.flags).c_str(),
              static_cast<unsigned long long>(d.packetId),
              static_cast<unsigned long long>(d.processId),
              static_cast<unsigned long long>(d.processId >> 32));
  for (const auto& b : d.bindings) std::printf("binding     %s\n", b.c_str());
  for (const auto& s : d.securityBindings) {
    std::printf("security    %s %s\n", s.provider.c_str(), s.principal.c_str());
  }
  return 0;
}


// The arguments of `ferry resolve`, parsed.
struct ResolveTarget {
  ferry::Oxid oxid;
  std::string binding;
};

int resolve(const ResolveTarget& target) {
  ferry::RuntimeOptions options;
  options.resolver = "";
  ferry::Runtime runtime(options);
  auto mta = runtime.joinMta();
  ferry::internal::ResolvedExporter r = ferry::internal::resolveExporter(target.binding,
                                                                         target.oxid);
  std::printf("oxid        %s\nremUnknown  %s\nprocessId   %llu (pid %llu)\n",
              ferry::toString(r.oxid).c_str(), ferry::toString(r.remUnknown).c_str(),
              static_cast<unsigned long long>(r.processId),
              static_cast<unsigned long long>(r.processId >> 32));
  for (const auto& b : r.bindings) std::printf("binding     %s\n", b.c_str());
  return 0;
}

int names(const std::string& host) {
  // This host's ferryd is found as every process finds it (RuntimeOptions::resolver "auto",
  // FERRY_RESOLVER).
  ferry::Runtime runtime;
  auto mta = runtime.joinMta();
  std::vector<ferry::PublishedName> names = ferry::listNames(host);
  for (const auto& n : names) {
    std::printf("%-40s pid %llu\n", n.name.c_str(),
                static_cast<unsigned long long>(n.processId >> 32));
  }
  if (names.empty() && host.empty() && ferry::internal::ferrydBinding().empty()) {
    std::fprintf(stderr, "ferry names: this host runs no ferryd to ask (its pipe "
                         "/run/ferry/ferryd does not exist; set FERRY_RESOLVER to where it "
                         "listens), or give HOST[:PORT]\n");
    return 1;
  }
  if (names.empty()) std::printf("no names are published on %s\n", host.empty() ? "this host" : host.c_str());
  return 0;
}

int bindReference(const std::string& reference) {
  ferry::Runtime runtime;
  auto mta = runtime.joinMta();
  // Decoded, not unmarshaled: the object's interface is the application's, unknown here.
  return objref(ferry::objRefToText(ferry::internal::lookupReference(reference)));
}

int activate(const std::string& reference) {
  ferry::Runtime runtime;
  auto mta = runtime.joinMta();
  std::vector<uint8_t> packet = ferry::internal::lookupReference(reference);
  int status = objref(ferry::objRefToText(packet));
  // Unmarshaled (a normal OBJREF holds a reference for its one importer) and released at once:
  // the object's interface is the application's, unknown here, so nothing is called on it.
  {
    auto object = ferry::unmarshalInterface<ferry::Interface>(packet);
  }
  std::printf("activated, and released (ferry activate calls no method)\n");
  return status;
}

// The key id keygen uses without --id: this host's name.
std::string defaultKeyId() {
  char name[256] = "";
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

int keygen(const std::string& file, std::string id) {
  if (id.empty()) id = defaultKeyId();
  ferry::security::psk::writeNewKeyFile(file, id);
  std::printf(
      "wrote a new 256-bit key '%s' to %s (mode 0600)\n"
      "Give it to the psk security provider at both ends of the link:\n"
      "  the client: keys=%s,id=%s\n"
      "  the server: keys=<its file>, holding this line among the keys of the clients it accepts\n"
      "Copy the key to the server over a channel you trust and keep every copy mode 0600; use one "
      "key per client and server pair.\n",
      id.c_str(), file.c_str(), file.c_str(), id.c_str());
  return 0;
}

// The command line: one subcommand per action, each parsed by kj::MainBuilder.
class FerryMain {
public:
  explicit FerryMain(ferry::tools::ToolContext& context) : _context(context) {}

  kj::MainFunc getMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Inspects a ferry installation: its plugins, OBJREFs and resolvers; writes "
                           "psk key files.",
                           "Exit status: 0 on success, 1 when the command fails (it says why), 2 "
                           "on bad usage.")
        .addSubCommand("plugins", KJ_BIND_METHOD(*this, pluginsMain),
                       "list the plugins the loader found on FERRY_PLUGIN_PATH and the install "
                       "directory, and the ones it refused (why)")
        .addSubCommand("objref", KJ_BIND_METHOD(*this, objrefMain),
                       "decode an OBJREF given as hex (the text of ferry::objRefToText)")
        .addSubCommand("resolve", KJ_BIND_METHOD(*this, resolveMain),
                       "ask the resolver at a string binding where an exporter (OXID) listens")
        .addSubCommand("names", KJ_BIND_METHOD(*this, namesMain),
                       "list the names objects are published under on a host")
        .addSubCommand("bind", KJ_BIND_METHOD(*this, bindMain),
                       "look a ferry:// reference up and decode the OBJREF it names")
        .addSubCommand("activate", KJ_BIND_METHOD(*this, activateMain),
                       "create an instance of a class through a host's ferryd and decode its "
                       "OBJREF")
        .addSubCommand("keygen", KJ_BIND_METHOD(*this, keygenMain),
                       "write a new key file for the psk security provider")
        .addSubCommand("ps", KJ_BIND_METHOD(*this, psMain),
                       "list this user's ferry processes (those that publish an admin object)")
        .addSubCommand("ls", KJ_BIND_METHOD(*this, lsMain),
                       "show what a process runs, exports, holds and serves")
        .addSubCommand("ping", KJ_BIND_METHOD(*this, pingMain),
                       "time round trips to a process (its health) or an object")
        .addSubCommand("call", KJ_BIND_METHOD(*this, callMain),
                       "call a method by reflection, arguments and results as JSON")
        .build();
  }

private:
  kj::MainFunc pluginsMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Lists the plugins the loader found on FERRY_PLUGIN_PATH and the "
                           "install directory, and the ones it refused, with the reason.")
        .callAfterParsing([this]() -> kj::MainBuilder::Validity { finish(plugins()); })
        .build();
  }

  kj::MainFunc objrefMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Decodes an OBJREF: kind, IID, OXID, OID, IPID, references, flags, "
                           "host and process, bindings.")
        .expectArg("<hex>", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _objref = std::string(text.cStr(), text.size());
          return true;
        })
        .callAfterParsing([this]() -> kj::MainBuilder::Validity { finish(objref(_objref)); })
        .build();
  }

  kj::MainFunc resolveMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Asks the resolver at <binding> (a process, or a host's ferryd such as "
                           "tcp:192.0.2.7[7135]) where exporter <oxid> listens.")
        .expectArg("<oxid-hex>", KJ_BIND_METHOD(*this, setOxid))
        .expectArg("<protseq:address[endpoint]>", KJ_BIND_METHOD(*this, setBinding))
        .callAfterParsing([this]() -> kj::MainBuilder::Validity { finish(resolve(_target)); })
        .build();
  }

  kj::MainFunc namesMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Lists the names objects are published under on HOST (an address or a "
                           "host name; PORT: its resolver's, default 7135), or on this host "
                           "through its ferryd.")
        .expectOptionalArg("HOST[:PORT]", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _text = std::string(text.cStr(), text.size());
          return true;
        })
        .callAfterParsing([this]() -> kj::MainBuilder::Validity { finish(names(_text)); })
        .build();
  }

  kj::MainFunc bindMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Looks a ferry:// reference (ferry://[HOST[:PORT]]/name/NAME) up, as "
                           "ferry::bind does, and decodes the OBJREF it names: the object's "
                           "exporter, process and bindings.")
        .expectArg("<ferry://reference>", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          try {
            ferry::ObjectUri::parse(std::string_view(text.cStr(), text.size()));
          } catch (const ferry::Error& e) {
            return kj::str(e.message().c_str());
          }
          _text = std::string(text.cStr(), text.size());
          return true;
        })
        .callAfterParsing([this]() -> kj::MainBuilder::Validity { finish(bindReference(_text)); })
        .build();
  }

  kj::MainFunc activateMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Creates an instance of CLASS on HOST (this host without one) as "
                           "ferry::createInstance does: through the host's ferryd, which asks a "
                           "running server or launches the one its class file names. Prints the "
                           "instance's OBJREF decoded (its exporter, process and bindings), calls "
                           "nothing on it and releases it.")
        .expectArg("<ferry://[HOST[:PORT]]/class/CLASS>",
                   [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
                     try {
                       auto uri = ferry::ObjectUri::parse(std::string_view(text.cStr(), text.size()));
                       if (uri.kind != ferry::ObjectUri::Kind::klass) {
                         return "ferry activate takes a class reference "
                                "(ferry://HOST/class/CLASS); look names up with ferry bind";
                       }
                     } catch (const ferry::Error& e) {
                       return kj::str(e.message().c_str());
                     }
                     _text = std::string(text.cStr(), text.size());
                     return true;
                   })
        .callAfterParsing([this]() -> kj::MainBuilder::Validity { finish(activate(_text)); })
        .build();
  }

  kj::MainFunc keygenMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Writes <file> (mode 0600; never over an existing file) holding one "
                           "new random 256-bit key for the psk security provider, and prints how "
                           "to configure it.")
        .addOptionWithArg({"id"}, KJ_BIND_METHOD(*this, setKeyId), "<name>",
                          "the key id, which is the principal the key authenticates (default: "
                          "this host's name)")
        .expectArg("<file>", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _keyFile = std::string(text.cStr(), text.size());
          return true;
        })
        .callAfterParsing([this]() -> kj::MainBuilder::Validity {
          finish(keygen(_keyFile, _keyId));
        })
        .build();
  }

  kj::MainFunc psMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Lists the ferry processes registered with the ferryd of HOST (this "
                           "host's without one; when none runs here, this user's processes whose "
                           "admin object is published in the runtime directory), with the source "
                           "it used: pid, name, user, and the bindings of each admin object this "
                           "user may call.")
        .addOption({"json"}, [this] { _json = true; return true; }, "print JSON")
        .expectOptionalArg("HOST[:PORT]", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _text = text.cStr();
          return true;
        })
        .callAfterParsing([this]() -> kj::MainBuilder::Validity {
          finish(ferry::tools::ps(_text, _json));
        })
        .build();
  }

  kj::MainFunc lsMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Shows what process <pid> (on HOST, through its ferryd, with "
                           "HOST[:PORT]/<pid>) runs, exports, holds and serves, as its admin "
                           "object answers: apartments, exported objects (OID, class, interfaces, "
                           "references by holder), proxies, transports and their counters, "
                           "plugins, the runtime counters, per-method calls, errors and latency, "
                           "health.")
        .addOption({"json"}, [this] { _json = true; return true; },
                   "print the admin interface's Process struct as JSON (capnp's JsonCodec)")
        .expectArg("[HOST[:PORT]/]<pid>", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          if (!ferry::tools::isProcess(text.cStr())) {
            return "not a process: give a pid, or HOST[:PORT]/<pid> for one on another host";
          }
          _text = text.cStr();
          return true;
        })
        .callAfterParsing([this]() -> kj::MainBuilder::Validity {
          finish(ferry::tools::ls(_text, _json));
        })
        .build();
  }

  kj::MainFunc pingMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Times round trips to <target>: a process (<pid>: its admin object's "
                           "health; exit status 1 when it is not serving), or an object "
                           "(<pid>/<oid>, an OBJREF's text, a ferry:// reference: its exporter "
                           "confirms it still exports it).")
        .addOptionWithArg({'c', "count"}, KJ_BIND_METHOD(*this, setCount), "<n>",
                          "how many round trips (default 1)")
        .expectArg("<target>", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _text = text.cStr();
          return true;
        })
        .callAfterParsing([this]() -> kj::MainBuilder::Validity {
          finish(ferry::tools::ping(_text, _count));
        })
        .build();
  }

  kj::MainFunc callMain() {
    return kj::MainBuilder(_context, ferry::tools::kVersion,
                           "Calls <Interface.method> on <target> (<pid>/<oid>, an OBJREF's text, a "
                           "ferry:// reference) with the parameters given as a JSON object, and "
                           "prints the results as JSON. The schema comes from the target's process "
                           "by reflection, or from --schema. Interface-typed parameters take, and "
                           "interface-typed results print, an OBJREF's text.")
        .addOptionWithArg({"schema"}, [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _call.schemaFile = text.cStr();
          return true;
        }, "<file.capnp>", "read the interface from this schema instead of asking the process")
        .addOptionWithArg({'I', "import-path"}, [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _call.importPaths.push_back(text.cStr());
          return true;
        }, "<dir>", "where the schema's imports are (besides /usr/include)")
        .expectArg("<target>", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _call.target = text.cStr();
          return true;
        })
        .expectArg("<Interface.method>", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _call.method = text.cStr();
          return true;
        })
        .expectOptionalArg("<json>", [this](kj::StringPtr text) -> kj::MainBuilder::Validity {
          _call.arguments = text.cStr();
          return true;
        })
        .callAfterParsing([this]() -> kj::MainBuilder::Validity {
          finish(ferry::tools::call(_call));
        })
        .build();
  }

  kj::MainBuilder::Validity setCount(kj::StringPtr text) {
    unsigned value = 0;
    auto [end, error] = std::from_chars(text.begin(), text.end(), value);
    if (text.size() == 0 || error != std::errc() || end != text.end() || value == 0) {
      return "not a count: give a whole number of at least 1";
    }
    _count = value;
    return true;
  }

  kj::MainBuilder::Validity setKeyId(kj::StringPtr text) {
    if (!ferry::security::psk::validKeyId(std::string_view(text.cStr(), text.size()))) {
      return "not a key id: give 1 to 128 of the characters A-Z a-z 0-9 . _ @ : / + -";
    }
    _keyId = std::string(text.cStr(), text.size());
    return true;
  }

  kj::MainBuilder::Validity setOxid(kj::StringPtr text) {
    uint64_t value = 0;
    auto [end, error] = std::from_chars(text.begin(), text.end(), value, 16);
    if (text.size() == 0 || text.size() > 16 || error != std::errc() || end != text.end() ||
        value == 0) {
      return "not an OXID: give 1 to 16 hex digits, not all zero, as `ferry objref` prints it";
    }
    _target.oxid = ferry::Oxid(value);
    return true;
  }

  kj::MainBuilder::Validity setBinding(kj::StringPtr text) {
    if (!ferry::internal::isStringBinding(std::string_view(text.cStr(), text.size()))) {
      return "not a string binding: give protseq:address[endpoint], such as "
             "tcp:127.0.0.1[7135]";
    }
    _target.binding = std::string(text.cStr(), text.size());
    return true;
  }

  [[noreturn]] void finish(int status) { _context.exitWith(status); }

  ferry::tools::ToolContext& _context;
  std::string _objref;
  std::string _text;  // names' host, bind's and activate's reference
  ResolveTarget _target;
  std::string _keyFile;
  std::string _keyId;
  bool _json = false;        // ps, ls
  unsigned _count = 1;       // ping
  ferry::tools::CallOptions _call;
};

}  // namespace

int main(int argc, char** argv) {
  ferry::tools::ToolContext context("ferry", kUsage);
  FerryMain ferry(context);
  return ferry::tools::runTool(context, ferry.getMain(), argc, argv);
}
