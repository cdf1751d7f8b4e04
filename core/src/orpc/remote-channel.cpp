#include "remote-channel.h"

namespace ferry::detail::orpc {

RemoteChannel::RemoteChannel(RequestSender& sender, StringBindingData binding, Oxid oxid,
                             MarshalContext distance)
    : _sender(sender), _binding(std::move(binding)), _key(bindingText(_binding)), _oxid(oxid),
      _distance(distance) {}

void RemoteChannel::send(std::unique_ptr<OutgoingRequest> request, Deadline deadline,
                         std::shared_ptr<OutboundCall> call) noexcept {
  if (call) call->wakeWith(_sender.loopWake());
  _sender.sendRequest(_key, _binding, _oxid, std::move(request), deadline, std::move(call));
}

}  // namespace ferry::detail::orpc
