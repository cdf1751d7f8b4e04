// libFuzzer target for the security providers' token parsing: each input is what a client sent a
// fresh server context of the tls provider (or, built with FERRY_FUZZ_PSK, the psk provider),
// fed to step() as one token or, when its first byte is odd, as two (split where its second byte
// says), so that the fuzzer also reaches the steps after a valid ClientHello. The provider's code
// is compiled into the target (tests/fuzz/meson.build). Invariants checked on every input:
//   - a server context never returns OK: the fuzzer cannot produce the client's Finished;
//   - a failed step writes no token (no alert, no oracle) and leaves a context that exports no
//     secret and names no peer; a later step fails too.
#include <cstdlib>
#include <memory>
#include <string>

#include "pki.h"
#include "provider-harness.h"

extern "C" const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1* host);

namespace {

using namespace ferry::test;

struct Server {
  TempDir dir;
  const ferry_security_v1& provider =
      *static_cast<const ferry_security_v1*>(ferry_plugin_entry_v1(nullptr)->table);
  Acquired credentials;

  Server() {
#ifdef FERRY_FUZZ_PSK
    // The key the corpus's ClientHellos were made with (their binders need it).
    std::string settings = "keys=" + dir.write("keys", "fuzz " + std::string(64, 'a') + "\n");
#else
    TestCa ca("fuzz CA");
    Identity server = ca.issue({"server.test", "DNS:server.test"});
    std::string settings = "cert=" + dir.write("server.pem", server.certPem) +
                           ",key=" + dir.write("server.key", server.keyPem) +
                           ",ca=" + dir.write("ca.pem", ca.certPem()) +
                           ",principals=" + dir.write("principals", "dns:client.test client\n");
#endif
    credentials = acquire(provider, settings, FERRY_SECURITY_ROLE_SERVER);
    if (credentials.status != 0) {
      std::fprintf(stderr, "fuzz setup: %s\n", credentials.why.c_str());
      std::abort();
    }
  }
};

Server& server() {
  static Server instance;
  return instance;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string why;
  std::unique_ptr<SecurityContext> context = server().credentials.credentials->server(why);
  check(context != nullptr);
  Bytes first(data, data + size);
  Bytes second;
  if (size >= 2 && (data[0] & 1) != 0) {
    size_t split = 2 + data[1] * (size - 2) / 256;
    first.assign(data + 2, data + split);
    second.assign(data + split, data + size);
  }
  Bytes out;
  int status = context->step(&first, out, why);
  if (status == FERRY_SECURITY_CONTINUE && !second.empty()) {
    status = context->step(&second, out, why);
  }
  check(status != FERRY_SECURITY_OK);
  if (status < 0) {
    check(out.empty());
    Bytes secret;
    check(context->exportSecret("record", Bytes{1}, secret) < 0);
    ferry_security_peer_v1 peer{};
    check(context->queryPeer(peer) < 0);
    check(context->step(&first, out, why) < 0);
  }
  return 0;
}
