// The C ABI side of a transport plugin, once for all of them, streams and datagrams alike: the
// ferry_transport_v1 table functions that only forward to the instance, the guards that keep C++
// exceptions from crossing into the host or into libuv, the checks of what the host hands in,
// and the strerror every plugin uses. Each plugin keeps its own create and check_binding, and
// fills its table with the functions of AbiGlue<its transport class>. What only stream plugins
// share (framing, connections over a stream socket) is stream-transport.h.
//
// `Transport` is the plugin's instance class; the handle the host holds is a pointer to it
// (wrap/unwrap). It must offer
//   void log(int level, const std::string& message)   one line through the host; never throws
// and, for each table function the plugin takes from AbiGlue, the member of that name (destroy,
// listen, connect, send, sendAnyThread, close, counters, connectionInfo, receiveAnyThread) with the table
// function's arguments. A member may throw: the guards log what it threw, and a function that
// returns an error returns UV_ENOMEM for std::bad_alloc and UV_EIO for anything else.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include <uv.h>

#include <ferry/plugin/transport.h>

namespace ferry::transports {

// ferry's largest message is 16 MiB of payload; 64 KiB more leaves room for its headers.
inline constexpr size_t kMaxMessageSize = 16 * 1024 * 1024 + 64 * 1024;

// The strerror of every plugin: libuv's static text for a UV_E* code.
const char* transportStrerror(int error) noexcept;

// Ignores SIGPIPE for the process unless the application installed its own disposition: a peer
// that vanishes while a write is queued must close that connection (EPIPE), not kill the process,
// and uv_write cannot ask for MSG_NOSIGNAL.
void ignoreSigpipe() noexcept;

// True when `host` is non-null and its struct_size covers the first `fieldEnd` bytes, e.g.
// offsetof(ferry_host_v1, runtime_dir) + sizeof(char*) before reading runtime_dir.
bool hostCovers(const ferry_host_v1* host, size_t fieldEnd) noexcept;

// `text` in single quotes for a log line: at most 80 characters, anything unprintable as '?'
// (the host's log takes one line; bindings come from peers and callers).
std::string quoted(const char* text);

// Marks the one symbol a plugin exports; the modules are built with hidden visibility.
#define FERRY_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

// Checks create()'s arguments as every plugin must; 0 or UV_EINVAL.
int validateCreate(const ferry_host_v1* host, uv_loop_t* loop,
                   const ferry_transport_events_v1* events, ferry_transport** out) noexcept;

// Runs a libuv callback's body; nothing it throws goes back into libuv.
template <typename Transport, typename Body>
void guarded(Transport* transport, const char* where, Body&& body) noexcept {
  try {
    body();
  } catch (const std::exception& e) {
    transport->log(FERRY_LOG_ERROR, std::string(where) + ": " + e.what());
  } catch (...) {
    transport->log(FERRY_LOG_ERROR, std::string(where) + ": unknown exception");
  }
}

// Runs a table function's body; what it throws becomes an error return.
template <typename Transport, typename Body>
int guardedCall(Transport* transport, const char* where, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    transport->log(FERRY_LOG_ERROR, std::string(where) + ": out of memory");
    return UV_ENOMEM;
  } catch (const std::exception& e) {
    transport->log(FERRY_LOG_ERROR, std::string(where) + ": " + e.what());
    return UV_EIO;
  } catch (...) {
    transport->log(FERRY_LOG_ERROR, std::string(where) + ": unknown exception");
    return UV_EIO;
  }
}

// The last step of destroy(), once the instance has deleted itself: the host's `done` callback.
inline void reportDestroyed(void (*done)(void* arg), void* arg) noexcept {
  if (done == nullptr) return;
  try {
    done(arg);
  } catch (...) {
    // The host broke the ABI by throwing; the instance is gone, there is nobody left to tell.
  }
}

// The table functions that forward to a `Transport`. A null handle is refused with UV_EINVAL
// (or ignored, where the function returns nothing).
template <typename Transport>
struct AbiGlue {
  static ferry_transport* wrap(Transport* transport) noexcept {
    return reinterpret_cast<ferry_transport*>(transport);
  }

  static Transport* unwrap(ferry_transport* transport) noexcept {
    return reinterpret_cast<Transport*>(transport);
  }

  static void destroy(ferry_transport* transport, void (*done)(void* arg), void* arg) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr) return;
    guarded(self, "destroy", [&] { self->destroy(done, arg); });
  }

  static int listen(ferry_transport* transport, const char* address, const char* endpoint,
                    char* endpointOut, size_t endpointCap) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr) return UV_EINVAL;
    return guardedCall(self, "listen",
                       [&] { return self->listen(address, endpoint, endpointOut, endpointCap); });
  }

  static int listenWithFlags(ferry_transport* transport, const char* address, const char* endpoint,
                             uint32_t flags, char* endpointOut, size_t endpointCap) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr) return UV_EINVAL;
    return guardedCall(self, "listen", [&] {
      return self->listen(address, endpoint, endpointOut, endpointCap, flags);
    });
  }

  static int connect(ferry_transport* transport, const char* address, const char* endpoint,
                     uint32_t timeoutMs, ferry_conn_id* connOut) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr) return UV_EINVAL;
    return guardedCall(self, "connect",
                       [&] { return self->connect(address, endpoint, timeoutMs, connOut); });
  }

  static int send(ferry_transport* transport, ferry_conn_id conn, const uint8_t* data,
                  size_t size) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr) return UV_EINVAL;
    return guardedCall(self, "send", [&] { return self->send(conn, data, size); });
  }

  // Instantiated only for a plugin that offers send_any_thread.
  static int sendAnyThread(ferry_transport* transport, ferry_conn_id conn, const uint8_t* data,
                           size_t size) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr) return UV_EINVAL;
    return guardedCall(self, "send_any_thread",
                       [&] { return self->sendAnyThread(conn, data, size); });
  }

  // Instantiated only for a plugin that offers counters.
  static int counters(ferry_transport* transport, ferry_counter_v1* out, size_t cap) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr) return UV_EINVAL;
    return guardedCall(self, "counters", [&] { return self->counters(out, cap); });
  }

  // Instantiated only for a plugin that offers connection_info. The instance's member fills a
  // zeroed ferry_connection_info_v1; only the part of it the host's struct_size covers is copied
  // out.
  static int connectionInfo(ferry_transport* transport, ferry_conn_id conn,
                            ferry_connection_info_v1* out) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr || out == nullptr ||
        out->struct_size < offsetof(ferry_connection_info_v1, reserved)) {
      return UV_EINVAL;
    }
    return guardedCall(self, "connection_info", [&] {
      ferry_connection_info_v1 info{};
      int err = self->connectionInfo(conn, info);
      if (err != 0) return err;
      size_t size = std::min<size_t>(out->struct_size, sizeof info);
      info.struct_size = static_cast<uint32_t>(size);
      std::memcpy(out, &info, size);
      return 0;
    });
  }

  // Instantiated only for a plugin that offers receive_any_thread.
  static int receiveAnyThread(ferry_transport* transport, ferry_conn_id conn,
                              const uint8_t* data, size_t size, int wakeFd, uint32_t timeoutMs,
                              int (*take)(void* context, const uint8_t* data, size_t size),
                              void* context) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr || take == nullptr) return UV_EINVAL;
    return guardedCall(self, "receive_any_thread", [&] {
      return self->receiveAnyThread(conn, data, size, wakeFd, timeoutMs, take, context);
    });
  }

  static void close(ferry_transport* transport, ferry_conn_id conn) noexcept {
    Transport* self = unwrap(transport);
    if (self == nullptr) return;
    guarded(self, "close", [&] { self->close(conn); });
  }
};

}  // namespace ferry::transports
