#include "outbox.h"

#include <algorithm>
#include <cstring>

namespace ferry::transports::udp {

void Outbox::setPeerLimits(uint64_t unscheduledBytes, uint64_t maxMsgId,
                           uint64_t maxOpenBytes) noexcept {
  _unscheduled = unscheduledBytes;
  _peerMaxMsgId = maxMsgId;
  _peerMaxOpenBytes = maxOpenBytes;
}

void Outbox::onSessionCredit(uint64_t maxMsgId, uint64_t maxOpenBytes) noexcept {
  // Credit only grows; an older, smaller SESSION_CREDIT arriving late changes nothing.
  _peerMaxMsgId = std::max(_peerMaxMsgId, maxMsgId);
  _peerMaxOpenBytes = std::max(_peerMaxOpenBytes, maxOpenBytes);
}

void Outbox::onCredit(uint64_t msgId, uint64_t maxOffset) noexcept {
  Message* message = find(msgId);
  if (message == nullptr) return;
  message->credit = std::max<uint64_t>(message->credit, std::min<uint64_t>(maxOffset, message->total));
}

Outbox::Message* Outbox::find(uint64_t msgId) noexcept {
  if (msgId < _firstId || msgId - _firstId >= _messages.size()) return nullptr;
  return &_messages[static_cast<size_t>(msgId - _firstId)];
}

void Outbox::push(const uint8_t* data, size_t size) {
  std::unique_ptr<uint8_t[]> bytes;
  if (size > 0) {
    bytes.reset(new uint8_t[size]);
    std::memcpy(bytes.get(), data, size);
  }
  push(std::move(bytes), size);
}

void Outbox::push(std::unique_ptr<uint8_t[]> bytes, size_t size) {
  Message message;
  message.id = _nextId;
  message.total = static_cast<uint32_t>(size);
  message.bytes = std::move(bytes);
  _messages.push_back(std::move(message));
  ++_nextId;
  _bytesQueued += size;
}

bool Outbox::nextLost(size_t room, Chunk& chunk) {
  while (!_lostIds.empty()) {
    uint64_t id = *_lostIds.begin();
    Message* message = find(id);
    if (message == nullptr) {
      _lostIds.erase(_lostIds.begin());
      continue;
    }
    size_t overhead = dataFrameOverhead(id);
    if (message->total == 0) {
      if (!message->emptyLost) {
        _lostIds.erase(_lostIds.begin());
        continue;
      }
      if (room < overhead) return false;
      message->emptyLost = false;
      _lostIds.erase(_lostIds.begin());
      chunk = {id, 0, 0, 0, nullptr};
      return true;
    }
    if (message->lost.empty()) {
      _lostIds.erase(_lostIds.begin());
      continue;
    }
    if (room <= overhead) return false;
    auto [lo, hi] = *message->lost.begin();
    uint64_t length = std::min<uint64_t>({hi - lo, room - overhead, kMaxDataChunk});
    message->lost.subtract(lo, lo + length);
    if (message->lost.empty()) _lostIds.erase(_lostIds.begin());
    chunk = {id, message->total, static_cast<uint32_t>(lo), static_cast<uint32_t>(length),
             message->bytes.get() + lo};
    return true;
  }
  return false;
}

bool Outbox::nextNew(size_t room, Chunk& chunk, bool dryRun) {
  while (_cursor < _messages.size() && _messages[_cursor].fullySent()) ++_cursor;
  uint64_t openedBytes = _openedBytes;
  for (size_t i = _cursor; i < _messages.size() && i < _cursor + kLookahead; ++i) {
    Message& message = _messages[i];
    if (!message.opened) {
      // In order: when this one may not open, no later one may.
      if (message.id >= _peerMaxMsgId || openedBytes + message.total > _peerMaxOpenBytes) {
        return false;
      }
      openedBytes += message.total;
      if (!dryRun) {
        message.opened = true;
        _openedBytes = openedBytes;
      }
    }
    size_t overhead = dataFrameOverhead(message.id);
    if (message.total == 0) {
      if (message.emptySent) continue;
      if (dryRun) return true;
      if (room < overhead) return false;
      message.emptySent = true;
      chunk = {message.id, 0, 0, 0, nullptr};
      return true;
    }
    uint64_t limit = std::min<uint64_t>(message.total, std::max(_unscheduled, message.credit));
    if (message.sent >= limit) continue;  // fully sent, or waiting for CREDIT
    if (dryRun) return true;
    if (room <= overhead) return false;
    uint64_t length = std::min<uint64_t>({limit - message.sent, room - overhead, kMaxDataChunk});
    chunk = {message.id, message.total, message.sent, static_cast<uint32_t>(length),
             message.bytes.get() + message.sent};
    message.sent += static_cast<uint32_t>(length);
    return true;
  }
  return false;
}

bool Outbox::next(size_t room, Chunk& chunk) {
  return nextLost(room, chunk) || nextNew(room, chunk, false);
}

bool Outbox::hasSendable() {
  for (uint64_t id : _lostIds) {
    const Message* message = find(id);
    if (message != nullptr && (message->total == 0 ? message->emptyLost : !message->lost.empty())) {
      return true;
    }
  }
  Chunk ignored;
  return nextNew(0, ignored, true);
}

void Outbox::popDone() noexcept {
  while (!_messages.empty() && _messages.front().done()) {
    _bytesQueued -= _messages.front().total;
    _messages.pop_front();
    ++_firstId;
    if (_cursor > 0) --_cursor;
  }
}

void Outbox::onAcked(uint64_t msgId, uint32_t offset, uint32_t length) {
  Message* message = find(msgId);
  if (message == nullptr) return;
  if (message->total == 0) {
    message->emptyAcked = true;
    message->emptyLost = false;
  } else {
    message->acked.add(offset, uint64_t{offset} + length);
    message->lost.subtract(offset, uint64_t{offset} + length);
  }
  popDone();
}

std::string Outbox::describe() const {
  std::string out = "outbox: " + std::to_string(_messages.size()) + " messages from id " +
                    std::to_string(_firstId) + ", cursor " + std::to_string(_cursor) + ", " +
                    std::to_string(_lostIds.size()) + " with losses, opened " +
                    std::to_string(_openedBytes) + "/" + std::to_string(_peerMaxOpenBytes) +
                    " B, ids < " + std::to_string(_peerMaxMsgId);
  for (size_t i = 0; i < _messages.size() && i < 3; ++i) {
    const Message& m = _messages[i];
    out += "; #" + std::to_string(m.id) + " total " + std::to_string(m.total) + " sent " +
           std::to_string(m.sent) + " credit " + std::to_string(m.credit) + " acked-ranges " +
           std::to_string(m.acked.intervals()) + " lost-ranges " +
           std::to_string(m.lost.intervals()) + (m.opened ? " open" : "");
  }
  return out;
}

void Outbox::onLost(uint64_t msgId, uint32_t offset, uint32_t length) {
  Message* message = find(msgId);
  if (message == nullptr) return;
  if (message->total == 0) {
    if (message->emptyAcked) return;
    message->emptyLost = true;
    _lostIds.insert(msgId);
    return;
  }
  message->acked.forEachGap(offset, uint64_t{offset} + length,
                            [&](uint64_t lo, uint64_t hi) { message->lost.add(lo, hi); });
  if (!message->lost.empty()) _lostIds.insert(msgId);
}

}  // namespace ferry::transports::udp
