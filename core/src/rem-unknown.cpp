#include "rem-unknown.h"

#include "apartment-impl.h"
#include "log.h"
#include "remunknown.ferry.h"
#include "stats.h"
#include "thread-state.h"

namespace ferry::detail {

namespace {

constexpr uint32_t kMaxRefsPerEntry = 1024;
constexpr uint32_t kMaxQiIids = 64;
constexpr uint32_t kMaxBatchEntries = 1024;

Ipid readIpid(wire::Ipid::Reader ipid) { return Ipid(ipid.getHi(), ipid.getLo()); }

void countProtocolError() { stats().protocolErrors.fetch_add(1, std::memory_order_relaxed); }

class RemUnknownImpl final : public Implements<wire::iface::RemUnknown> {
public:
  explicit RemUnknownImpl(ApartmentImpl& apartment) : _apartment(apartment) {}

  Owned<wire::QiReply> queryInterfaces(wire::QiRequest::Reader request) override {
    auto iids = request.getIids();
    uint32_t refs = request.getRefs();
    if (refs == 0 || refs > kMaxRefsPerEntry || iids.size() == 0 || iids.size() > kMaxQiIids) {
      countProtocolError();
      FERRY_FAIL(Errc::protocolError,
                 "RemUnknown.queryInterfaces asked for {} references on each of {} interfaces; "
                 "the protocol allows 1 to {} references and 1 to {} interfaces",
                 refs, iids.size(), kMaxRefsPerEntry, kMaxQiIids);
    }
    Ipid ipid = readIpid(request.getIpid());
    Owned<wire::QiReply> reply;
    auto results = reply.builder().initResults(iids.size());
    for (uint32_t i = 0; i < iids.size(); ++i) {
      try {
        Ipid found = _apartment.exports().queryInterface(ipid, Iid(iids[i]), refs, client());
        results[i].initIpid().setHi(found.hi);
        results[i].getIpid().setLo(found.lo);
      } catch (const Error& e) {
        results[i].setCode(static_cast<uint16_t>(e.code()));
      }
    }
    return reply;
  }

  Owned<wire::AddRefReply> addRefs(wire::RefBatch::Reader request) override {
    auto entries = request.getEntries();
    checkBatch(entries);
    Owned<wire::AddRefReply> reply;
    auto codes = reply.builder().initCodes(entries.size());
    for (uint32_t i = 0; i < entries.size(); ++i) {
      try {
        _apartment.exports().addRefs(readIpid(entries[i].getIpid()), entries[i].getRefs(),
                                     client());
      } catch (const Error& e) {
        codes.set(i, static_cast<uint16_t>(e.code()));
      }
    }
    return reply;
  }

  void releaseRefs(wire::RefBatch::Reader request) override {
    auto entries = request.getEntries();
    checkBatch(entries);
    Retired retired;
    for (auto entry : entries) {
      Ipid ipid = readIpid(entry.getIpid());
      switch (_apartment.exports().releaseRefs(ipid, entry.getRefs(), client(), retired)) {
        case ExportTable::ReleaseOutcome::released:
          break;
        case ExportTable::ReleaseOutcome::unknownIpid:
          FERRY_LOG(debug, "references returned for IPID " << ipid << ", already gone");
          break;
        case ExportTable::ReleaseOutcome::notHeld:
          // Counted as releasesRefused by the table: the client returned more than it holds.
          FERRY_LOG(debug, "RemUnknown.releaseRefs of " << entry.getRefs()
                                                    << " reference(s) the client does not hold on "
                                                       "IPID "
                                                    << ipid << " refused");
          break;
      }
    }
    // The objects whose last reference went are released here, in their apartment.
    retired.clear();
  }

  void handOn(wire::RefBatch::Reader request) override {
    auto entries = request.getEntries();
    checkBatch(entries);
    for (auto entry : entries) {
      if (!_apartment.exports().handOn(readIpid(entry.getIpid()), entry.getRefs(), client())) {
        FERRY_LOG(debug, "RemUnknown.handOn of " << entry.getRefs()
                                                 << " reference(s) the client does not hold "
                                                    "refused");
      }
    }
  }

  Owned<wire::ClaimReply> claimPacket(wire::PacketClaim::Reader request) override {
    Owned<wire::ClaimReply> reply;
    try {
      FERRY_REQUIRE(request.getTableRefs() <= kMaxRefsPerEntry, Errc::protocolError,
                    "RemUnknown.claimPacket asked for {} references; the protocol allows at "
                    "most {}",
                    request.getTableRefs(), kMaxRefsPerEntry);
      ClaimedPacket claimed =
          _apartment.exports().claimPacket(claimOf(request), request.getTableRefs(), client());
      reply.builder().setPublicRefs(claimed.publicRefs);
    } catch (const Error& e) {
      reply.builder().setCode(static_cast<uint16_t>(e.code()));
      reply.builder().setMessage(e.message());
    }
    return reply;
  }

  Owned<wire::ClaimReply> releasePacket(wire::PacketClaim::Reader request) override {
    Owned<wire::ClaimReply> reply;
    try {
      Retired retired = _apartment.exports().releasePacket(claimOf(request));
      retired.clear();  // released here, in the object's apartment
    } catch (const Error& e) {
      reply.builder().setCode(static_cast<uint16_t>(e.code()));
      reply.builder().setMessage(e.message());
    }
    return reply;
  }

private:
  // The client whose request this is (this process when called in process).
  static ClientKey client() noexcept {
    const ClientKey* served = threadState().client;
    return served != nullptr ? *served : ClientKey{};
  }

  static ExportTable::PacketClaim claimOf(wire::PacketClaim::Reader r) {
    FERRY_REQUIRE(r.getTable() <= 2, Errc::invalidObjRef,
                  "the packet claim names marshal table kind {}, which this version of ferry does "
                  "not know (it knows normal, tableStrong and tableWeak)",
                  static_cast<unsigned>(r.getTable()));
    return {r.getPacketId(),
            Oid(r.getOid()),
            readIpid(r.getIpid()),
            Iid(r.getIid()),
            static_cast<PacketKind>(r.getTable()),
            r.getPublicRefs(),
            r.getNoPing()};
  }

  static void checkBatch(capnp::List<wire::RefEntry>::Reader entries) {
    bool ok = entries.size() > 0 && entries.size() <= kMaxBatchEntries;
    for (auto entry : entries) ok = ok && entry.getRefs() > 0 && entry.getRefs() <= kMaxRefsPerEntry;
    if (!ok) {
      countProtocolError();
      FERRY_FAIL(Errc::protocolError,
                 "a RemUnknown reference batch has {} entries; the protocol allows 1 to {} "
                 "entries of 1 to {} references each",
                 entries.size(), kMaxBatchEntries, kMaxRefsPerEntry);
    }
  }

  ApartmentImpl& _apartment;
};

}  // namespace

StubLease makeRemUnknown(ApartmentImpl& apartment) {
  return makeStub(make<RemUnknownImpl>(apartment), wire::iface::RemUnknown::iid);
}

}  // namespace ferry::detail
