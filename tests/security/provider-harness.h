// Drives a security provider through its C ABI (core/include/ferry/plugin/security.h) as core
// does: credentials, a client and a server context, and step() calls carrying each end's token to
// the other in memory. Owning wrappers free what the provider handed out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ferry/plugin/security.h>

namespace ferry::test {

using Bytes = std::vector<uint8_t>;

class SecurityContext {
public:
  SecurityContext(const ferry_security_v1& provider, ferry_security_context* context)
      : _provider(provider), _context(context) {}
  ~SecurityContext() { _provider.free_context(_context); }
  SecurityContext(const SecurityContext&) = delete;
  SecurityContext& operator=(const SecurityContext&) = delete;

  // One step(); `in` null for a client's first. Returns the status; the token written (none on
  // failure) goes to `out`, the sentence of a failure to `why`.
  int step(const Bytes* in, Bytes& out, std::string& why);
  // export_secret of `size` bytes; the status, and `out` empty unless it is 0.
  int exportSecret(const std::string& label, const Bytes& binding, Bytes& out, size_t size = 32);
  int queryPeer(ferry_security_peer_v1& out);

private:
  const ferry_security_v1& _provider;
  ferry_security_context* _context;
};

class SecurityCredentials {
public:
  SecurityCredentials(const ferry_security_v1& provider, ferry_security_credentials* credentials)
      : _provider(provider), _credentials(credentials) {}
  ~SecurityCredentials() { _provider.free_credentials(_credentials); }
  SecurityCredentials(const SecurityCredentials&) = delete;
  SecurityCredentials& operator=(const SecurityCredentials&) = delete;

  // A client context for `target`, or null (with the sentence in `why`).
  std::unique_ptr<SecurityContext> client(const std::string& target, std::string& why);
  std::unique_ptr<SecurityContext> server(std::string& why);

private:
  const ferry_security_v1& _provider;
  ferry_security_credentials* _credentials;
};

// acquire_credentials: the status, the sentence of a failure, the credentials when it is 0.
struct Acquired {
  int status = 0;
  std::string why;
  std::unique_ptr<SecurityCredentials> credentials;
};
Acquired acquire(const ferry_security_v1& provider, const std::string& settings, uint32_t roles);

// check_settings: the status and the sentence.
struct Checked {
  int status = 0;
  std::string why;
};
Checked checkSettings(const ferry_security_v1& provider, const std::string& settings);

// A whole exchange between two contexts: the client's first step, then each token to the other
// end, until both returned OK, one failed, or ten steps passed.
struct Exchange {
  int client = FERRY_SECURITY_CONTINUE;  // the last status of each end
  int server = FERRY_SECURITY_CONTINUE;
  std::string clientWhy;
  std::string serverWhy;
  std::vector<Bytes> clientTokens;  // what each step() wrote, in order
  std::vector<Bytes> serverTokens;

  bool established() const { return client == FERRY_SECURITY_OK && server == FERRY_SECURITY_OK; }
};
Exchange runExchange(SecurityContext& client, SecurityContext& server);

}  // namespace ferry::test
