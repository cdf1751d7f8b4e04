// The sending half of a session's message stream: whole messages in, byte ranges out as DATA
// frames, each message kept until every byte of it is acknowledged (PROTOCOL.md, "Messages").
//
// Messages are cut by byte offset, so a lost range goes out again at whatever datagram size the
// path allows by then. Lost ranges go before new bytes. New bytes respect the peer's credit: a
// message is opened (its first byte sent) only in order and only while its id is below the
// peer's max_msg_id and the totals of all messages opened stay within max_open_bytes; bytes of a
// message beyond `unscheduled` need the peer's CREDIT for that message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>

#include "ranges.h"
#include "wire.h"

namespace ferry::transports::udp {

class Outbox {
public:
  struct Chunk {
    uint64_t msgId = 0;
    uint32_t total = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    const uint8_t* bytes = nullptr;
  };

  // The peer's limits from its handshake parameters.
  void setPeerLimits(uint64_t unscheduledBytes, uint64_t maxMsgId, uint64_t maxOpenBytes) noexcept;
  void onSessionCredit(uint64_t maxMsgId, uint64_t maxOpenBytes) noexcept;
  void onCredit(uint64_t msgId, uint64_t maxOffset) noexcept;

  // Queues a copy of a message (size fits 32 bits: callers check it against the maximum).
  void push(const uint8_t* data, size_t size);
  // Queues a message whose `size` bytes the outbox takes over (null for an empty message).
  void push(std::unique_ptr<uint8_t[]> bytes, size_t size);

  // The next chunk for a DATA frame of at most `room` bytes (frame header included), marked as
  // sent; false when nothing may be sent now.
  bool next(size_t room, Chunk& chunk);
  // True when next() would find something given enough room.
  bool hasSendable();

  void onAcked(uint64_t msgId, uint32_t offset, uint32_t length);
  // The range went missing (declared lost, or repeated by a probe): it is sent again unless it
  // is acknowledged first.
  void onLost(uint64_t msgId, uint32_t offset, uint32_t length);

  bool empty() const noexcept { return _messages.empty(); }
  // One line about the oldest messages, for diagnostics.
  std::string describe() const;
  uint64_t bytesQueued() const noexcept { return _bytesQueued; }

private:
  struct Message {
    uint64_t id = 0;
    uint32_t total = 0;
    std::unique_ptr<uint8_t[]> bytes;
    uint32_t sent = 0;        // bytes below this offset went out at least once
    uint64_t credit = 0;      // the peer's CREDIT for this message
    bool opened = false;
    bool emptySent = false;   // for a message of 0 bytes: its one DATA frame went out
    bool emptyAcked = false;
    bool emptyLost = false;
    RangeSet acked;
    RangeSet lost;            // sent, missing, not acknowledged since

    bool fullySent() const noexcept { return total == 0 ? emptySent : sent == total; }
    bool done() const noexcept {
      return opened && (total == 0 ? emptyAcked : acked.covers(0, total));
    }
  };

  // Messages opened past one still waiting for credit, at most.
  static constexpr size_t kLookahead = 16;

  Message* find(uint64_t msgId) noexcept;
  void popDone() noexcept;
  bool nextLost(size_t room, Chunk& chunk);
  bool nextNew(size_t room, Chunk& chunk, bool dryRun);

  std::deque<Message> _messages;  // ids _firstId, _firstId + 1, ...
  uint64_t _firstId = 0;
  uint64_t _nextId = 0;
  size_t _cursor = 0;             // index of the first message not fully sent
  std::set<uint64_t> _lostIds;    // messages with lost ranges
  uint64_t _bytesQueued = 0;
  uint64_t _openedBytes = 0;      // sum of the totals of messages opened (the S of PROTOCOL.md)
  uint64_t _unscheduled = 0;
  uint64_t _peerMaxMsgId = 0;
  uint64_t _peerMaxOpenBytes = 0;
};

}  // namespace ferry::transports::udp
