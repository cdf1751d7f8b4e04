// The `local` security provider: who is at the other end of a pipe, from the kernel.
//
// Over a Unix-domain socket the kernel tells each end the uid and gid the other end had when it
// connected (SO_PEERCRED; the pipe transport hands them in through ferry_security_link_v1), and
// keeps the frames private and unaltered: the provider exchanges no secret
// (FERRY_SECURITY_KERNEL_PROTECTED) and the achieved level is privacy, as ncalrpc's is. It works
// only on a transport with kernel credentials that reaches this host only
// (FERRY_SECURITY_LOCAL_TRANSPORT_ONLY); core refuses it on tcp and udp.
//
// A server admits the uids and gids its settings list (default: its own uid only). A client
// checks the server's uid too — against a process of another user that replaced the socket —
// and admits the uid its settings name (default: its own) or the one init_context's target
// names ("uid:N"). The pid is never used to decide.
//
// Settings: "allow_uids=1000:1001,allow_gids=100,server_uid=1000" (each optional).
// Principal: "uid:N".
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <ferry/plugin/security.h>

#include "../../transports/common/settings.h"

#define FERRY_LOCAL_EXPORT extern "C" __attribute__((visibility("default")))

struct ferry_security_credentials {
  uint32_t roles = 0;
  std::vector<uint32_t> allowUids;  // server: empty with allowGids empty means the own uid
  std::vector<uint32_t> allowGids;
  bool serverUidSet = false;
  uint32_t serverUid = 0;  // client: the uid the server must have (default: the own uid)
};

struct ferry_security_context {
  bool server = false;
  const ferry_security_credentials* credentials = nullptr;
  bool hasPeer = false;
  uint32_t peerUid = 0;
  uint32_t peerGid = 0;
  uint32_t expectedUid = 0;  // client
  bool established = false;
};

namespace {

enum Error : int {
  kBadSettings = -1,
  kNoCredentials = -2,
  kDenied = -3,
  kNotLocal = -4,
  kState = -5,
  kNoMemory = -6,
};

void say(char* why, size_t cap, const std::string& text) {
  if (why == nullptr || cap == 0) return;
  size_t n = std::min(cap - 1, text.size());
  std::memcpy(why, text.data(), n);
  why[n] = 0;
}

bool parseUid(std::string_view text, uint32_t& out) {
  if (text.empty() || text.size() > 10) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > UINT32_MAX - 1) return false;  // (uid_t)-1 names no user
  out = static_cast<uint32_t>(value);
  return true;
}

bool parseList(std::string_view text, std::vector<uint32_t>& out) {
  while (!text.empty()) {
    size_t colon = text.find(':');
    uint32_t id = 0;
    if (!parseUid(text.substr(0, colon), id)) return false;
    out.push_back(id);
    text = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  }
  return true;
}

// Reads the settings into `out`; "" or the sentence saying what is wrong.
std::string parseSettings(const char* settings, ferry_security_credentials& out) {
  std::vector<std::string> problems;
  ferry::transports::forEachSetting(
      settings, problems, [&](const std::string& key, const std::string& value) {
        if (key == "allow_uids") {
          if (!parseList(value, out.allowUids)) {
            problems.push_back("allow_uids='" + value + "' is not a list of uids separated by ':'");
          }
        } else if (key == "allow_gids") {
          if (!parseList(value, out.allowGids)) {
            problems.push_back("allow_gids='" + value + "' is not a list of gids separated by ':'");
          }
        } else if (key == "server_uid") {
          if (!parseUid(value, out.serverUid)) {
            problems.push_back("server_uid='" + value + "' is not a uid");
          }
          out.serverUidSet = true;
        } else {
          problems.push_back("unknown setting '" + key +
                             "' (the local provider takes allow_uids, allow_gids and server_uid)");
        }
      });
  return problems.empty() ? "" : problems.front();
}

bool localLink(const ferry_security_link_v1* link) {
  return link != nullptr && link->struct_size >= sizeof(ferry_security_link_v1) &&
         link->has_credentials != 0;
}

int checkSettings(const char* settings, char* why, size_t cap) {
  try {
    ferry_security_credentials parsed;
    std::string problem = parseSettings(settings, parsed);
    if (!problem.empty()) {
      say(why, cap, problem);
      return kBadSettings;
    }
    return 0;
  } catch (...) {
    return kNoMemory;
  }
}

int acquireCredentials(const ferry_host_v1*, const char* settings, uint32_t roles,
                       ferry_security_credentials** out, char* why, size_t cap) {
  try {
    auto credentials = std::make_unique<ferry_security_credentials>();
    std::string problem = parseSettings(settings, *credentials);
    if (!problem.empty()) {
      say(why, cap, problem);
      return kBadSettings;
    }
    credentials->roles = roles;
    if (!credentials->serverUidSet) credentials->serverUid = geteuid();
    *out = credentials.release();
    return 0;
  } catch (...) {
    return kNoMemory;
  }
}

void freeCredentials(ferry_security_credentials* credentials) { delete credentials; }

int newContext(ferry_security_credentials* credentials, bool server,
               const ferry_security_link_v1* link, ferry_security_context** out, char* why,
               size_t cap) {
  if (credentials == nullptr) return kNoCredentials;
  if (!localLink(link)) {
    say(why, cap, "the local provider needs the kernel's peer credentials, which this transport "
                  "does not give; use it over the pipe only");
    return kNotLocal;
  }
  auto* context = new (std::nothrow) ferry_security_context;
  if (context == nullptr) return kNoMemory;
  context->server = server;
  context->credentials = credentials;
  context->hasPeer = true;
  context->peerUid = link->uid;
  context->peerGid = link->gid;
  context->expectedUid = credentials->serverUid;
  *out = context;
  return 0;
}

int initContext(ferry_security_credentials* credentials, const char* target,
                const ferry_security_link_v1* link, ferry_security_context** out, char* why,
                size_t cap) {
  uint32_t targetUid = 0;
  bool hasTarget = false;
  if (target != nullptr && *target != 0) {
    std::string_view t(target);
    if (t.substr(0, 4) != "uid:" || !parseUid(t.substr(4), targetUid)) {
      say(why, cap, "the target principal '" + std::string(t) + "' is not uid:N");
      return kBadSettings;
    }
    hasTarget = true;
  }
  int rc = newContext(credentials, false, link, out, why, cap);
  if (rc == 0 && hasTarget) (*out)->expectedUid = targetUid;
  return rc;
}

int acceptContext(ferry_security_credentials* credentials, const ferry_security_link_v1* link,
                  ferry_security_context** out, char* why, size_t cap) {
  return newContext(credentials, true, link, out, why, cap);
}

bool admitted(const ferry_security_credentials& c, uint32_t uid, uint32_t gid) {
  if (c.allowUids.empty() && c.allowGids.empty()) return uid == geteuid();
  return std::find(c.allowUids.begin(), c.allowUids.end(), uid) != c.allowUids.end() ||
         std::find(c.allowGids.begin(), c.allowGids.end(), gid) != c.allowGids.end();
}

// One step: no token is ever exchanged; each end decides from the kernel's word alone.
int step(ferry_security_context* context, const uint8_t*, size_t in_size, uint8_t*, size_t,
         size_t* out_size, char* why, size_t cap) {
  if (context == nullptr || out_size == nullptr) return kState;
  *out_size = 0;
  if (context->established || in_size != 0) {
    say(why, cap, "the peer sent a token the local provider never asks for");
    return kState;
  }
  if (context->server) {
    if (!admitted(*context->credentials, context->peerUid, context->peerGid)) {
      say(why, cap, "a process of uid " + std::to_string(context->peerUid) + " (gid " +
                        std::to_string(context->peerGid) +
                        ") connected, and the local provider's allow_uids/allow_gids settings "
                        "do not admit it");
      return kDenied;
    }
  } else if (context->peerUid != context->expectedUid) {
    say(why, cap, "the server's socket belongs to a process of uid " +
                      std::to_string(context->peerUid) + ", not the expected uid " +
                      std::to_string(context->expectedUid) +
                      " (the local provider's server_uid setting): another user may have "
                      "replaced the socket");
    return kDenied;
  }
  context->established = true;
  return FERRY_SECURITY_OK;
}

int queryPeer(ferry_security_context* context, ferry_security_peer_v1* out) {
  if (context == nullptr || out == nullptr || !context->established) return kState;
  uint32_t size = out->struct_size;
  std::memset(out, 0, std::min<size_t>(size, sizeof *out));
  out->struct_size = size;
  std::snprintf(out->principal, sizeof out->principal, "uid:%u", context->peerUid);
  out->level = FERRY_SECURITY_LEVEL_PRIVACY;
  out->has_uid = 1;
  out->uid = context->peerUid;
  out->gid = context->peerGid;
  return 0;
}

int exportSecret(ferry_security_context*, const char*, const uint8_t*, size_t, uint8_t*, size_t) {
  return kState;  // KERNEL_PROTECTED: there is no secret
}

void freeContext(ferry_security_context* context) { delete context; }

const char* strerror(int error) {
  switch (error) {
    case kBadSettings: return "the local provider's settings are malformed";
    case kNoCredentials: return "no credentials";
    case kDenied: return "the peer's uid is not admitted";
    case kNotLocal: return "the transport gives no kernel credentials";
    case kState: return "the exchange broke the local provider's protocol";
    case kNoMemory: return "out of memory";
    default: return "unknown local provider error";
  }
}

const ferry_security_v1 kTable = {
    .struct_size = sizeof(ferry_security_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .provider_id = FERRY_SECURITY_PROVIDER_LOCAL,
    .capabilities = FERRY_SECURITY_MUTUAL | FERRY_SECURITY_LOCAL_TRANSPORT_ONLY |
                    FERRY_SECURITY_KERNEL_PROTECTED,
    .max_token_size = 16,
    .check_settings = &checkSettings,
    .acquire_credentials = &acquireCredentials,
    .free_credentials = &freeCredentials,
    .init_context = &initContext,
    .accept_context = &acceptContext,
    .step = &step,
    .query_peer = &queryPeer,
    .export_secret = &exportSecret,
    .free_context = &freeContext,
    .strerror = &strerror,
};

const ferry_plugin_v1 kDescriptor = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_SECURITY,
    .name = "local",
    .description = "kernel peer credentials over the pipe (uid:N); the kernel keeps frames private",
    .table = &kTable,
};

}  // namespace

FERRY_LOCAL_EXPORT const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1*) {
  return &kDescriptor;
}
