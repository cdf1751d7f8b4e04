#include "bind.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <atomic>

#include <capnp/message.h>
#include <kj/exception.h>

#include "../log.h"
#include "../stats.h"
#include "frame.h"
#include "orpc.capnp.h"

namespace ferry::detail::orpc {

using security::Provider;
using security::RecordLayer;

namespace {

constexpr uint16_t kBindVersion = 1;
constexpr size_t kMaxOfferedProviders = 16;
constexpr char kExportLabel[] = "ferry/1 record";

bool validLevel(uint8_t level) noexcept { return level >= 1 && level <= 3; }

std::vector<uint8_t> tokenOf(capnp::Data::Reader token, size_t maxToken) {
  FERRY_REQUIRE(token.size() <= maxToken, Errc::protocolError,
                "a token of {} bytes, above the provider's limit of {}", token.size(), maxToken);
  return {token.begin(), token.end()};
}

}  // namespace

BindMessage readBind(const uint8_t* data, size_t size, size_t maxToken) {
  Frame frame = decodeFrame(data, size);
  FERRY_REQUIRE(frame.header.kind == FrameKind::bind, Errc::protocolError,
                "a frame of kind {} where a bind frame belongs", int(frame.header.kind));
  BindMessage out;
  try {
    auto bind = frame.message->root<wire::Bind>();
    switch (bind.which()) {
      case wire::Bind::OFFER: {
        auto offer = bind.getOffer();
        FERRY_REQUIRE(offer.getVersion() == kBindVersion, Errc::protocolError,
                      "an offer of bind version {}, not {}", offer.getVersion(), kBindVersion);
        FERRY_REQUIRE(validLevel(offer.getLevel()), Errc::protocolError,
                      "an offer of the unknown level {}", offer.getLevel());
        auto ids = offer.getProviders();
        FERRY_REQUIRE(ids.size() <= kMaxOfferedProviders, Errc::protocolError,
                      "an offer of {} providers, more than {}", ids.size(), kMaxOfferedProviders);
        out.kind = BindMessage::Kind::offer;
        for (uint8_t id : ids) out.providers.push_back(id);
        out.level = static_cast<SecurityLevel>(offer.getLevel());
        break;
      }
      case wire::Bind::CHOICE: {
        auto choice = bind.getChoice();
        FERRY_REQUIRE(validLevel(choice.getLevel()), Errc::protocolError,
                      "a choice of the unknown level {}", choice.getLevel());
        out.kind = BindMessage::Kind::choice;
        out.provider = choice.getProvider();
        out.level = static_cast<SecurityLevel>(choice.getLevel());
        break;
      }
      case wire::Bind::TOKEN:
        out.kind = BindMessage::Kind::token;
        out.token = tokenOf(bind.getToken(), maxToken);
        break;
      case wire::Bind::ACCEPT:
        out.kind = BindMessage::Kind::accept;
        out.token = tokenOf(bind.getAccept(), maxToken);
        break;
      case wire::Bind::REFUSAL:
        out.kind = BindMessage::Kind::refusal;
        break;
      default:
        FERRY_FAIL(Errc::protocolError, "a bind message of an unknown kind");
    }
  } catch (const kj::Exception&) {
    FERRY_FAIL(Errc::protocolError, "a malformed bind message");
  }
  return out;
}

struct BindLayer::Link {
  bool client = false;
  // Written on the network thread; read there and by any-thread senders (under the layer's lock,
  // which the writes other than `open` do not take).
  std::atomic<Stage> stage{Stage::awaiting};
  LinkInfo info;
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
  SecurityLevel requested = SecurityLevel::none;  // client: the least it accepts
  SecurityLevel level = SecurityLevel::none;      // chosen
  std::vector<uint8_t> offered;                   // client: provider ids it offered
  std::vector<uint8_t> offer, choice;             // the clear negotiation, as frames
  const Provider* provider = nullptr;
  ferry_security_context* context = nullptr;
  bool stepsDone = false;  // this end's provider returned OK
  std::string failure;     // why the exchange failed (for the waiting frames' calls)
  bool rejected = false;
  bool announced = false;  // the endpoint heard opened()
  int forgeries = 0;       // frames that failed to open since the link opened
  // Set (under the layer's lock) when the stage becomes open, then never changed.
  std::shared_ptr<RecordLayer> record;
  std::vector<std::vector<uint8_t>> queued;  // frames sent before the link was open

  ~Link() {
    if (context != nullptr) provider->table->free_context(context);
  }
};

BindLayer::BindLayer(const security::Providers& providers, Network& below)
    : _providers(providers), _below(below) {}

BindLayer::~BindLayer() = default;

BindLayer::Link* BindLayer::find(LinkId link) {
  auto it = _links.find(link);
  return it == _links.end() ? nullptr : it->second.get();
}

// ---- Network -------------------------------------------------------------------------------------

std::optional<LinkId> BindLayer::linkTo(const StringBindingData& binding, std::string* why) {
  std::optional<LinkId> id = _below.linkTo(binding, why);
  if (id && find(*id) == nullptr) {
    auto link = std::make_shared<Link>();
    link->client = true;
    link->stage = Stage::connecting;
    std::lock_guard lock(_mutex);
    _links[*id] = std::move(link);
  }
  return id;
}

std::optional<LinkId> BindLayer::openLink(const std::string& bindingKey) {
  std::optional<LinkId> id = _below.openLink(bindingKey);
  if (!id) return id;
  std::lock_guard lock(_mutex);
  auto it = _links.find(*id);
  if (it != _links.end() && it->second->stage != Stage::open) return std::nullopt;
  return id;
}

void BindLayer::send(LinkId id, std::vector<uint8_t> frame) {
  Link* link = find(id);
  if (link == nullptr) return _below.send(id, std::move(frame));
  switch (link->stage) {
    case Stage::open:
      if (link->record) {
        std::vector<uint8_t> sealed;
        try {
          sealed = link->record->seal(frame);
        } catch (const Error& e) {
          return _above->sendFailed(id, frameCallId(frame), e.message());
        }
        return _below.send(id, std::move(sealed));
      }
      return _below.send(id, std::move(frame));
    case Stage::failed:
      return _above->sendFailed(id, frameCallId(frame), link->failure);
    default:
      link->queued.push_back(std::move(frame));
      return;
  }
}

bool BindLayer::sendNow(LinkId id, std::span<const uint8_t> frame) {
  std::shared_ptr<RecordLayer> record;
  {
    std::lock_guard lock(_mutex);
    auto it = _links.find(id);
    if (it != _links.end()) {
      if (it->second->stage != Stage::open) return false;
      record = it->second->record;
    }
  }
  if (!record) return _below.sendNow(id, frame);
  std::vector<uint8_t> sealed;
  try {
    sealed = record->seal(frame);
  } catch (const Error&) {
    return false;  // send() reports it
  }
  return _below.sendNow(id, sealed);
}

ReadOutcome BindLayer::receiveNow(LinkId id, std::span<const uint8_t> request, int wakeFd,
                                  std::chrono::milliseconds timeout, FrameTaker take,
                                  void* context) {
  {
    std::lock_guard lock(_mutex);
    auto it = _links.find(id);
    if (it != _links.end() && (it->second->stage != Stage::open || it->second->record)) {
      return ReadOutcome::cannot;
    }
  }
  return _below.receiveNow(id, request, wakeFd, timeout, take, context);
}

// ---- LinkEvents ----------------------------------------------------------------------------------

void BindLayer::opened(LinkId id, const LinkInfo& info) {
  Link* link = find(id);
  if (link == nullptr) {
    auto fresh = std::make_shared<Link>();
    fresh->client = info.outbound;
    fresh->stage = info.outbound ? Stage::connecting : Stage::awaiting;
    link = fresh.get();
    std::lock_guard lock(_mutex);
    _links[id] = std::move(fresh);
  }
  link->info = info;
  link->since = std::chrono::steady_clock::now();
  if (link->client) begin(id, *link);
}

void BindLayer::begin(LinkId id, Link& link) {
  // The process's minimum, or more for a proxy's blanket.
  link.requested = std::max(_providers.minimum(), link.info.binding.level);
  for (const Provider& p : _providers.list()) {
    if (p.fits(link.info.transportCapabilities) && p.highest() >= link.requested &&
        link.offered.size() < kMaxOfferedProviders) {
      link.offered.push_back(p.id());
    }
  }
  if (link.offered.empty()) {
    // No provider for this transport: the link runs at none (the Runtime refused a minimum above
    // none that a running transport could not reach), unless a blanket asks for more.
    if (link.requested != SecurityLevel::none) {
      return fail(id, link, "no security provider of this process gives level " +
                                std::string(toString(link.requested)) + " over this transport");
    }
    return open(id, link);
  }
  link.stage = Stage::offered;
  sendBind(id, link, [&](capnp::MessageBuilder& message) {
    auto offer = message.initRoot<wire::Bind>().initOffer();
    offer.setVersion(kBindVersion);
    auto ids = offer.initProviders(static_cast<unsigned>(link.offered.size()));
    for (unsigned i = 0; i < link.offered.size(); ++i) ids.set(i, link.offered[i]);
    offer.setLevel(static_cast<uint8_t>(link.requested));
  }, true);
}

void BindLayer::received(LinkId id, const uint8_t* data, size_t size) {
  Link* link = find(id);
  if (link == nullptr) return deliver(id, data, size);
  bool bind = size >= kFrameHeader && data[4] == static_cast<uint8_t>(FrameKind::bind);
  switch (link->stage) {
    case Stage::open:
      if (link->record) {
        if (size < kFrameHeader || data[4] != kSealedFrameKind) {
          // A frame in clear where only sealed ones may come: dropped like a forgery.
          stats().sealedFramesDropped.fetch_add(1, std::memory_order_relaxed);
          return forged(id, *link);
        }
        bool replayed = false;
        std::optional<std::span<const uint8_t>> inner =
            link->record->openInPlace({data, size}, &replayed);
        if (inner) return deliver(id, inner->data(), inner->size());
        if (!replayed) forged(id, *link);
        return;
      }
      return deliver(id, data, size);
    case Stage::awaiting:
      if (bind) return serverChoose(id, *link, data, size);
      // A client without providers: the link runs at none, and calls below this process's
      // minimum are refused where they are served.
      open(id, *link);
      return deliver(id, data, size);
    case Stage::offered:
    case Stage::exchanging:
      if (!bind) return fail(id, *link, "the peer sent a frame of another kind during the bind exchange");
      return onBind(id, *link, data, size);
    case Stage::connecting:
      return fail(id, *link, "the server spoke before the client's offer");
    case Stage::failed:
      return;
  }
}

void BindLayer::sendFailed(LinkId link, uint64_t callId, const std::string& why) {
  _above->sendFailed(link, callId, why);
}

void BindLayer::ended(LinkId id, const LinkInfo& info, LinkEnd how, const std::string& why) {
  std::shared_ptr<Link> link;
  {
    std::lock_guard lock(_mutex);
    auto it = _links.find(id);
    if (it != _links.end()) {
      link = std::move(it->second);
      _links.erase(it);
    }
  }
  // The endpoint hears of every link's end, announced or not: it sent calls on it.
  _above->ended(id, link && link->announced ? link->info : info, how, why);
}

void BindLayer::tick(std::chrono::steady_clock::time_point now) {
  std::vector<LinkId> late;
  for (auto& [id, link] : _links) {
    if (link->stage == Stage::open || link->stage == Stage::connecting) continue;
    if (now - link->since > kExchangeTimeout) late.push_back(id);
  }
  for (LinkId id : late) {
    Link* link = find(id);
    if (link == nullptr) continue;
    if (link->stage != Stage::failed) {
      fail(id, *link, "the bind exchange did not finish within 10 s");
    } else if (!link->rejected) {
      link->rejected = true;
      _below.reject(id, "the peer kept a connection open after its bind exchange failed");
    }
  }
  _above->tick(now);
}

// ---- the exchange --------------------------------------------------------------------------------

void BindLayer::sendBind(LinkId id, Link& link,
                         const std::function<void(capnp::MessageBuilder&)>& fill,
                         bool transcript) {
  capnp::MallocMessageBuilder message;
  fill(message);
  std::vector<uint8_t> frame = encodeFrame(FrameKind::bind, 0, Oxid(), message);
  if (transcript) (link.client ? link.offer : link.choice) = frame;
  _below.send(id, std::move(frame));
}

void BindLayer::onBind(LinkId id, Link& link, const uint8_t* data, size_t size) {
  if (link.client && link.stage == Stage::offered) return clientChosen(id, link, data, size);
  BindMessage bind;
  try {
    bind = readBind(data, size, link.provider->table->max_token_size);
  } catch (const Error& e) {
    return fail(id, link, "a malformed bind message: " + e.message());
  }
  switch (bind.kind) {
    case BindMessage::Kind::token:
      if (link.stepsDone) return fail(id, link, "a token after the provider was done");
      return step(id, link, bind.token.data(), bind.token.size(), false);
    case BindMessage::Kind::accept:
      if (!link.client) return fail(id, link, "an accept out of turn");
      if (link.stepsDone) {
        if (!bind.token.empty()) return fail(id, link, "a token after the provider was done");
        return finish(id, link);
      }
      return step(id, link, bind.token.data(), bind.token.size(), true);
    case BindMessage::Kind::refusal:
      return fail(id, link, "the server refused the bind exchange");
    default:
      return fail(id, link, "a bind message out of turn");
  }
}

void BindLayer::serverChoose(LinkId id, Link& link, const uint8_t* data, size_t size) {
  BindMessage offer;
  try {
    offer = readBind(data, size, 0);
  } catch (const Error& e) {
    return fail(id, link, "a malformed offer: " + e.message());
  }
  if (offer.kind != BindMessage::Kind::offer) {
    return fail(id, link, "a bind exchange that began without an offer");
  }
  const std::vector<uint8_t>& offered = offer.providers;
  SecurityLevel requested = offer.level;
  link.offer.assign(data, data + size);
  link.stage = Stage::exchanging;
  SecurityLevel level = std::max(requested, _providers.minimum());
  // At level none no provider runs: the link is anonymous, as a client without providers' is.
  const Provider* chosen = nullptr;
  for (const Provider& p : _providers.list()) {
    if (level != SecurityLevel::none && p.fits(link.info.transportCapabilities) &&
        p.highest() >= level &&
        std::find(offered.begin(), offered.end(), p.id()) != offered.end()) {
      chosen = &p;
      break;
    }
  }
  if (chosen == nullptr && level != SecurityLevel::none) {
    return fail(id, link, "the client's offer has no provider this process runs at level " +
                              std::string(toString(level)) +
                              " over this transport (RuntimeOptions::security, minimumLevel)");
  }
  if (chosen != nullptr && chosen->kernelProtected()) level = SecurityLevel::privacy;
  link.provider = chosen;
  link.level = level;
  sendBind(id, link, [&](capnp::MessageBuilder& message) {
    auto choice = message.initRoot<wire::Bind>().initChoice();
    choice.setProvider(chosen != nullptr ? chosen->id() : 0);
    choice.setLevel(static_cast<uint8_t>(level));
  }, true);
  if (chosen == nullptr) return open(id, link);
  ferry_security_link_v1 described{};
  described.struct_size = sizeof described;
  described.transport_capabilities = link.info.transportCapabilities;
  described.address = "";
  described.has_credentials = link.info.hasCredentials ? 1 : 0;
  described.uid = link.info.uid;
  described.gid = link.info.gid;
  described.pid = link.info.pid;
  char why[512] = {};
  int rc = chosen->table->accept_context(chosen->credentials, &described, &link.context, why,
                                         sizeof why);
  if (rc < 0) return fail(id, link, why[0] != 0 ? why : chosen->table->strerror(rc));
}

void BindLayer::clientChosen(LinkId id, Link& link, const uint8_t* data, size_t size) {
  BindMessage choice;
  try {
    choice = readBind(data, size, 0);
  } catch (const Error& e) {
    return fail(id, link, "a malformed choice: " + e.message());
  }
  if (choice.kind == BindMessage::Kind::refusal) {
    return fail(id, link, "the server refused the bind exchange: it runs none of the offered "
                          "providers at the level asked for, or did not admit this process");
  }
  if (choice.kind != BindMessage::Kind::choice) {
    return fail(id, link, "the server answered the offer out of turn");
  }
  uint8_t providerId = choice.provider;
  SecurityLevel level = choice.level;
  link.choice.assign(data, data + size);
  if (level < link.requested) {
    return fail(id, link, "the server chose level " + std::string(toString(level)) +
                              ", below this process's minimum " +
                              std::string(toString(link.requested)));
  }
  link.level = level;
  link.stage = Stage::exchanging;
  if (providerId == 0) {
    if (level != SecurityLevel::none) return fail(id, link, "the server chose a level without a provider");
    return open(id, link);
  }
  const Provider* p = _providers.find(providerId);
  if (p == nullptr ||
      std::find(link.offered.begin(), link.offered.end(), providerId) == link.offered.end() ||
      level > p->highest() || (p->kernelProtected() && level != SecurityLevel::privacy)) {
    return fail(id, link, "the server chose a provider or level this process did not offer");
  }
  link.provider = p;
  ferry_security_link_v1 described{};
  std::string address = bindingText(link.info.binding);
  described.struct_size = sizeof described;
  described.transport_capabilities = link.info.transportCapabilities;
  described.address = address.c_str();
  described.has_credentials = link.info.hasCredentials ? 1 : 0;
  described.uid = link.info.uid;
  described.gid = link.info.gid;
  described.pid = link.info.pid;
  char why[512] = {};
  int rc = p->table->init_context(p->credentials, "", &described, &link.context, why, sizeof why);
  if (rc < 0) return fail(id, link, why[0] != 0 ? why : p->table->strerror(rc));
  step(id, link, nullptr, 0, false);
}

void BindLayer::step(LinkId id, Link& link, const uint8_t* token, size_t size, bool accepted) {
  const ferry_security_v1& table = *link.provider->table;
  if (link.context == nullptr) return fail(id, link, "a token before the provider's context");
  std::vector<uint8_t> out(table.max_token_size);
  size_t written = 0;
  char why[512] = {};
  int rc = table.step(link.context, token, size, out.data(), out.size(), &written, why, sizeof why);
  if (rc < 0) return fail(id, link, why[0] != 0 ? why : table.strerror(rc));
  if (rc != FERRY_SECURITY_OK && rc != FERRY_SECURITY_CONTINUE) {
    return fail(id, link, "the provider's step returned an unknown status");
  }
  if (written > out.size()) return fail(id, link, "the provider wrote past its token buffer");
  out.resize(written);
  bool done = rc == FERRY_SECURITY_OK;
  if (link.client) {
    if (accepted) {
      if (!done || written != 0) return fail(id, link, "the provider needs more after the server accepted");
      link.stepsDone = true;
      return finish(id, link);
    }
    link.stepsDone = done;
    return sendBind(id, link, [&](capnp::MessageBuilder& message) {
      message.initRoot<wire::Bind>().setToken(kj::arrayPtr(out.data(), out.size()));
    }, false);
  }
  if (!done) {
    return sendBind(id, link, [&](capnp::MessageBuilder& message) {
      message.initRoot<wire::Bind>().setToken(kj::arrayPtr(out.data(), out.size()));
    }, false);
  }
  link.stepsDone = true;
  // Keyed before the accept leaves: the client's first sealed frame may follow it at once.
  finish(id, link);
  if (link.stage != Stage::open) return;
  _below.send(id, [&] {
    capnp::MallocMessageBuilder message;
    message.initRoot<wire::Bind>().setAccept(kj::arrayPtr(out.data(), out.size()));
    return encodeFrame(FrameKind::bind, 0, Oxid(), message);
  }());
}

void BindLayer::finish(LinkId id, Link& link) {
  const Provider& p = *link.provider;
  ferry_security_peer_v1 peer{};
  peer.struct_size = sizeof peer;
  if (p.table->query_peer(link.context, &peer) < 0) return fail(id, link, "the provider cannot say who the peer is");
  peer.principal[sizeof peer.principal - 1] = 0;
  std::shared_ptr<RecordLayer> record;
  if (!p.kernelProtected()) {
    std::vector<uint8_t> transcript = link.offer;
    transcript.insert(transcript.end(), link.choice.begin(), link.choice.end());
    auto hash = security::sha256(transcript);
    std::array<uint8_t, RecordLayer::kSecretSize> secret{};
    int rc = p.table->export_secret(link.context, kExportLabel, hash.data(), hash.size(),
                                    secret.data(), secret.size());
    if (rc < 0) return fail(id, link, p.table->strerror(rc));
    if (link.level == SecurityLevel::none) return fail(id, link, "a provider chosen at level none");
    record = std::make_shared<RecordLayer>(secret, link.client, link.level);
    OPENSSL_cleanse(secret.data(), secret.size());
  }
  p.table->free_context(link.context);
  link.context = nullptr;
  link.info.level = link.level;
  link.info.provider = p.name;
  link.info.principal = peer.principal;
  {
    std::lock_guard lock(_mutex);
    link.record = std::move(record);
  }
  open(id, link);
}

void BindLayer::open(LinkId id, Link& link) {
  {
    std::lock_guard lock(_mutex);
    link.stage = Stage::open;
  }
  link.announced = true;
  _above->opened(id, link.info);
  for (auto& frame : std::exchange(link.queued, {})) send(id, std::move(frame));
}

void BindLayer::fail(LinkId id, Link& link, const std::string& why) {
  if (link.stage == Stage::failed) return;
  bool server = !link.client;
  {
    std::lock_guard lock(_mutex);
    link.stage = Stage::failed;
  }
  link.since = std::chrono::steady_clock::now();
  stats().bindsRefused.fetch_add(1, std::memory_order_relaxed);
  std::string where = link.client ? bindingText(link.info.binding) : std::string("a client");
  FERRY_LOG(warn, "the bind exchange with " << where << " failed: " << why);
  link.failure = "the connection to " + where + " could not be secured: " + why +
                 "; check RuntimeOptions::security and RuntimeOptions::minimumLevel at both ends (for "
                 "ferryd: its security and minimum_level settings)";
  if (server) {
    // One generic refusal, whatever the cause; the client closes the connection.
    capnp::MallocMessageBuilder message;
    message.initRoot<wire::Bind>().setRefusal();
    _below.send(id, encodeFrame(FrameKind::bind, 0, Oxid(), message));
  }
  for (auto& frame : std::exchange(link.queued, {})) {
    _above->sendFailed(id, frameCallId(frame), link.failure);
  }
  if (!server) {
    link.rejected = true;
    _below.reject(id, "its bind exchange failed");
  }
}

void BindLayer::forged(LinkId id, Link& link) {
  if (++link.forgeries != kForgeryLimit) return;
  stats().linksClosedForForgeries.fetch_add(1, std::memory_order_relaxed);
  std::string where = link.client ? bindingText(link.info.binding) : std::string("a client");
  FERRY_LOG(warn, "closing the connection with " << where << ": " << kForgeryLimit
                                                 << " of its frames failed to open");
  _below.reject(id, "too many of its protected frames failed to open");
}

void BindLayer::deliver(LinkId id, const uint8_t* data, size_t size) {
  _above->received(id, data, size);
}

}  // namespace ferry::detail::orpc
