#include "objref.h"

#include <cstring>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <ferry/error.h>

#include "error-impl.h"

namespace ferry::detail {

std::string bindingText(const StringBindingData& b) {
  std::string text = b.protseq + ":" + b.address + "[" + b.endpoint + "]";
  if (b.level != SecurityLevel::none) text += "+" + std::string(toString(b.level));
  return text;
}

namespace {

// FERRY_OBJREF_CHECK(cond, "is …", values…): an OBJREF that fails validation. Its message is
// "the OBJREF is …", followed by what the user can check.
#define FERRY_OBJREF_DAMAGED "; it was altered on the way, or not made by ferry::marshalInterface"
#define FERRY_OBJREF_CHECK(cond, what, ...)                                  \
  FERRY_REQUIRE(cond, Errc::invalidObjRef, "the OBJREF " what FERRY_OBJREF_DAMAGED \
                __VA_OPT__(, ) __VA_ARGS__)

bool isProtseqChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

std::string readText(capnp::Text::Reader text, size_t maxBytes, const char* field) {
  FERRY_OBJREF_CHECK(text.size() <= maxBytes, "has a {} of {} bytes, more than the {} allowed",
                     field, text.size(), maxBytes);
  std::string out(text.cStr(), text.size());
  FERRY_OBJREF_CHECK(out.find('\0') == std::string::npos, "has a {} that contains a NUL byte",
                     field);
  return out;
}

}  // namespace

std::optional<StringBindingData> tryParseBinding(std::string_view text) {
  size_t colon = text.find(':');
  size_t open = text.rfind('[');
  if (colon == std::string_view::npos || colon == 0 || open == std::string_view::npos ||
      open < colon || text.back() != ']') {
    return std::nullopt;
  }
  return StringBindingData{std::string(text.substr(0, colon)),
                           std::string(text.substr(colon + 1, open - colon - 1)),
                           std::string(text.substr(open + 1, text.size() - open - 2))};
}

ObjRefData readObjRef(wire::ObjRef::Reader reader) {
  ObjRefData out;
  out.iid = Iid(reader.getIid());
  FERRY_OBJREF_CHECK(out.iid.value != 0, "names interface id (IID) 0");
  switch (reader.which()) {
    case wire::ObjRef::NULL_:
      out.kind = ObjRefData::Kind::null;
      return out;
    case wire::ObjRef::STANDARD:
      break;
    case wire::ObjRef::CUSTOM:
    case wire::ObjRef::BY_VALUE: {
      auto custom = reader.which() == wire::ObjRef::CUSTOM ? reader.getCustom() : reader.getByValue();
      out.kind = reader.which() == wire::ObjRef::CUSTOM ? ObjRefData::Kind::custom
                                                         : ObjRefData::Kind::byValue;
      out.unmarshalerClass = readText(custom.getUnmarshalerClass(), 255, "unmarshalerClass");
      FERRY_OBJREF_CHECK(!out.unmarshalerClass.empty(),
                         "is a custom OBJREF without an unmarshaler class name");
      auto data = custom.getData();
      FERRY_OBJREF_CHECK(data.size() <= kMaxObjRefBytes,
                         "is a custom OBJREF with {} bytes of data, more than the {} allowed",
                         data.size(), kMaxObjRefBytes);
      out.data.assign(data.begin(), data.end());
      return out;
    }
    default:
      FERRY_FAIL(Errc::invalidObjRef,
                 "the OBJREF is of kind {}, which this version of ferry does not know (it knows "
                 "null, standard, custom and byValue); it was made by a newer ferry, or altered",
                 static_cast<unsigned>(reader.which()));
  }

  auto standard = reader.getStandard();
  out.kind = ObjRefData::Kind::standard;
  out.oxid = Oxid(standard.getOxid());
  out.oid = Oid(standard.getOid());
  out.ipid = Ipid(standard.getIpid().getHi(), standard.getIpid().getLo());
  out.publicRefs = standard.getPublicRefs();
  out.packetId = standard.getPacketId();
  out.processId = standard.getProcessId();
  FERRY_OBJREF_CHECK(out.oxid.value != 0, "names exporter id (OXID) 0");
  FERRY_OBJREF_CHECK(out.oid.value != 0, "names object id (OID) 0");
  FERRY_OBJREF_CHECK(static_cast<bool>(out.ipid), "names interface pointer id (IPID) 0");
  FERRY_OBJREF_CHECK(out.publicRefs <= kMaxPublicRefs,
                     "carries {} public references, more than the {} allowed", out.publicRefs,
                     kMaxPublicRefs);
  FERRY_OBJREF_CHECK(out.processId != 0, "names process id 0");

  auto flags = standard.getFlags();
  switch (flags.getTable()) {
    case wire::MarshalFlags::TableKind::NORMAL:
      out.table = PacketKind::normal;
      break;
    case wire::MarshalFlags::TableKind::TABLE_STRONG:
      out.table = PacketKind::tableStrong;
      break;
    case wire::MarshalFlags::TableKind::TABLE_WEAK:
      out.table = PacketKind::tableWeak;
      break;
    default:
      FERRY_FAIL(Errc::invalidObjRef,
                 "the OBJREF has marshal table kind {}, which this version of ferry does not know "
                 "(it knows normal, tableStrong and tableWeak); it was made by a newer ferry, or "
                 "altered",
                 static_cast<unsigned>(flags.getTable()));
  }
  out.noPing = flags.getNoPing();
  // Table packets never carry references: each unmarshal acquires its own.
  FERRY_OBJREF_CHECK(out.table == PacketKind::normal || out.publicRefs == 0,
                     "is a table packet (tableStrong or tableWeak) that carries public references");
  FERRY_OBJREF_CHECK(out.table == PacketKind::normal || out.packetId != 0,
                     "is a table packet (tableStrong or tableWeak) without a packet id");

  auto host = standard.getHostId();
  FERRY_OBJREF_CHECK(host.size() == out.hostId.size(), "has a host id of {} bytes instead of 16",
                     host.size());
  std::memcpy(out.hostId.data(), host.begin(), out.hostId.size());

  auto bindings = standard.getBindings();
  FERRY_OBJREF_CHECK(bindings.size() <= 32, "has {} string bindings, more than the 32 allowed",
                     bindings.size());
  for (auto b : bindings) {
    StringBindingData binding{readText(b.getProtseq(), 16, "protseq"),
                              readText(b.getAddress(), 255, "address"),
                              readText(b.getEndpoint(), 255, "endpoint")};
    bool protseqOk = !binding.protseq.empty();
    for (char c : binding.protseq) protseqOk = protseqOk && isProtseqChar(c);
    FERRY_OBJREF_CHECK(protseqOk,
                       "has a string binding with protocol sequence '{}', which is not made of "
                       "lower-case letters and digits",
                       binding.protseq);
    out.bindings.push_back(std::move(binding));
  }
  auto security = standard.getSecurityBindings();
  FERRY_OBJREF_CHECK(security.size() <= 16, "has {} security bindings, more than the 16 allowed",
                     security.size());
  for (auto s : security) {
    SecurityBindingData binding{readText(s.getProvider(), 32, "provider"),
                                readText(s.getPrincipal(), 255, "principal")};
    FERRY_OBJREF_CHECK(!binding.provider.empty(),
                       "has a security binding without a provider name");
    out.securityBindings.push_back(std::move(binding));
  }
  return out;
}

namespace {
template <typename Builder>
void copyText(Builder text, const std::string& value) {
  std::memcpy(text.begin(), value.data(), value.size());
}
}  // namespace

void writeObjRef(wire::ObjRef::Builder builder, const ObjRefData& data) {
  builder.setIid(data.iid.value);
  switch (data.kind) {
    case ObjRefData::Kind::null:
      builder.setNull();
      return;
    case ObjRefData::Kind::custom:
    case ObjRefData::Kind::byValue: {
      auto custom = data.kind == ObjRefData::Kind::custom ? builder.initCustom() : builder.initByValue();
      copyText(custom.initUnmarshalerClass(data.unmarshalerClass.size()), data.unmarshalerClass);
      custom.setData(kj::arrayPtr(data.data.data(), data.data.size()));
      return;
    }
    case ObjRefData::Kind::standard:
      break;
  }
  auto standard = builder.initStandard();
  standard.setOxid(data.oxid.value);
  standard.setOid(data.oid.value);
  auto ipid = standard.initIpid();
  ipid.setHi(data.ipid.hi);
  ipid.setLo(data.ipid.lo);
  standard.setPublicRefs(data.publicRefs);
  auto flags = standard.initFlags();
  switch (data.table) {
    case PacketKind::normal:
      flags.setTable(wire::MarshalFlags::TableKind::NORMAL);
      break;
    case PacketKind::tableStrong:
      flags.setTable(wire::MarshalFlags::TableKind::TABLE_STRONG);
      break;
    case PacketKind::tableWeak:
      flags.setTable(wire::MarshalFlags::TableKind::TABLE_WEAK);
      break;
  }
  flags.setNoPing(data.noPing);
  standard.setPacketId(data.packetId);
  standard.setHostId(kj::arrayPtr(data.hostId.data(), data.hostId.size()));
  standard.setProcessId(data.processId);
  if (!data.bindings.empty()) {
    auto list = standard.initBindings(data.bindings.size());
    for (size_t i = 0; i < data.bindings.size(); ++i) {
      const auto& b = data.bindings[i];
      copyText(list[i].initProtseq(b.protseq.size()), b.protseq);
      copyText(list[i].initAddress(b.address.size()), b.address);
      copyText(list[i].initEndpoint(b.endpoint.size()), b.endpoint);
    }
  }
  if (!data.securityBindings.empty()) {
    auto list = standard.initSecurityBindings(data.securityBindings.size());
    for (size_t i = 0; i < data.securityBindings.size(); ++i) {
      const auto& s = data.securityBindings[i];
      copyText(list[i].initProvider(s.provider.size()), s.provider);
      copyText(list[i].initPrincipal(s.principal.size()), s.principal);
    }
  }
}

ObjRefBytes encodeObjRef(const ObjRefData& data) {
  capnp::MallocMessageBuilder message(128);
  writeObjRef(message.initRoot<wire::ObjRef>(), data);
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return ObjRefBytes(bytes.begin(), bytes.end());
}

ObjRefData decodeObjRef(std::span<const uint8_t> bytes) {
  FERRY_REQUIRE(!bytes.empty(), Errc::invalidObjRef,
                "the OBJREF is empty (0 bytes); pass the bytes ferry::marshalInterface returned");
  FERRY_OBJREF_CHECK(bytes.size() <= kMaxObjRefBytes && bytes.size() % sizeof(capnp::word) == 0,
                     "is {} bytes long; an OBJREF is a whole number of 8-byte words, at most {} bytes",
                     bytes.size(), kMaxObjRefBytes);
  // Copy into aligned words: the caller's buffer may be unaligned.
  auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = kMaxObjRefBytes / sizeof(capnp::word);
    options.nestingLimit = 8;
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    FERRY_OBJREF_CHECK(reader.getEnd() == words.end(),
                       "is followed by bytes that are not part of it");
    return readObjRef(reader.getRoot<wire::ObjRef>());
  } catch (const kj::Exception& e) {
    FERRY_FAIL(Errc::invalidObjRef,
               "the OBJREF is not a valid Cap'n Proto message ({})" FERRY_OBJREF_DAMAGED,
               kjReason(e.getDescription().cStr()));
  }
}

}  // namespace ferry::detail
