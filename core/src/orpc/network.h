// The seam between ORPC and the transports, as Cap'n Proto's VatNetwork is for its RPC system:
// what the ORPC endpoint and the resolver need of the network (`Network`, implemented by the
// transport hub over the plugins, and by an in-memory network in the unit tests), and the
// events the network reports to them (`LinkEvents`).
//
// Threading: a network has one thread (the hub's I/O loop). Every LinkEvents call and every
// Network function marked "network thread" run on it; post() gets there from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <ferry/marshal.h>
#include <ferry/security.h>

#include "../loop-wake.h"
#include "../objref.h"
#include "link.h"

namespace ferry::detail::orpc {

// What the network knows of a link, as it opened.
struct LinkInfo {
  bool outbound = false;
  StringBindingData binding;  // outbound: where it goes
  // How far the peer is: local for a transport that only reaches this host, else
  // differentMachine (an address may be anywhere).
  MarshalContext distance = MarshalContext::differentMachine;
  // The peer's credentials as the kernel gave them (a transport that carries them: the pipe).
  bool hasCredentials = false;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int32_t pid = 0;
  // The link's transport's FERRY_TRANSPORT_* capability bits (the security providers that fit).
  uint32_t transportCapabilities = 0;
  // What the bind exchange (bind.h) established: the level the record layer applies, the
  // provider ("" at none) and the peer's principal ("" when anonymous).
  ferry::SecurityLevel level = ferry::SecurityLevel::none;
  std::string provider;
  std::string principal;
  // The link's transport (its protseq) and the peer as the transport names it (inbound: the
  // address it printed, e.g. "127.0.0.1:40312"; outbound: the binding), for the admin object.
  std::string protseq;
  std::string peer;
};

// What a thread that tried to read its link itself got (Network::receiveNow).
enum class ReadOutcome {
  taken,   // `take` took a frame
  waited,  // none taken: the wait ended (woken, timed out), or a frame went to the network thread
  cannot,  // not now, or not on this link: the network thread reads it; wait to be handed frames
};

// Offered each frame a thread reads itself (Network::receiveNow): true when it took the frame
// (then `data` is its during the call only); false leaves it, and what follows it, to the network
// thread's LinkEvents::received.
using FrameTaker = bool (*)(void* context, const uint8_t* data, size_t size) noexcept;

// How a link ended.
enum class LinkEnd {
  neverOpened,  // an outbound link that could not be opened
  closed,       // the peer or this process closed it cleanly
  lost,         // it closed with an error: what was sent may or may not have arrived
                // (also a link this process rejected: its peer did not go away)
  shutdown,     // this process stops
  // The peer went silent: the transport heard nothing from it within its timeout (`closed` with
  // UV_ETIMEDOUT, transport.h). What was sent may or may not have arrived, and the peer is taken
  // for unreachable rather than reconnected to at once.
  silent,
};

class Network {
public:
  virtual ~Network() = default;

  // Runs `task` on the network thread. Any thread; throws shuttingDown once the network stops.
  virtual void post(std::function<void()> task) = 0;
  // True once the network began stopping: no new links.
  virtual bool stopping() const noexcept = 0;

  // Network thread: the link to `binding`, opened now if there is none; frames sent before it is
  // open wait for it. Null, with the reason in `why`, when it cannot even be started.
  virtual std::optional<LinkId> linkTo(const StringBindingData& binding, std::string* why) = 0;
  // Network thread: sends a frame on a link (a refusal is reported by LinkEvents::sendFailed).
  virtual void send(LinkId link, std::vector<uint8_t> frame) = 0;
  // Network thread: closes a link whose peer broke the protocol (counted as a protocol error);
  // it ends LinkEnd::lost.
  virtual void reject(LinkId link, const std::string& why) = 0;

  // Any thread: the open link to the binding with this text, if any.
  virtual std::optional<LinkId> openLink(const std::string& bindingKey) = 0;
  // Any thread: writes the frame from the calling thread; false when the transport cannot (no
  // any-thread send, the link closing, the network stopping) — then post() and send().
  virtual bool sendNow(LinkId link, std::span<const uint8_t> frame) = 0;

  // Any thread: a round trip on the calling thread, where the transport lends its connection
  // (ferry_transport_v1 receive_any_thread): takes the link's reads from the network thread,
  // writes `request` (unless empty), waits at most `timeout` for frames, or until `wakeFd` is
  // readable, and offers the frames that arrive to `take`, on this thread. A frame `take` leaves,
  // and what follows it, the network thread delivers as usual, in order. `cannot`: nothing was
  // sent, and the network thread keeps the reads.
  virtual ReadOutcome receiveNow(LinkId /*link*/, std::span<const uint8_t> /*request*/,
                                 int /*wakeFd*/, std::chrono::milliseconds /*timeout*/,
                                 FrameTaker /*take*/, void* /*context*/) {
    return ReadOutcome::cannot;
  }

  // The loop that runs the network thread, for callers that poll it (loop-wake.h).
  virtual LoopWake loopWake() const noexcept = 0;
  // Where this process listens, cheapest first.
  virtual std::vector<StringBindingData> bindings() const = 0;
};

class LinkEvents {
public:
  virtual ~LinkEvents() = default;
  // A link opened: accepted from a peer, or an outbound one connected.
  virtual void opened(LinkId link, const LinkInfo& info) = 0;
  // One whole frame arrived; `data` is valid during the call only.
  virtual void received(LinkId link, const uint8_t* data, size_t size) = 0;
  // A frame for `callId` could not be sent on the link.
  virtual void sendFailed(LinkId link, uint64_t callId, const std::string& why) = 0;
  // The link is gone (or never opened); nothing more comes for it.
  virtual void ended(LinkId link, const LinkInfo& info, LinkEnd how, const std::string& why) = 0;
  // About once a second, with the time: for expiries and retries.
  virtual void tick(std::chrono::steady_clock::time_point now) = 0;
};

}  // namespace ferry::detail::orpc
