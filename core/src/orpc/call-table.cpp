#include "call-table.h"

#include <algorithm>
#include <string>

namespace ferry::detail::orpc {

namespace {
std::atomic<uint64_t> gNextCallId{1};
}  // namespace

uint64_t CallTable::nextCallId() noexcept {
  return gNextCallId.fetch_add(1, std::memory_order_relaxed);
}

void CallTable::add(uint64_t callId, Entry entry) {
  std::lock_guard lock(_mutex);
  if (_spare.empty()) {
    _calls[callId] = std::move(entry);
    return;
  }
  _spare.key() = callId;
  _spare.mapped() = std::move(entry);
  auto inserted = _calls.insert(std::move(_spare));
  // An id already in the table (never, as ids are unique) keeps its entry replaced, as above.
  if (!inserted.inserted) inserted.position->second = std::move(inserted.node.mapped());
}

std::shared_ptr<OutboundCall> CallTable::answer(uint64_t callId, LinkId link) {
  std::lock_guard lock(_mutex);
  auto it = _calls.find(callId);
  if (it == _calls.end() || it->second.link != link) return nullptr;
  std::shared_ptr<OutboundCall> call = std::move(it->second.call);
  _spare = _calls.extract(it);
  _spare.mapped() = Entry{};
  auto& acks = _acks[link];
  if (acks.size() < kMaxAcksKept) acks.push_back(callId);
  return call;
}

std::optional<CallTable::Entry> CallTable::take(uint64_t callId, LinkId link) {
  std::lock_guard lock(_mutex);
  auto it = _calls.find(callId);
  if (it == _calls.end() || it->second.link != link) return std::nullopt;
  Entry entry = std::move(it->second);
  _calls.erase(it);
  return entry;
}

CallTable::Acknowledgements CallTable::acknowledgementsFor(LinkId link) {
  Acknowledgements out;
  std::lock_guard lock(_mutex);
  auto it = _acks.find(link);
  if (it == _acks.end() || it->second.empty()) return out;
  auto& ids = it->second;
  out.count = std::min(ids.size(), kMaxAcksPerRequest);
  std::copy(ids.end() - static_cast<ptrdiff_t>(out.count), ids.end(), out.ids.begin());
  ids.resize(ids.size() - out.count);
  return out;
}

std::optional<LinkId> CallTable::linkOf(uint64_t callId) const {
  std::lock_guard lock(_mutex);
  auto it = _calls.find(callId);
  if (it == _calls.end()) return std::nullopt;
  return it->second.link;
}

std::vector<std::pair<uint64_t, CallTable::Entry>> CallTable::dropLink(LinkId link, Errc code,
                                                                       std::string_view why,
                                                                       bool resend) {
  std::vector<std::pair<uint64_t, Entry>> again;
  std::vector<std::pair<std::shared_ptr<OutboundCall>, Errc>> failed;
  {
    std::lock_guard lock(_mutex);
    for (auto it = _calls.begin(); it != _calls.end();) {
      Entry& e = it->second;
      if (e.link != link) {
        ++it;
        continue;
      }
      if (resend && e.frame != nullptr && e.resends < kMaxResends) {
        again.emplace_back(it->first, std::move(e));
      } else {
        Errc c = e.resends > 0 && code == Errc::unavailable ? Errc::outcomeUnknown : code;
        failed.emplace_back(std::move(e.call), c);
      }
      it = _calls.erase(it);
    }
    _acks.erase(link);
  }
  for (auto& [call, c] : failed) call->fail(c, std::string(why));
  return again;
}

void CallTable::failAll(Errc code, std::string_view why) {
  std::unordered_map<uint64_t, Entry> calls;
  {
    std::lock_guard lock(_mutex);
    calls.swap(_calls);
    _acks.clear();
  }
  for (auto& [id, e] : calls) e.call->fail(code, std::string(why));
}

std::unordered_map<LinkId, size_t, LinkIdHash> CallTable::sizeByLink() const {
  std::lock_guard lock(_mutex);
  std::unordered_map<LinkId, size_t, LinkIdHash> out;
  for (const auto& [id, entry] : _calls) ++out[entry.link];
  return out;
}

size_t CallTable::size() const {
  std::lock_guard lock(_mutex);
  return _calls.size();
}

}  // namespace ferry::detail::orpc
