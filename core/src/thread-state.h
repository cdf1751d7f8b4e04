// What ferry knows about the calling thread: its apartment and the call it is serving.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string_view>
#include <utility>

#include <ferry/ids.h>
#include <ferry/security.h>

namespace ferry::detail {

class ApartmentImpl;
namespace orpc {
struct CallerKey;
}

struct ThreadState {
  // The apartment this thread belongs to right now (null: none).
  ApartmentImpl* apartment = nullptr;
  // The causality id of the call this thread is serving (zero when none): outgoing calls made
  // while serving it carry it on.
  CausalityId causality{};
  // CallTimeout scope override.
  std::optional<std::chrono::milliseconds> callTimeout;
  // The cancel flag of the call this thread is serving (null outside a call).
  const std::atomic<bool>* cancelFlag = nullptr;
  // The client whose call this thread is serving (null: none, or this process's own apartments):
  // whose references RemUnknown requests add and release (export-table.h).
  const orpc::CallerKey* client = nullptr;
  // While the params of a served call are unmarshaled or its results marshaled: the client they
  // come from or go to (MarshalPeerScope).
  const orpc::CallerKey* marshalPeer = nullptr;
  // Who made the call from another process this thread is serving (null outside one).
  const ClientBlanket* blanket = nullptr;
};

inline ThreadState& threadState() noexcept {
  thread_local ThreadState state;
  return state;
}

// Throws notInitialized when the thread belongs to no apartment.
ApartmentImpl& requireCurrentApartment();

// For log lines: "sta:name", "mta" or "-".
std::string_view currentApartmentName() noexcept;

// Sets the served causality for a scope.
class CausalityScope {
public:
  explicit CausalityScope(CausalityId id) noexcept
      : _previous(std::exchange(threadState().causality, id)) {}
  CausalityScope(const CausalityScope&) = delete;
  ~CausalityScope() { threadState().causality = _previous; }

private:
  CausalityId _previous;
};

// Marks the interface pointers marshaled and unmarshaled in a scope as those of the served call's
// client: its results' references go to its account, and its params' references of this
// apartment's own objects come back from it.
class MarshalPeerScope {
public:
  MarshalPeerScope() noexcept
      : _previous(std::exchange(threadState().marshalPeer, threadState().client)) {}
  MarshalPeerScope(const MarshalPeerScope&) = delete;
  ~MarshalPeerScope() { threadState().marshalPeer = _previous; }

private:
  const orpc::CallerKey* _previous;
};

}  // namespace ferry::detail
