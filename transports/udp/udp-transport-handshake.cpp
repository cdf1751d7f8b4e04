// The udp instance (udp-transport.h): the long-header packets (HELLO, COOKIE, HANDSHAKE,
// REJECT) and the short-header packets routed to their sessions.
#include "udp-transport.h"

namespace ferry::transports::udp {

void UdpTransport::handleHello(UdpSocket& socket, const Header& header, const uint8_t* frames,
                               size_t framesSize, size_t size, const sockaddr_storage& from) {
  ++_counters.hellos_received;
  unvalidated(size);
  if (!socket.listener) {
    dropped(_counters.dropped_unexpected, "HELLO on a socket that does not listen", from);
    return;
  }
  if (size < kBaseDatagramSize) {
    // Unpadded HELLOs would let a spoofer get COOKIEs out of small datagrams.
    dropped(_counters.dropped_unexpected, "HELLO shorter than 1200 bytes", from);
    return;
  }
  Reader in(frames, framesSize);
  Frame frame;
  Params params;
  bool haveParams = false;
  bool haveCrypto = false;
  while (readFrame(in, frame)) {
    if (frame.type == FrameType::padding) continue;
    if (frame.type == FrameType::helloParams && !haveParams) {
      haveParams = readParams(frame.params, frame.paramsSize, params);
      if (!haveParams) break;
    } else if (frame.type == FrameType::crypto && !haveCrypto && frame.crypto.offset == 0 &&
               frame.crypto.length == 0) {
      haveCrypto = true;  // the `none` provider's empty token
    } else {
      haveParams = false;
      break;
    }
  }
  if (in.failed() || !haveParams || !params.hasNonce || header.dst != 0 || header.src == 0) {
    dropped(_counters.dropped_malformed, "malformed HELLO", from);
    return;
  }
  if (!Session::usableParams(params)) {
    dropped(_counters.dropped_unexpected, "HELLO with parameters this server cannot use", from);
    return;
  }
  std::string key = helloKey(from, header.src);
  if (auto found = _helloIndex.find(key); found != _helloIndex.end()) {
    // The client repeats itself: the HANDSHAKE went missing. The address is validated already.
    found->second->onHelloAgain(header.pn);
    markDirty(*found->second);
    return;
  }
  uint64_t t = uv_hrtime();
  if (!params.hasCookie || !_cookies->verify(from, params.nonce, header.src, params.cookie, t)) {
    // Stateless: a COOKIE, smaller than the HELLO, and nothing remembered.
    if (!_cookieLimiter.allow(from, t)) {
      dropped(_counters.cookies_rate_limited, "COOKIE rate limit", from);
      return;
    }
    uint8_t buffer[kLongHeaderSize + 1 + kCookieSize + 8 + kCrcSize];
    Writer out(buffer, sizeof(buffer));
    writeLongHeader(out, PacketType::cookie, header.src, 0, 0);
    uint8_t cookie[kCookieSize];
    _cookies->make(from, params.nonce, header.src, t, cookie);
    writeCookieFrame(out, cookie, _epoch);
    writeCrc(out);
    if (out.overflow() || out.size() > size) return;
    ++_counters.cookies_sent;
    sendUnvalidated(socket, from, out.data(), out.size());
    return;
  }
  if (!haveCrypto) {
    dropped(_counters.dropped_malformed, "HELLO with a cookie but no CRYPTO frame", from);
    return;
  }
  if (!admitServerSession(from)) return;
  if (_halfOpen >= _options.halfOpenMax) {
    dropped(_counters.half_open_refused, "half-open sessions at their limit", from);
    return;
  }
  std::unique_ptr<Session> owned = makeSession(SessionConfig::Role::server, socket, from);
  Session& session = *owned;
  _sessions.emplace(session.localId(), std::move(owned));
  _helloIndex.emplace(std::move(key), &session);
  SourceSessions& source = _bySource[hostKey(from)];
  ++source.sessions;
  source.halfOpen.push_back(&session);
  ++_halfOpen;
  ++_counters.server_sessions_created;
  session.startServer(params, header.pn, header.src);
  markDirty(session);
}

void UdpTransport::handleCookie(UdpSocket& socket, const Header& header, const uint8_t* frames,
                                size_t framesSize, const sockaddr_storage& from) {
  Session* session = routed(socket, header.dst, from);
  if (session == nullptr || session->role() != SessionConfig::Role::client) {
    dropped(_counters.dropped_unexpected, "COOKIE for no handshake of ours", from);
    return;
  }
  Reader in(frames, framesSize);
  Frame frame;
  Frame cookie;
  bool haveCookie = false;
  while (readFrame(in, frame)) {
    if (frame.type == FrameType::padding) continue;
    if (frame.type != FrameType::cookie || haveCookie) {
      haveCookie = false;
      break;
    }
    cookie = frame;
    haveCookie = true;
  }
  if (in.failed() || !haveCookie) {
    dropped(_counters.dropped_malformed, "malformed COOKIE", from);
    return;
  }
  session->onCookie(cookie);
  markDirty(*session);
}

void UdpTransport::handleHandshake(UdpSocket& socket, const Header& header,
                                   const uint8_t* frames, size_t framesSize,
                                   const sockaddr_storage& from) {
  Session* session = routed(socket, header.dst, from);
  if (session == nullptr) {
    dropped(findSession(header.dst) == nullptr ? _counters.dropped_unknown_session
                                               : _counters.dropped_wrong_address,
            "HANDSHAKE for no session of ours", from);
    return;
  }
  session->onHandshakePacket(header, frames, framesSize);
  if (session->state() != Session::State::finished && !_destroying) markDirty(*session);
}

void UdpTransport::handleReject(UdpSocket& socket, const Header& header, const uint8_t* frames,
                                size_t framesSize, const sockaddr_storage& from) {
  Reader in(frames, framesSize);
  Frame frame;
  bool haveReject = readFrame(in, frame) && frame.type == FrameType::reject;
  if (!haveReject || !in.atEnd()) {
    dropped(_counters.dropped_malformed, "malformed REJECT", from);
    return;
  }
  // A REJECT names the session id we address the peer with, and echoes the packet number that
  // drew it: without crypto, that is what an off-path attacker cannot guess. Never answered.
  auto [first, last] = _byRemote.equal_range(header.dst);
  for (auto it = first; it != last; ++it) {
    Session* session = it->second;
    if (session->socket() != &socket || !sameEndpoint(session->peer(), from)) continue;
    if (session->onReject(header.pn, frame.epoch)) return;
  }
  dropped(_counters.rejects_ignored, "REJECT for no session of ours", from);
}

void UdpTransport::handleShort(UdpSocket& socket, const Header& header, const uint8_t* frames,
                               size_t framesSize, size_t size, const sockaddr_storage& from) {
  Session* session = routed(socket, header.dst, from);
  if (session == nullptr) {
    unvalidated(size);
    if (findSession(header.dst) != nullptr) {
      dropped(_counters.dropped_wrong_address, "a session's packet from another address", from);
      return;
    }
    dropped(_counters.dropped_unknown_session, "packet for an unknown session", from);
    maybeReject(socket, header, size, from);
    return;
  }
  session->onShortPacket(header, frames, framesSize);
  if (session->state() != Session::State::finished && !_destroying) markDirty(*session);
}

void UdpTransport::maybeReject(UdpSocket& socket, const Header& header, size_t size,
                               const sockaddr_storage& from) {
  if (size < kRejectSize) return;  // a REJECT would be larger than what drew it
  if (!_rejectLimiter.allow(from, uv_hrtime())) {
    ++_counters.rejects_rate_limited;
    return;
  }
  uint8_t buffer[kRejectSize];
  Writer out(buffer, sizeof(buffer));
  writeLongHeader(out, PacketType::reject, header.dst, 0, header.pn);
  writeReject(out, kRejectUnknownSession, _epoch);
  writeCrc(out);
  if (out.overflow() || out.size() > size) return;
  ++_counters.rejects_sent;
  sendUnvalidated(socket, from, out.data(), out.size());
}


}  // namespace ferry::transports::udp
