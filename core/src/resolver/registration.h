// A process's registration with its host's ferryd: which ferryd (the setting), the apartments
// announced to it, and the retry schedule while it is unreachable. The transport hub owns the
// connection and the timer and asks this what to send and when. One thread (the I/O loop's).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include <ferry/runtime.h>

#include "resolution.h"

namespace ferry::detail {

// ferryd's default binding: "pipe:/run/ferry[ferryd]".
StringBindingData ferrydDefaultBinding();

// The ferryd to register with, from RuntimeOptions::resolver or FERRY_RESOLVER (which wins);
// an empty protseq for none. Throws invalidArgument, naming the setting, for text that is not a
// pipe string binding (ferryd takes registrations over its pipe only), "auto" or "none".
StringBindingData ferrydSetting(const RuntimeOptions& options);

class FerrydRegistration {
public:
  static constexpr uint64_t kFirstRetryMs = 1000;
  static constexpr uint64_t kMaxRetryMs = 30'000;

  FerrydRegistration() = default;
  explicit FerrydRegistration(StringBindingData ferryd);

  bool enabled() const noexcept { return !_ferryd.protseq.empty(); }
  const StringBindingData& ferryd() const noexcept { return _ferryd; }
  const std::string& key() const noexcept { return _key; }

  // Records an apartment (OXID → its RemUnknown IPID), or its withdrawal. Returns false for a
  // withdrawal of one never announced (nothing to tell ferryd).
  void announce(Oxid oxid, Ipid remUnknown) { _announced[oxid] = remUnknown; }
  bool withdraw(Oxid oxid) { return _announced.erase(oxid) != 0; }
  // Everything announced: registered again on every new connection to ferryd.
  const std::unordered_map<Oxid, Ipid>& announced() const noexcept { return _announced; }

  // The connection to ferryd opened: the retry delay starts over. True when ferryd was down
  // before (worth saying that it is back).
  bool reached() noexcept;
  // It closed or could not be opened: the delay before the next attempt (1 s, doubling up to
  // 30 s). `firstTime` is set when it was up until now (worth one warning).
  uint64_t lost(bool& firstTime) noexcept;

private:
  StringBindingData _ferryd;
  std::string _key;
  std::unordered_map<Oxid, Ipid> _announced;
  uint64_t _retryMs = kFirstRetryMs;
  bool _down = false;
};

}  // namespace ferry::detail
