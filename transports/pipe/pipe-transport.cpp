// The pipe transport plugin: framed messages over Unix-domain stream sockets, for processes of one
// host.
//
// Bindings: the address is a directory — "" for the host's runtime directory (host->runtime_dir),
// or an absolute path — and the endpoint a socket file name in it, [A-Za-z0-9._-]{1,64} (not "."
// or ".."). Listening on "" picks a unique name ("ferry-<pid>-<n>"). The directory must exist and
// be writable by neither group nor others, or a socket in it could be replaced by someone else's.
// To listen, it must also belong to this process's effective uid or to root. To connect, it may
// belong to another user (ferryd's /run/ferry is its service user's): the connecting process
// trusts that user by choosing the binding. The whole path must fit sockaddr_un.
//
// A listener's socket admits its own user only (mode 0600), or every local user with
// FERRY_LISTEN_ALL_LOCAL_USERS (0666: ferryd's, where every process of the host registers).
//
// A listener replaces a socket file left by a dead process (connecting to it is refused), never
// one that a live listener still answers on; the file is removed when the listener closes. A
// listener with a generated name also removes the generated-name sockets of this user's dead
// processes in its directory (killed processes cannot remove theirs): those whose pid no longer
// exists and that refuse connections.
// Peers are described as "pipe:<socket path>" with the kernel's credentials (SO_PEERCRED).
#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "stream-transport.h"

namespace ferry::transports {
namespace {

// The host given to the entry point: check_binding has no instance, yet "" means its runtime
// directory.
const ferry_host_v1* gHost = nullptr;

// Numbers the generated socket names of this process.
std::atomic<uint64_t> gNextName{1};

constexpr size_t kMaxNameLength = 64;

const char* runtimeDirectory(const ferry_host_v1* host) {
  if (!hostCovers(host, offsetof(ferry_host_v1, runtime_dir) + sizeof(host->runtime_dir))) {
    return nullptr;
  }
  return host->runtime_dir;
}

// "ferry-<pid>-<n>", as resolve() generates; the pid, or 0 for another name.
pid_t generatedNamePid(const char* name) {
  static constexpr char kPrefix[] = "ferry-";
  if (std::strncmp(name, kPrefix, sizeof kPrefix - 1) != 0) return 0;
  const char* p = name + sizeof kPrefix - 1;
  long long pid = 0;
  const char* digits = p;
  while (*p >= '0' && *p <= '9' && pid < (1LL << 31)) pid = pid * 10 + (*p++ - '0');
  if (p == digits || *p != '-' || pid <= 0 || pid >= (1LL << 31)) return 0;
  const char* counter = ++p;
  while (*p >= '0' && *p <= '9') ++p;
  return p != counter && *p == '\0' ? static_cast<pid_t>(pid) : 0;
}

bool validName(const char* name) {
  size_t length = std::strlen(name);
  if (length == 0 || length > kMaxNameLength) return false;
  if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) return false;
  for (size_t i = 0; i < length; ++i) {
    char c = name[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

struct SocketPath {
  std::string name;  // the endpoint
  std::string path;  // directory + "/" + name
};

// Resolves and checks a binding; 0, or an error with the reason in `why`. Reads the file system
// (stat) but changes nothing.
int resolve(const char* runtimeDir, const char* address, const char* endpoint, bool forListen,
            SocketPath& out, std::string& why) {
  if (address == nullptr || endpoint == nullptr) {
    why = "null address or endpoint";
    return UV_EINVAL;
  }
  std::string directory;
  if (*address == '\0') {
    if (runtimeDir == nullptr || *runtimeDir == '\0') {
      why = "the host gave no runtime directory; name a directory as the address";
      return UV_EINVAL;
    }
    directory = runtimeDir;
  } else {
    directory = address;
  }
  if (directory[0] != '/') {
    why = "directory " + quoted(address) + " is not an absolute path";
    return UV_EINVAL;
  }
  while (directory.size() > 1 && directory.back() == '/') directory.pop_back();

  if (*endpoint == '\0') {
    if (!forListen) {
      why = "no socket name to connect to";
      return UV_EINVAL;
    }
    out.name = "ferry-" + std::to_string(getpid()) + "-" + std::to_string(gNextName++);
  } else if (validName(endpoint)) {
    out.name = endpoint;
  } else {
    why = "socket name " + quoted(endpoint) + " must be 1 to 64 of A-Z a-z 0-9 . _ - "
          "(and not . or ..)";
    return UV_EINVAL;
  }
  out.path = directory + "/" + out.name;
  if (out.path.size() >= sizeof(sockaddr_un::sun_path)) {
    why = "socket path " + quoted(out.path.c_str()) + " is " + std::to_string(out.path.size()) +
          " bytes; a Unix socket address holds at most " +
          std::to_string(sizeof(sockaddr_un::sun_path) - 1);
    return UV_ENAMETOOLONG;
  }

  struct stat st {};
  if (stat(directory.c_str(), &st) != 0) {
    int err = -errno;
    why = "directory " + quoted(directory.c_str()) + ": " + uv_strerror(err);
    return err;
  }
  if (!S_ISDIR(st.st_mode)) {
    why = quoted(directory.c_str()) + " is not a directory";
    return UV_ENOTDIR;
  }
  // To listen: our own directory, or root's, so that nobody else could swap our socket as long
  // as group and others cannot write to it (checked next).
  if (forListen && st.st_uid != geteuid() && st.st_uid != 0) {
    why = "directory " + quoted(directory.c_str()) + " belongs to uid " +
          std::to_string(st.st_uid) + ", neither this process's uid " +
          std::to_string(geteuid()) + " nor root";
    return UV_EACCES;
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    why = "directory " + quoted(directory.c_str()) + " (mode " + mode +
          ") is writable by group or others, who could replace its sockets";
    return UV_EACCES;
  }
  return 0;
}

class PipeTransport final : public StreamTransport {
public:
  static constexpr const char* kName = "pipe";

  PipeTransport(const ferry_host_v1* host, uv_loop_t* loop, const ferry_transport_events_v1& events,
                const StreamLimits& limits)
      : StreamTransport(kName, host, loop, events, limits) {}

private:
  int initHandle(StreamHandle& handle) override { return uv_pipe_init(loop(), &handle.pipe, 0); }

  uint32_t listenFlags() const noexcept override { return FERRY_LISTEN_ALL_LOCAL_USERS; }

  int bindListener(Listener& listener, const char* address, const char* endpoint,
                   std::string& bound) override {
    SocketPath socket;
    std::string why;
    int err = resolve(runtimeDirectory(host()), address, endpoint, true, socket, why);
    if (err == 0 && *endpoint == '\0') removeDeadProcessSockets(socket.path);
    if (err == 0) err = removeStaleSocket(socket.path, why);
    if (err != 0) {
      log(FERRY_LOG_WARN, "cannot listen: " + why);
      return err;
    }
    err = openHandle(listener);
    if (err != 0) return err;
    err = uv_pipe_bind(&listener.handle.pipe, socket.path.c_str());
    if (err != 0) {
      log(FERRY_LOG_WARN, "cannot bind " + quoted(socket.path.c_str()) + ": " + uv_strerror(err));
      return err;
    }
    // Connecting takes write permission on the socket file.
    bool everyone = (listener.flags & FERRY_LISTEN_ALL_LOCAL_USERS) != 0;
    if (chmod(socket.path.c_str(), everyone ? 0666 : 0600) != 0) {
      err = -errno;
      log(FERRY_LOG_WARN, "cannot set the mode of " + quoted(socket.path.c_str()) + ": " +
                              uv_strerror(err));
      return err;
    }
    listener.path = socket.path;
    bound = socket.name;
    return 0;
  }

  int startConnect(Connection& connection, const char* address, const char* endpoint) override {
    SocketPath socket;
    std::string why;
    int err = resolve(runtimeDirectory(host()), address, endpoint, false, socket, why);
    if (err != 0) {
      log(FERRY_LOG_WARN, "cannot connect: " + why);
      return err;
    }
    err = openHandle(connection);
    if (err != 0) return err;
    connection.target = socket.path;
    // Reports every failure (ENOENT, ECONNREFUSED, ...) through onConnectDone.
    uv_pipe_connect(&connection.connectRequest, &connection.handle.pipe, socket.path.c_str(),
                    &onConnectDone);
    return 0;
  }

  int establish(Connection& connection, const Listener* listener, PeerDescription& peer) override {
    uv_os_fd_t fd = -1;
    int err = uv_fileno(&connection.handle.handle, &fd);
    if (err != 0) return err;
    ucred credentials{};
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -errno;
    peer.hasCredentials = true;
    peer.uid = credentials.uid;
    peer.gid = credentials.gid;
    peer.pid = credentials.pid;
    peer.address = "pipe:" + (listener != nullptr ? listener->path : connection.target);
    return 0;
  }

  // In the directory of `ownPath`: removes the sockets with generated names of this user's
  // processes that are gone (no such pid, and connecting is refused). Leaves everything else.
  void removeDeadProcessSockets(const std::string& ownPath) {
    std::string directory = ownPath.substr(0, ownPath.rfind('/'));
    DIR* listing = opendir(directory.c_str());
    if (listing == nullptr) return;
    while (const dirent* entry = readdir(listing)) {
      pid_t pid = generatedNamePid(entry->d_name);
      if (pid == 0 || pid == getpid()) continue;
      if (kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to signal)
      std::string path = directory + "/" + entry->d_name;
      struct stat st {};
      if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
        continue;
      }
      std::string why;
      removeStaleSocket(path, why);  // leaves a socket that still answers
    }
    closedir(listing);
  }

  // Removes a socket file nobody listens on any more (connecting is refused), so that a
  // restarted process can take its name again. Refuses a live socket and anything not a socket.
  int removeStaleSocket(const std::string& path, std::string& why) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return 0;
      int err = -errno;
      why = quoted(path.c_str()) + ": " + uv_strerror(err);
      return err;
    }
    if (!S_ISSOCK(st.st_mode)) {
      why = quoted(path.c_str()) + " exists and is not a socket";
      return UV_EEXIST;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) {
      int err = -errno;
      why = std::string("cannot probe an existing socket: ") + uv_strerror(err);
      return err;
    }
    sockaddr_un name{};
    name.sun_family = AF_UNIX;
    std::memcpy(name.sun_path, path.c_str(), path.size() + 1);
    int result = ::connect(probe, reinterpret_cast<const sockaddr*>(&name), sizeof(name));
    int connectErrno = errno;
    ::close(probe);
    if (result == 0 || connectErrno == EAGAIN || connectErrno == EINPROGRESS) {
      why = quoted(path.c_str()) + " is in use by a live listener";
      return UV_EADDRINUSE;
    }
    if (connectErrno != ECONNREFUSED) {
      why = "cannot probe " + quoted(path.c_str()) + ": " + uv_strerror(-connectErrno);
      return -connectErrno;
    }
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      int err = -errno;
      why = "cannot remove the stale socket " + quoted(path.c_str()) + ": " + uv_strerror(err);
      return err;
    }
    log(FERRY_LOG_INFO, "removed the stale socket " + quoted(path.c_str()));
    return 0;
  }
};

int checkBinding(const char* address, const char* endpoint) noexcept {
  try {
    SocketPath socket;
    std::string why;
    return resolve(runtimeDirectory(gHost), address, endpoint, false, socket, why);
  } catch (...) {
    return UV_ENOMEM;
  }
}

// This host only, the cheapest: no network stack, and the kernel says who connected.
constexpr ferry_transport_v1 kTable =
    streamTable<PipeTransport>(&checkBinding,
                FERRY_TRANSPORT_LOCAL_ONLY | FERRY_TRANSPORT_KERNEL_CREDENTIALS |
                    FERRY_TRANSPORT_PATH_ADDRESSES,
                100);

const ferry_plugin_v1 kDescriptor = {
    .struct_size = sizeof(ferry_plugin_v1),
    .abi_version = FERRY_PLUGIN_ABI_VERSION,
    .kind = FERRY_PLUGIN_TRANSPORT,
    .name = PipeTransport::kName,
    .description = "Unix-domain sockets: a private directory and a socket name; peer credentials",
    .table = &kTable,
};

}  // namespace
}  // namespace ferry::transports

FERRY_PLUGIN_EXPORT const ferry_plugin_v1* ferry_plugin_entry_v1(const ferry_host_v1* host) {
  using namespace ferry::transports;
  if (!hostCovers(host, offsetof(ferry_host_v1, log) + sizeof(host->log))) return nullptr;
  if (runtimeDirectory(host) == nullptr) {
    if (host->log != nullptr) {
      host->log(host->context, FERRY_LOG_ERROR, "pipe", "the host hands in no runtime directory");
    }
    return nullptr;
  }
  gHost = host;
  ignoreSigpipe();
  return &kDescriptor;
}
