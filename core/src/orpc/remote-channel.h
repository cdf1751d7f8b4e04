// The channel to one exporter of another process: a client apartment's route over a transport.
#pragma once

#include <memory>
#include <string>

#include "../channel.h"
#include "../loop-wake.h"
#include "../objref.h"

namespace ferry::detail::orpc {

// What a remote channel needs of the network below it (the transport hub implements it).
class RequestSender {
public:
  virtual ~RequestSender() = default;
  // Sends a request to exporter `oxid` through `binding` (bindingKey is its text); the response
  // goes to `call` (null: oneway), which is failed instead if the request cannot be sent. Any
  // thread.
  virtual void sendRequest(const std::string& bindingKey, const StringBindingData& binding,
                           Oxid oxid, std::unique_ptr<OutgoingRequest> request, Deadline deadline,
                           std::shared_ptr<OutboundCall> call) = 0;
  // The loop that delivers responses, for callers that poll it.
  virtual LoopWake loopWake() const noexcept = 0;
};

class RemoteChannel final : public Channel {
public:
  RemoteChannel(RequestSender& sender, StringBindingData binding, Oxid oxid,
                MarshalContext distance);
  void send(std::unique_ptr<OutgoingRequest> request, Deadline deadline,
            std::shared_ptr<OutboundCall> call) noexcept override;
  MarshalContext distance() const noexcept override { return _distance; }
  std::string describe() const override { return _key; }
  const StringBindingData* binding() const noexcept override { return &_binding; }
  SecurityLevel blanket() const override { return _binding.level; }

private:
  RequestSender& _sender;
  const StringBindingData _binding;
  const std::string _key;
  const Oxid _oxid;
  const MarshalContext _distance;
};

}  // namespace ferry::detail::orpc
