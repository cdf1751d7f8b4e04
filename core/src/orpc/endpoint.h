// The ORPC endpoint: this process's side of the call protocol (core/schema/orpc.capnp) over the
// links a Network gives it. It sends requests for the remote channels and delivers their
// responses (the call table, call-table.h), resends calls whose link was lost, serves requests
// from other processes into their apartments exactly once (the reply cache, reply-cache.h),
// honours cancels, and hands resolver frames to the resolver service. It knows links, not
// sockets: the transport hub is its network in a process, an in-memory network in unit tests.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "../channel.h"
#include "../dgc/ping-client.h"
#include "../dgc/ping-server.h"
#include "../resolver/service.h"
#include "call-table.h"
#include "network.h"
#include "remote-channel.h"
#include "reply-cache.h"

namespace ferry::detail {
class RuntimeImpl;
}

namespace ferry::detail::orpc {

// Whose requests and pings a link carries: the process and token they name — on a link whose
// bind exchange authenticated a principal (`blanket`), with the token bound to that principal by
// a one-way function (DCOM's secure references: another principal naming the same process and
// token, which travel readable at integrity, holds none of this caller's references or reply
// cache entries). Null or anonymous `blanket`: the key as named.
CallerKey callerKeyOf(uint64_t process, uint64_t token, const ClientBlanket* blanket);

class Endpoint final : public LinkEvents, public RequestSender, public ReplyReader {
public:
  Endpoint(RuntimeImpl& runtime, Network& network);
  Endpoint(const Endpoint&) = delete;
  ~Endpoint() override;

  // A channel to exporter `oxid` through `binding`.
  std::shared_ptr<Channel> channel(const StringBindingData& binding, Oxid oxid,
                                   MarshalContext distance);
  ResolverService& resolver() noexcept { return _resolver; }
  // Distributed GC: this process's ping sets (as a client) and its clients (as an exporter).
  dgc::PingClient& pings() noexcept { return _pings; }
  dgc::PingServer& pingServer() noexcept { return _pingServer; }

  // RequestSender (any thread).
  void sendRequest(const std::string& bindingKey, const StringBindingData& binding, Oxid oxid,
                   std::unique_ptr<OutgoingRequest> request, Deadline deadline,
                   std::shared_ptr<OutboundCall> call) override;
  LoopWake loopWake() const noexcept override { return _network.loopWake(); }

  // ReplyReader (any thread): the waiting thread reads `link` itself, where the network lets it,
  // and takes a response frame it reads (its own or another call's); any other frame goes to the
  // network thread.
  Outcome readReply(LinkId link, int wakeFd, std::chrono::milliseconds timeout) noexcept override;
  Outcome sendAndRead(LinkId link, uint64_t callId,
                      const std::shared_ptr<std::vector<uint8_t>>& frame, int wakeFd,
                      std::chrono::milliseconds timeout) noexcept override;
  void sendHeld(LinkId link, uint64_t callId,
                const std::shared_ptr<std::vector<uint8_t>>& frame) noexcept override;
  void abandon(LinkId link, uint64_t callId) noexcept override;

  // For replies of served calls: sends a response frame to the caller (on the link the request
  // came on, or the newest that carried a resent copy) and keeps it in the reply cache. Any
  // thread.
  void sendResponse(LinkId link, CallerKey caller, uint64_t callId,
                    std::shared_ptr<const std::vector<uint8_t>> frame);

  // LinkEvents (network thread).
  void opened(LinkId link, const LinkInfo& info) override;
  void received(LinkId link, const uint8_t* data, size_t size) override;
  void sendFailed(LinkId link, uint64_t callId, const std::string& why) override;
  void ended(LinkId link, const LinkInfo& info, LinkEnd how, const std::string& why) override;
  void tick(std::chrono::steady_clock::time_point now) override;

  // Counts, for tests and the admin view.
  size_t callsInFlight() const { return _calls.size(); }
  size_t servedCallsKept() const { return _replies.entries(); }
  // The open links and whose requests each carries, for the admin object (network thread).
  struct LinkView {
    LinkInfo info;
    uint64_t callerProcess = 0;  // 0: none yet (an outbound link, or no request came)
    LinkId link;
    size_t callsInFlight = 0;  // calls this process sent on it and awaits
  };
  std::vector<LinkView> links() const;

private:
  // What the endpoint knows of an open link (network thread).
  struct Peer {
    LinkInfo info;
    // The caller whose requests it carries (callerKeyOf its Request.caller and callerToken);
    // process 0: none yet. `named`: the process and token as its frames name them, so the key
    // is worked out once per link, not per request.
    CallerKey caller;
    CallerKey named;
    // Who the link's bind exchange says the caller is, for the calls it serves.
    std::shared_ptr<const ClientBlanket> blanket;
  };

  // The key of the caller a frame on `peer`'s link names (callerKeyOf, cached in the Peer).
  static CallerKey callerOf(const Peer& peer, uint64_t process, uint64_t token);

  void serveRequest(LinkId link, Peer& peer, uint64_t callId, Oxid oxid, bool resent,
                    OrpcMessage message);
  void serveResponse(LinkId link, uint64_t callId, OrpcMessage message);
  // readReply's FrameTaker: takes a response frame (true), leaves any other (false).
  static bool takeResponse(void* context, const uint8_t* data, size_t size) noexcept;
  // What readReply and sendAndRead share: the network's round trip, with `request` or none.
  Outcome receive(LinkId link, std::span<const uint8_t> request, int wakeFd,
                  std::chrono::milliseconds timeout) noexcept;
  void servePing(LinkId link, Peer& peer, uint64_t setName, OrpcMessage message);
  void servePingReply(uint64_t setName, OrpcMessage message);
  // Sends a tracked call's frame through the network thread, which links to `binding` first if
  // need be (the caller could not write it on an open link).
  void sendThroughNetworkThread(const std::string& key, const StringBindingData& binding,
                                uint64_t callId, std::shared_ptr<OutboundCall> call,
                                std::shared_ptr<std::vector<uint8_t>> frame);
  // Registers `entry` and lets its call cancel over the link it went out on.
  void track(uint64_t callId, CallTable::Entry entry);
  // Sends the calls of a lost link again, on new links.
  void resend(std::vector<std::pair<uint64_t, CallTable::Entry>> calls, const std::string& why);
  // Asks the exporter to cancel a call this process sent. Any thread.
  void sendCancel(uint64_t callId);
  // Sends a frame on `link`, from this thread if the transport can, else through the network
  // thread. Any thread.
  void sendAnyThread(LinkId link, std::shared_ptr<const std::vector<uint8_t>> frame);
  void reject(LinkId link, const std::string& why);

  RuntimeImpl& _runtime;
  Network& _network;
  // Request.callerToken of this process's requests: random, non-zero, never shown to a peer
  // other than in its own requests.
  const uint64_t _callerToken;
  CallTable _calls;
  ReplyCache _replies;
  ResolverService _resolver;
  dgc::PingClient _pings;
  dgc::PingServer _pingServer;
  std::unordered_map<LinkId, Peer, LinkIdHash> _peers;  // network thread

  // A binding whose link went silent (LinkEnd::silent): calls to it (not oneway messages) fail
  // `unavailable` at once, without waiting out a connect, until a link to it opens again.
  // Meanwhile one connection attempt to it is kept under way (started by a call, or by a ping),
  // so that an exporter that answers again is reached again. Network thread.
  struct Silent {
    std::chrono::steady_clock::time_point since;
    std::string why;
    LinkId attempt;  // the connection being tried; none: the next call starts one
  };
  // Fails `call` when `key` is a silent binding (starting a connection attempt to it if none is
  // under way); false otherwise.
  bool failIfSilent(const std::string& key, const StringBindingData& binding, OutboundCall& call);
  std::unordered_map<std::string, Silent> _silent;  // by binding text
};

}  // namespace ferry::detail::orpc
