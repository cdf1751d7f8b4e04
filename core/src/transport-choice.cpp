#include "transport-choice.h"

#include <algorithm>

namespace ferry::detail {

std::vector<StringBindingData> usableBindings(const std::vector<StringBindingData>& candidates,
                                              MarshalContext distance, const std::string& protseq,
                                              const RunningTransports& running) {
  std::vector<std::pair<uint32_t, StringBindingData>> ranked;
  for (const StringBindingData& b : candidates) {
    if (!protseq.empty() && b.protseq != protseq) continue;
    std::optional<TransportTraits> traits = running(b.protseq);
    if (!traits) continue;
    if (traits->localOnly && distance == MarshalContext::differentMachine) continue;
    ranked.emplace_back(traits->costRank, b);
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<StringBindingData> out;
  out.reserve(ranked.size());
  for (auto& [rank, binding] : ranked) out.push_back(std::move(binding));
  return out;
}

}  // namespace ferry::detail
