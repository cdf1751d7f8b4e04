// The receiving half of a session's message stream: DATA frames in, whole messages out, each
// exactly once and in the order sent (PROTOCOL.md, "Messages").
//
// Every check on a DATA frame happens before anything is allocated for it: the message id lies in
// the window granted, total_len is within the negotiated maximum and the same in every frame of
// the message, offset + length lies within total_len (64-bit arithmetic), the bytes lie within the
// credit granted, and a new message fits the session's promise (SESSION_CREDIT) and the
// instance's memory budget. Then one buffer of total_len bytes is allocated for the message.
//
// A message carried whole by one frame and next in line is not copied at all: the inbox keeps a
// view of the packet and the caller delivers from it before the packet goes away (adoptViews()
// copies whatever could not be delivered yet).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ranges.h"
#include "wire.h"

namespace ferry::transports::udp {

// Reassembly memory of all sessions of an instance.
struct MemoryBudget {
  uint64_t limit = 0;
  uint64_t used = 0;
};

struct InboxLimits {
  uint64_t maxMessageSize = 0;   // what this side accepts (announced in the handshake)
  uint64_t unscheduledBytes = 0; // bytes of each message the peer may send without CREDIT
  uint64_t messageWindow = 0;    // CREDIT granted ahead of a message's received prefix
  uint64_t maxOpenMessages = 0;  // message ids granted ahead of the next to deliver
  uint64_t sessionWindow = 0;    // bytes of undelivered messages granted (>= maxMessageSize)
};

class Inbox {
public:
  enum class Verdict {
    accepted,    // new bytes taken
    duplicate,   // nothing new (already delivered, or bytes already held)
    violation,   // the peer broke the protocol; the packet must not be acknowledged
    overBudget,  // the instance is out of reassembly memory; drop without acknowledging
  };

  Inbox(const InboxLimits& limits, MemoryBudget& budget);
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  Verdict onData(const DataFrame& frame);

  // The next message in order, when it is whole.
  bool front(const uint8_t*& data, size_t& size) const;
  void popFront();
  // Copies every message still viewing a packet into memory of its own.
  void adoptViews();

  // Credit to announce. SESSION_CREDIT: message ids below maxMsgId may be used, and a message may
  // be opened while the sum of the totals of all messages opened so far stays <= maxOpenBytes.
  uint64_t maxMsgId() const noexcept { return _nextDeliver + _limits.maxOpenMessages; }
  uint64_t maxOpenBytes() const noexcept { return _grantedBytes; }
  // True when the values above grew enough since they were last announced.
  bool sessionCreditDue() const noexcept;
  void sessionCreditSent() noexcept;
  // Per-message CREDIT that grew enough to announce: calls each(msgId, maxOffset).
  template <typename Each>
  void forEachCreditDue(Each&& each);
  bool anyCreditDue() const noexcept { return _anyCreditDue; }
  // A CREDIT frame for the message was lost: announce its current value again.
  void markCreditDue(uint64_t msgId);

  uint64_t nextDeliver() const noexcept { return _nextDeliver; }
  // One line about the messages waiting, for diagnostics.
  std::string describe() const;
  uint64_t bytesHeld() const noexcept { return _held; }
  size_t openMessages() const noexcept { return _open.size(); }
  // True while bytes of a message that began are missing: one partly received, or one after
  // which a later message arrived (open ids are _nextDeliver and up, so a gap makes the last id
  // reach past the count).
  bool missingBytes() const noexcept {
    return _incomplete > 0 ||
           (!_open.empty() && _open.rbegin()->first - _nextDeliver >= _open.size());
  }

  // Stops granting beyond what is promised (the instance is over its memory budget) or resumes.
  void extendGrant();

private:
  struct Message {
    uint32_t total = 0;
    std::unique_ptr<uint8_t[]> owned;
    const uint8_t* view = nullptr;  // a packet's bytes, valid until adoptViews()
    RangeSet have;
    uint64_t granted = 0;      // CREDIT announced (0: none yet)
    bool creditDue = false;
    bool whole = false;
  };

  // Largest intervals a message may be split into before further fragments count as hostile.
  static constexpr size_t kMaxIntervals = 16384;

  uint64_t creditLimit(const Message& message) const noexcept;
  void updateCredit(Message& message);
  bool allocate(Message& message, uint32_t total);

  InboxLimits _limits;
  MemoryBudget& _budget;
  std::map<uint64_t, Message> _open;  // ids >= _nextDeliver with something received
  uint64_t _nextDeliver = 0;
  uint64_t _delivered = 0;      // sum of totals delivered (the D of PROTOCOL.md)
  uint64_t _grantedBytes = 0;   // max_open_bytes promised
  uint64_t _announcedMsgId = 0;
  uint64_t _announcedBytes = 0;
  uint64_t _held = 0;           // bytes allocated (and views pending adoption)
  size_t _incomplete = 0;       // open messages not yet whole
  bool _anyCreditDue = false;
};

template <typename Each>
void Inbox::forEachCreditDue(Each&& each) {
  if (!_anyCreditDue) return;
  _anyCreditDue = false;
  for (auto& [id, message] : _open) {
    if (!message.creditDue) continue;
    message.creditDue = false;
    each(id, message.granted);
  }
}

}  // namespace ferry::transports::udp
