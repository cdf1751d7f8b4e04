// The bind layer: security between the ORPC endpoint and the network (core/schema/orpc.capnp
// specifies the exchange and the sealed frames; core/src/security/README.md the design).
//
// It is a Network to the endpoint and the LinkEvents of the network below (the transport hub).
// On each link it runs the bind exchange first — the client's offer, the server's choice, the
// provider's tokens — holding back the frames the endpoint sends until it is done, then keys the
// record layer and seals every frame it sends and opens every frame it receives. The endpoint
// hears a link `opened` only once the exchange is done, with the level, provider and principal
// in its LinkInfo; it never sees a bind or sealed frame. Without providers on the client, a link
// carries no exchange and its frames pass as they are.
//
// Threading: LinkEvents and the Network functions marked "network thread" run on the network's
// thread, as below; sendNow() and openLink() on any thread (the link table has a lock; the
// record layer one per direction).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "../security/providers.h"
#include "../security/record.h"
#include "network.h"

namespace ferry::detail::orpc {

// One bind frame as the exchange reads it (core/schema/orpc.capnp's Bind), checked as far as it
// can be without the link's state: the frame's header, the message's structure, an offer's
// version, level and provider count, a choice's level, a token's size.
struct BindMessage {
  enum class Kind { offer, choice, token, accept, refusal };
  Kind kind = Kind::refusal;
  std::vector<uint8_t> providers;          // offer: the provider ids, the client's preference first
  SecurityLevel level = SecurityLevel::none;  // offer: the least the client accepts; choice: chosen
  uint8_t provider = 0;                    // choice: the chosen id (0: none, at level none)
  std::vector<uint8_t> token;              // token, accept
};

// Reads a bind frame whose tokens may be at most `maxToken` bytes. Throws protocolError with a
// sentence saying what is wrong (a malformed Cap'n Proto message included).
BindMessage readBind(const uint8_t* data, size_t size, size_t maxToken);

class BindLayer final : public Network, public LinkEvents {
public:
  // An exchange not done by then ends its link.
  static constexpr std::chrono::seconds kExchangeTimeout{10};
  // A protected link on which this many frames fail to open (malformed, a clear frame, a tag
  // that does not verify; replays are not counted) is closed (RuntimeStats::
  // linksClosedForForgeries): a peer that cannot seal is not kept. Low enough to end a forger
  // early, high enough that a few corrupted datagrams do not end a healthy link.
  static constexpr int kForgeryLimit = 32;

  // `providers` outlives this layer; `below` is the network it wraps. Call attach() before
  // links open.
  BindLayer(const security::Providers& providers, Network& below);
  BindLayer(const BindLayer&) = delete;
  ~BindLayer() override;

  // Where link events go once the exchange is done (the endpoint).
  void attach(LinkEvents& above) noexcept { _above = &above; }

  // Network.
  void post(std::function<void()> task) override { _below.post(std::move(task)); }
  bool stopping() const noexcept override { return _below.stopping(); }
  std::optional<LinkId> linkTo(const StringBindingData& binding, std::string* why) override;
  void send(LinkId link, std::vector<uint8_t> frame) override;
  void reject(LinkId link, const std::string& why) override { _below.reject(link, why); }
  std::optional<LinkId> openLink(const std::string& bindingKey) override;
  bool sendNow(LinkId link, std::span<const uint8_t> frame) override;
  // Frames of a link without a record layer only: a sealed frame is opened on the network thread,
  // which counts what fails to open.
  ReadOutcome receiveNow(LinkId link, std::span<const uint8_t> request, int wakeFd,
                         std::chrono::milliseconds timeout, FrameTaker take,
                         void* context) override;
  LoopWake loopWake() const noexcept override { return _below.loopWake(); }
  std::vector<StringBindingData> bindings() const override { return _below.bindings(); }

  // LinkEvents.
  void opened(LinkId link, const LinkInfo& info) override;
  void received(LinkId link, const uint8_t* data, size_t size) override;
  void sendFailed(LinkId link, uint64_t callId, const std::string& why) override;
  void ended(LinkId link, const LinkInfo& info, LinkEnd how, const std::string& why) override;
  void tick(std::chrono::steady_clock::time_point now) override;

private:
  enum class Stage {
    connecting,  // client: the transport is opening the link
    offered,     // client: the offer went out; waiting for the choice
    awaiting,    // server: nothing received yet
    exchanging,  // tokens go back and forth
    open,        // done: frames flow (sealed when `record` is set)
    failed,      // refused; waiting for the link to end
  };
  struct Link;

  Link* find(LinkId link);
  // Client: sends the offer, or opens the link at none when no provider fits it.
  void begin(LinkId id, Link& link);
  void onBind(LinkId id, Link& link, const uint8_t* data, size_t size);
  void serverChoose(LinkId id, Link& link, const uint8_t* frame, size_t size);
  void clientChosen(LinkId id, Link& link, const uint8_t* frame, size_t size);
  // Runs the provider's step on `token`; sends what the exchange needs next.
  void step(LinkId id, Link& link, const uint8_t* token, size_t size, bool accepted);
  // The provider is done at both ends: keys the record layer and lets the frames go.
  void finish(LinkId id, Link& link);
  void open(LinkId id, Link& link);
  // Ends the exchange: the peer gets the generic refusal (from a server), waiting frames fail.
  void fail(LinkId id, Link& link, const std::string& why);
  void sendBind(LinkId id, Link& link, const std::function<void(capnp::MessageBuilder&)>& fill,
                bool transcript);
  void deliver(LinkId id, const uint8_t* data, size_t size);
  // A frame on `link` failed to open: counted, and the link closed at kForgeryLimit.
  void forged(LinkId id, Link& link);

  const security::Providers& _providers;
  Network& _below;
  LinkEvents* _above = nullptr;
  std::mutex _mutex;  // guards the map (any-thread senders look links up)
  std::unordered_map<LinkId, std::shared_ptr<Link>, LinkIdHash> _links;
};

}  // namespace ferry::detail::orpc
