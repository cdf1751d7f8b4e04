// The session's fixed limits and time units, shared by session.cpp (handshake, host requests,
// endings), session-receive.cpp and session-send.cpp (sending and timers).
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire.h"

namespace ferry::transports::udp {

inline constexpr uint64_t kNsPerMs = 1000000;
inline constexpr uint64_t kNsPerUs = 1000;
// Sizes a session probes upward to: Ethernet (IPv6-safe) and jumbo frames (RFC 8899 probing
// from BASE_PLPMTU; A3.4 of the design brief).
inline constexpr size_t kProbeSizes[] = {1452, 8952};
inline constexpr uint32_t kMaxProbeFailures = 3;
inline constexpr uint64_t kBlackHoleRetryNs = 1000 * kNsPerMs;
// Large packets lost in a row (no large one acknowledged since), with a small one acknowledged
// meanwhile, that make a black hole. Random loss of p makes this p^5 likely per large packet.
inline constexpr uint32_t kBlackHolePackets = 5;
// PTOs in a row without an ACK after which a peer counts as silent (session.h, _peerSilent).
inline constexpr uint32_t kSilentPeerPtos = 2;
// Packets one flush() sends before it yields to the loop (and asks to be called again).
inline constexpr int kMaxPacketsPerFlush = 256;
// ACK ranges remembered; older ones are forgotten (their packets count as received).
inline constexpr size_t kMaxReceivedRanges = 256;
// Packets of a session that break the protocol before it is closed with UV_EPROTO.
inline constexpr uint32_t kMaxViolations = 8;
// CLOSE frames sent while closing, at most (one per packet the peer still sends).
inline constexpr uint32_t kMaxCloses = 16;
inline constexpr uint32_t kMaxCookieRounds = 8;
inline constexpr uint64_t kMaxKeepaliveNs = 15000 * kNsPerMs;  // RFC 8085 §3.5, under NAT timeouts
inline constexpr uint64_t kMaxIdleMs = 24ull * 3600 * 1000;
inline constexpr uint64_t kMinClosingNs = 20 * kNsPerMs;
inline constexpr uint64_t kMaxClosingNs = 3000 * kNsPerMs;
// The smallest DATA frame worth trying to fit: its header and a byte (or an empty message).
inline constexpr size_t kMinDataFrame = 12;
// DATA payloads of at least this many bytes go from the outbox to the socket as pieces of their
// own (DatagramPieces), not copied into the packet; smaller ones cost less to copy than to gather.
inline constexpr size_t kGatherMinBytes = 1024;
// Holes per packet: a datagram has a buffer piece before, between and after them.
inline constexpr size_t kMaxHoles = (DatagramPieces::kMaxPieces - 1) / 2;

}  // namespace ferry::transports::udp
