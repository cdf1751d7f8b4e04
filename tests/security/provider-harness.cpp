#include "provider-harness.h"

namespace ferry::test {

int SecurityContext::step(const Bytes* in, Bytes& out, std::string& why) {
  out.assign(_provider.max_token_size, 0);
  char text[512] = "";
  size_t size = 0;
  int status = _provider.step(_context, in != nullptr ? in->data() : nullptr,
                              in != nullptr ? in->size() : 0, out.data(), out.size(), &size,
                              text, sizeof text);
  out.resize(status >= 0 ? size : 0);
  why = text;
  return status;
}

int SecurityContext::exportSecret(const std::string& label, const Bytes& binding, Bytes& out,
                                  size_t size) {
  out.assign(size, 0);
  int status = _provider.export_secret(_context, label.c_str(), binding.data(), binding.size(),
                                       out.data(), out.size());
  if (status != 0) out.clear();
  return status;
}

int SecurityContext::queryPeer(ferry_security_peer_v1& out) {
  out = ferry_security_peer_v1{};
  out.struct_size = sizeof out;
  return _provider.query_peer(_context, &out);
}

std::unique_ptr<SecurityContext> SecurityCredentials::client(const std::string& target,
                                                             std::string& why) {
  char text[512] = "";
  ferry_security_link_v1 link{sizeof(ferry_security_link_v1), 0, "127.0.0.1", 0, 0, 0, 0};
  ferry_security_context* context = nullptr;
  int status = _provider.init_context(_credentials, target.c_str(), &link, &context, text,
                                      sizeof text);
  why = text;
  if (status != 0) return nullptr;
  return std::make_unique<SecurityContext>(_provider, context);
}

std::unique_ptr<SecurityContext> SecurityCredentials::server(std::string& why) {
  char text[512] = "";
  ferry_security_link_v1 link{sizeof(ferry_security_link_v1), 0, "127.0.0.1", 0, 0, 0, 0};
  ferry_security_context* context = nullptr;
  int status = _provider.accept_context(_credentials, &link, &context, text, sizeof text);
  why = text;
  if (status != 0) return nullptr;
  return std::make_unique<SecurityContext>(_provider, context);
}

Acquired acquire(const ferry_security_v1& provider, const std::string& settings, uint32_t roles) {
  Acquired result;
  char text[512] = "";
  ferry_security_credentials* credentials = nullptr;
  result.status =
      provider.acquire_credentials(nullptr, settings.c_str(), roles, &credentials, text,
                                   sizeof text);
  result.why = text;
  if (result.status == 0) {
    result.credentials = std::make_unique<SecurityCredentials>(provider, credentials);
  }
  return result;
}

Checked checkSettings(const ferry_security_v1& provider, const std::string& settings) {
  Checked result;
  char text[512] = "";
  result.status = provider.check_settings(settings.c_str(), text, sizeof text);
  result.why = text;
  return result;
}

Exchange runExchange(SecurityContext& client, SecurityContext& server) {
  Exchange x;
  Bytes toServer;
  Bytes toClient;
  x.client = client.step(nullptr, toServer, x.clientWhy);
  x.clientTokens.push_back(toServer);
  for (int steps = 1; steps < 10 && x.client >= 0 && x.server >= 0 && !x.established();
       ++steps) {
    if (x.server != FERRY_SECURITY_OK && !toServer.empty()) {
      x.server = server.step(&toServer, toClient, x.serverWhy);
      x.serverTokens.push_back(toClient);
      toServer.clear();
    } else if (x.client != FERRY_SECURITY_OK && !toClient.empty()) {
      x.client = client.step(&toClient, toServer, x.clientWhy);
      x.clientTokens.push_back(toServer);
      toClient.clear();
    } else {
      break;  // neither end has anything to send: a stall the caller sees as not established
    }
  }
  return x;
}

}  // namespace ferry::test
