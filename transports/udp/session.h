// One udp session: what the transport ABI calls a connection. It runs the handshake (client:
// HELLO, COOKIE, HELLO+cookie, HANDSHAKE; server: from a validated HELLO to the client's first
// short-header packet), then carries whole messages both ways, exactly once and in order, over
// packets that are acknowledged, declared lost and repeated under new packet numbers
// (recovery.h), paced by the congestion controller of its remote address (congestion.h), cut by
// byte offset (outbox.h) and reassembled after checks (inbox.h). It also probes the path MTU,
// keeps an idle session alive, notices a dead peer, and closes.
//
// A session never touches a socket, a clock or the host's callbacks itself: it asks its
// SessionEnv. The instance (udp-transport.h) implements SessionEnv with libuv; a test may
// implement it with a virtual network and clock.
//
// Re-entrancy: SessionEnv's event functions (established, message, ended) run host callbacks,
// which may close the session or destroy the instance. A session calls them last in whatever it
// is doing, or checks its state right after; and it is never freed while one of its functions
// runs (finished() only hands it to the instance, which frees it later).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "congestion.h"
#include "inbox.h"
#include "options.h"
#include "outbox.h"
#include "ranges.h"
#include "recovery.h"
#include "counters.h"
#include "wire.h"

namespace ferry::transports::udp {

class Session;

class SessionEnv {
public:
  // Nanoseconds on a monotonic clock.
  virtual uint64_t now() = 0;
  // Sends one datagram, in pieces, to the session's peer from its socket: 0, UV_EMSGSIZE when
  // the path cannot carry that size, or another error (the datagram is then as good as lost).
  // The pieces are valid only during the call.
  virtual int transmit(Session& session, const DatagramPieces& datagram) = 0;
  // Host events. established: a client's `connected`, or a server's `accepted`.
  virtual void established(Session& session) = 0;
  virtual void message(Session& session, const uint8_t* data, size_t size) = 0;
  // The session is over for the host: `connected` with `status` for a client still connecting,
  // else `closed` with `status`.
  virtual void ended(Session& session, int status) = 0;
  // The session needs nothing more (no packet to answer, no timer); the instance frees it once
  // the current callback has returned.
  virtual void finished(Session& session) = 0;
  // deadline() may have changed.
  virtual void deadlineChanged(Session& session) = 0;
  // The session has packets to send once its congestion controller has room.
  virtual void blocked(Session& session) = 0;
  // The session stopped sending to let the loop breathe: flush it again soon.
  virtual void wantFlush(Session& session) = 0;
  virtual Counters& counters() = 0;
  virtual MemoryBudget& budget() = 0;
  virtual void log(int level, const std::string& message) = 0;

protected:
  ~SessionEnv() = default;
};

struct SessionConfig {
  enum class Role { client, server };
  Role role = Role::client;
  uint64_t localId = 0;            // the id peers put in dst_session to reach this session
  sockaddr_storage peer{};
  void* socket = nullptr;          // the instance's socket, opaque here
  std::shared_ptr<CongestionController> controller;
  const Options* options = nullptr;
  uint64_t maxMessageSize = 0;     // what this side accepts and sends at most
  uint64_t epoch = 0;              // a server's own server_epoch
  // Carried by this session's CLOSE frames, announced to the peer in the handshake: a CLOSE that
  // does not carry the peer's token is not the peer's (random, non-zero).
  uint64_t closeToken = 0;
  const uint8_t* clientInstance = nullptr;  // kInstanceIdSize bytes, for a client's HELLO
  size_t pathMaxDatagram = kBaseDatagramSize;  // the local route's MTU, as a UDP payload
  std::string peerText;            // "1.2.3.4:5" for logs and peer info
};

class Session {
public:
  enum class State {
    connecting,  // client: HELLO or HELLO+cookie sent, waiting for HANDSHAKE
    halfOpen,    // server: HANDSHAKE sent, waiting for the client's first short-header packet
    open,
    closing,     // closed by this side: answers the peer's packets with CLOSE for a while
    draining,    // closed by the peer: ignores its packets for a while
    finished,    // handed back to the instance
  };

  Session(SessionEnv& env, SessionConfig config);

  // True when a peer's handshake parameters leave a session able to work (version 1 requires
  // every transport parameter; `none` must be among the providers).
  static bool usableParams(const Params& params);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Client: starts the handshake; it must finish by `connectDeadline`.
  void startClient(uint64_t connectDeadline);
  // Server: a HELLO with a valid cookie created this session.
  void startServer(const Params& hello, uint64_t helloPn, uint64_t clientSession);

  // Packets the instance routed here (CRC checked, header decoded, from the session's peer).
  void onCookie(const Frame& cookie);
  void onHelloAgain(uint64_t pn);
  void onHandshakePacket(const Header& header, const uint8_t* frames, size_t size);
  void onShortPacket(const Header& header, const uint8_t* frames, size_t size);
  // A REJECT naming this session's remote id and echoing packet number `echoedPn`. Closes the
  // session with UV_ECONNRESET and returns true when the REJECT is plausible.
  bool onReject(uint64_t echoedPn, uint64_t epoch);

  // Host requests. send: 0, UV_ENOTCONN or UV_EMSGSIZE.
  int send(const uint8_t* data, size_t size);
  // send() of a message whose `size` bytes the session takes over (null for an empty message).
  int send(std::unique_ptr<uint8_t[]> bytes, size_t size);
  // The largest message the peer takes (known once the session is open).
  uint64_t peerMaxMessage() const noexcept { return _peerMaxMessage; }
  // Whether messages the host sent wait to be sent (for the window, pacing or a flush).
  bool hasSendable() { return _outbox && _outbox->hasSendable(); }
  // The host closed an open session: CLOSE goes out, the session lingers in `closing`.
  void closeByHost();
  // The host gave up on a connecting session, or the instance is going away: no event, no
  // packet (but CLOSE for an open session when `sayGoodbye`).
  void abandon(bool sayGoodbye);

  // Sends what is due and allowed now.
  void flush();
  // Handles every deadline that has passed.
  void onTimer();
  // The next time onTimer() has work (0: none).
  uint64_t deadline() const;

  State state() const noexcept { return _state; }
  // True once the session was open (the host heard `connected` or `accepted`).
  bool established() const noexcept { return _established; }
  SessionConfig::Role role() const noexcept { return _config.role; }
  uint64_t localId() const noexcept { return _config.localId; }
  uint64_t remoteId() const noexcept { return _remoteId; }
  const sockaddr_storage& peer() const noexcept { return _config.peer; }
  const std::string& peerText() const noexcept { return _config.peerText; }
  void* socket() const noexcept { return _config.socket; }
  CongestionController& controller() const noexcept { return *_config.controller; }
  uint64_t serverEpoch() const noexcept { return _epoch; }
  size_t maxDatagramSize() const noexcept { return _maxDatagram; }
  // The bytes the congestion window must have room for before a blocked session can go on.
  size_t blockedOn() const noexcept { return _blockedOn; }
  const RttEstimator& rtt() const noexcept { return _recovery.rtt(); }

  // The host's connection id (0 while it has none: a server's session before `accepted`).
  uint64_t conn() const noexcept { return _conn; }
  void setConn(uint64_t conn) noexcept { _conn = conn; }

  // Its state in a few lines, for diagnostics.
  std::string describe() const;

  // Levels for the instance's counters.
  uint64_t reassemblyBytes() const noexcept { return _inbox ? _inbox->bytesHeld() : 0; }
  uint64_t sendQueueBytes() const noexcept { return _outbox ? _outbox->bytesQueued() : 0; }
  size_t packetsOutstanding() const noexcept { return _recovery.outstanding(); }
  // This session's share of the instance's packets_lost and bytes_retransmitted.
  uint64_t packetsLost() const noexcept { return _packetsLost; }
  uint64_t bytesRetransmitted() const noexcept { return _bytesRetransmitted; }

private:
  uint64_t now() { return _env.now(); }
  // Why send() would refuse a message of `size` bytes now (UV_ENOTCONN, UV_EMSGSIZE), or 0.
  int refusal(size_t size) const noexcept;
  bool expired(uint64_t deadline, uint64_t now) const noexcept;
  uint64_t maxAckDelayForPto() const noexcept;
  uint64_t idleTimeoutNs() const noexcept;
  uint64_t closingPeriodNs() const noexcept;
  uint64_t keepaliveAt() const noexcept;

  // Handshake.
  Params localParams() const;
  bool applyPeerParams(const Params& params);
  void sendHello(uint64_t now);
  void sendHandshake(uint64_t now);
  void becomeOpen(uint64_t now);

  // Receiving.
  bool isDuplicate(uint64_t pn) const;
  void recordReceived(uint64_t pn, bool ackEliciting, uint64_t now);
  bool buildAck(AckFrame& ack, uint64_t now) const;
  bool handleAck(const AckFrame& ack, uint64_t now);
  void handleLost(std::vector<SentPacket>& lost, uint64_t now);
  void onLossTimer(uint64_t now);
  // Marks what a sent frame carried as due again: for a lost packet, and for a PTO probe (which
  // repeats the oldest packet). Pings and PMTU probes are not repeated.
  void sendAgain(const SentFrame& frame);
  void onViolation(const char* what);
  void deliverReady();

  // Sending.
  void sendShortPackets(uint64_t now);
  bool sendPmtuProbe(uint64_t now, uint8_t* buffer);
  void sendClose(uint64_t reason);
  void finishPacket(Writer& out, uint64_t now, bool ackEliciting, bool inFlight, bool probe,
                    bool immediateAck = false);

  // PMTU.
  size_t nextProbeSize() const noexcept;
  bool pmtuProbeDue() const noexcept;
  void probeSucceeded(size_t size, uint64_t now);
  void probeFailed(size_t size, uint64_t now);
  void checkBlackHole(uint64_t now);

  // Endings.
  void release();
  void enterClosing(uint64_t reason);
  void finish();

  SessionEnv& _env;
  SessionConfig _config;
  const Options& _options;
  State _state = State::connecting;
  bool _established = false;
  uint64_t _remoteId = 0;
  uint64_t _conn = 0;
  uint64_t _epoch = 0;  // the server's epoch (a client learns it from COOKIE and HANDSHAKE)

  Recovery _recovery;
  std::unique_ptr<Inbox> _inbox;
  std::unique_ptr<Outbox> _outbox;

  // Receiving: packet numbers seen, and the ACK owed for them.
  RangeSet _received;
  uint64_t _receivedFloor = 0;  // everything below was received or is too old to matter
  bool _hasReceived = false;
  uint64_t _largestReceived = 0;
  uint64_t _largestReceivedAt = 0;
  bool _ackPending = false;
  bool _ackNow = false;
  uint32_t _elicitingSinceAck = 0;
  uint64_t _ackDeadline = 0;

  // Sending.
  uint64_t _nextPn = 0;
  uint64_t _peerMaxMessage = 0;
  uint64_t _localMaxAckDelayNs;
  uint64_t _peerMaxAckDelayNs = 0;
  uint64_t _peerCloseToken = 0;  // 0: the peer announced none, and no CLOSE is believed
  uint64_t _idleNs;
  size_t _maxDatagram = kBaseDatagramSize;
  size_t _peerMaxDatagram = kBaseDatagramSize;
  bool _helloDue = false;
  bool _handshakeDue = false;
  bool _pingDue = false;
  bool _keepaliveDue = false;
  bool _sessionCreditDue = false;
  uint32_t _probesDue = 0;
  // The peer answered kSilentPeerPtos PTOs in a row with nothing (a killed process, a dead
  // path): what this session has outstanding no longer counts in the bytes in flight of the
  // controller it shares with the other sessions to that address, and it sends nothing
  // ack-eliciting but its probes (which do not count either) until an ACK comes, or until
  // nothing it sent is outstanding any more.
  bool _peerSilent = false;
  uint64_t _pacingWakeup = 0;
  size_t _blockedOn = 0;
  std::vector<SentFrame> _frames;  // of the packet being built
  // DATA payloads the packet being built leaves in the outbox: `length` bytes at `offset` of the
  // packet buffer are a hole (Writer::skip) that `bytes` fills when the datagram is sent.
  struct Hole {
    size_t offset;
    const uint8_t* bytes;
    size_t length;
  };
  std::vector<Hole> _holes;

  // Timers.
  uint64_t _created = 0;
  uint64_t _lastReceive = 0;
  uint64_t _lastPing = 0;
  uint64_t _connectDeadline = 0;
  uint64_t _closeDeadline = 0;

  // Handshake.
  uint8_t _nonce[kNonceSize] = {};
  bool _haveCookie = false;
  uint8_t _cookie[kCookieSize] = {};
  uint32_t _cookieRounds = 0;
  uint32_t _hellosSent = 0;

  // PMTU.
  size_t _probeInFlight = 0;
  uint32_t _probeFailures = 0;
  size_t _probeCeiling = 0;   // sizes at or above this are not probed again before _nextProbeAt
  uint32_t _largeLostInRow = 0;       // large packets lost since one was last acknowledged
  uint64_t _packetsLost = 0;
  uint64_t _bytesRetransmitted = 0;
  bool _smallAckedSinceLoss = false;  // ... while a small packet got through
  uint64_t _nextProbeAt = 0;  // when the next probe becomes due (0: not scheduled)
  bool _probeReady = false;   // a probe is due: it goes once the congestion window allows

  // Closing.
  uint64_t _closeReason = 0;
  uint32_t _closesSent = 0;
  uint32_t _violations = 0;
};

}  // namespace ferry::transports::udp
