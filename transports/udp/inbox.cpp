#include "inbox.h"

#include <algorithm>
#include <cstring>

namespace ferry::transports::udp {

namespace {

// What `received` gets for an empty message: a valid pointer, never null.
const uint8_t kNoBytes[1] = {0};

}  // namespace

Inbox::Inbox(const InboxLimits& limits, MemoryBudget& budget)
    : _limits(limits),
      _budget(budget),
      _grantedBytes(limits.sessionWindow),
      _announcedMsgId(limits.maxOpenMessages),
      _announcedBytes(limits.sessionWindow) {}

Inbox::~Inbox() {
  for (auto& [id, message] : _open) {
    if (message.view == nullptr) _budget.used -= message.total;
  }
}

uint64_t Inbox::creditLimit(const Message& message) const noexcept {
  return std::max<uint64_t>(_limits.unscheduledBytes, message.granted);
}

void Inbox::updateCredit(Message& message) {
  if (message.whole || message.total <= _limits.unscheduledBytes) return;
  uint64_t target = std::min<uint64_t>(message.total, message.have.runEnd(0) + _limits.messageWindow);
  if (target <= creditLimit(message)) return;
  bool worthIt = message.granted == 0 || target == message.total ||
                 target >= message.granted + _limits.messageWindow / 4;
  if (!worthIt) return;
  message.granted = target;
  message.creditDue = true;
  _anyCreditDue = true;
}

bool Inbox::allocate(Message& message, uint32_t total) {
  if (_budget.used + total > _budget.limit) return false;
  if (total > 0) message.owned.reset(new uint8_t[total]);
  _budget.used += total;
  return true;
}

Inbox::Verdict Inbox::onData(const DataFrame& frame) {
  if (frame.msgId < _nextDeliver) return Verdict::duplicate;
  if (frame.msgId >= _announcedMsgId) return Verdict::violation;
  if (frame.total > _limits.maxMessageSize) return Verdict::violation;
  uint64_t end = uint64_t{frame.offset} + frame.length;
  if (end > frame.total) return Verdict::violation;
  if (frame.length == 0 && frame.total != 0) return Verdict::violation;

  auto found = _open.find(frame.msgId);
  if (found != _open.end()) {
    Message& message = found->second;
    if (message.total != frame.total) return Verdict::violation;
    if (end > creditLimit(message)) return Verdict::violation;
    if (message.whole || message.have.covers(frame.offset, end)) return Verdict::duplicate;
    if (message.have.intervals() >= kMaxIntervals) return Verdict::violation;
    std::memcpy(message.owned.get() + frame.offset, frame.bytes, frame.length);
    message.have.add(frame.offset, end);
    message.whole = message.have.covers(0, message.total);
    if (message.whole) --_incomplete;
    updateCredit(message);
    return Verdict::accepted;
  }

  // A new message: nothing is allocated before every check has passed.
  if (end > _limits.unscheduledBytes) return Verdict::violation;
  if (_held + frame.total > _announcedBytes - _delivered) return Verdict::violation;
  bool whole = frame.length == frame.total;
  // Next in line and whole: deliverable straight from the packet.
  // (A heuristic: when ids are missing in between, adoptViews() copies it after all.)
  bool viewable = whole && _incomplete == 0 && frame.msgId == _nextDeliver + _open.size();
  Message message;
  message.total = frame.total;
  if (viewable) {
    message.view = frame.length > 0 ? frame.bytes : kNoBytes;
  } else {
    if (!allocate(message, frame.total)) return Verdict::overBudget;
    if (frame.length > 0) std::memcpy(message.owned.get() + frame.offset, frame.bytes, frame.length);
  }
  if (frame.length > 0) message.have.add(frame.offset, end);
  message.whole = whole;
  if (!whole) ++_incomplete;
  _held += frame.total;
  Message& stored = _open.emplace(frame.msgId, std::move(message)).first->second;
  updateCredit(stored);
  return Verdict::accepted;
}

bool Inbox::front(const uint8_t*& data, size_t& size) const {
  if (_open.empty()) return false;
  const auto& [id, message] = *_open.begin();
  if (id != _nextDeliver || !message.whole) return false;
  data = message.view != nullptr ? message.view
         : message.owned   ? message.owned.get()
                           : kNoBytes;
  size = message.total;
  return true;
}

void Inbox::popFront() {
  auto first = _open.begin();
  if (first->second.view == nullptr) _budget.used -= first->second.total;  // views were not charged
  _held -= first->second.total;
  _delivered += first->second.total;
  _open.erase(first);
  ++_nextDeliver;
  extendGrant();
}

void Inbox::adoptViews() {
  for (auto& [id, message] : _open) {
    if (message.view == nullptr) continue;
    // Already acknowledged, so it is kept even over the budget: the promise bounds it.
    if (message.total > 0) {
      message.owned.reset(new uint8_t[message.total]);
      std::memcpy(message.owned.get(), message.view, message.total);
    }
    _budget.used += message.total;
    message.view = nullptr;
  }
}

void Inbox::extendGrant() {
  if (_budget.used >= _budget.limit) return;
  _grantedBytes = std::max(_grantedBytes, _delivered + _limits.sessionWindow);
}

bool Inbox::sessionCreditDue() const noexcept {
  uint64_t idStep = std::max<uint64_t>(1, _limits.maxOpenMessages / 4);
  uint64_t byteStep = std::max<uint64_t>(1, _limits.sessionWindow / 4);
  return maxMsgId() >= _announcedMsgId + idStep || _grantedBytes >= _announcedBytes + byteStep;
}

void Inbox::sessionCreditSent() noexcept {
  _announcedMsgId = std::max(_announcedMsgId, maxMsgId());
  _announcedBytes = std::max(_announcedBytes, _grantedBytes);
}

std::string Inbox::describe() const {
  std::string out = "inbox: next " + std::to_string(_nextDeliver) + ", " +
                    std::to_string(_open.size()) + " open, held " + std::to_string(_held) +
                    " B, granted " + std::to_string(_grantedBytes) + " B";
  size_t shown = 0;
  for (const auto& [id, m] : _open) {
    if (shown++ == 3) break;
    out += "; #" + std::to_string(id) + " total " + std::to_string(m.total) + " prefix " +
           std::to_string(m.have.runEnd(0)) + " ranges " + std::to_string(m.have.intervals()) +
           " credit " + std::to_string(m.granted) + (m.whole ? " whole" : "") +
           (m.creditDue ? " credit-due" : "");
  }
  return out;
}

void Inbox::markCreditDue(uint64_t msgId) {
  auto found = _open.find(msgId);
  if (found == _open.end() || found->second.whole || found->second.granted == 0) return;
  found->second.creditDue = true;
  _anyCreditDue = true;
}

}  // namespace ferry::transports::udp
