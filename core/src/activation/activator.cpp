#include "activator.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>

#include <capnp/message.h>
#include <kj/exception.h>

#include <ferry/error.h>

#include "../error-impl.h"
#include "../log.h"
#include "../orpc/call-table.h"
#include "../orpc/frame.h"
#include "../runtime-impl.h"
#include "activation.capnp.h"
#include "frames.h"

namespace ferry::detail::activation {

Activator::Activator(RuntimeImpl& runtime, orpc::Network& network)
    : _runtime(runtime), _network(network), _directory(runtime.options.classDirectory) {
  if (!_directory.empty()) {
    _classes = readClassDirectory(_directory);
    FERRY_LOG(info, "ferryd: " << _classes.size() << " class files in " << _directory);
  }
}

std::vector<std::string> Activator::baseEnvironment() const {
  std::vector<std::string> out{"PATH=/usr/local/bin:/usr/bin:/bin"};
  // The server registers with this ferryd, wherever its pipe is.
  for (const StringBindingData& binding : _network.bindings()) {
    if (binding.protseq == "pipe") out.push_back("FERRY_RESOLVER=" + bindingText(binding));
  }
  // ferry's own settings and the sanitizers' pass through; nothing else of ferryd's environment.
  for (const char* name : {"FERRY_PLUGIN_PATH", "FERRY_LOG", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                           "LSAN_OPTIONS", "TSAN_OPTIONS"}) {
    if (const char* value = std::getenv(name)) out.push_back(std::string(name) + "=" + value);
  }
  return out;
}

// ---- class objects -----------------------------------------------------------------------------

void Activator::classObject(LinkId link, int32_t pid, const std::string& clsid, bool singleUse,
                            bool revoke) {
  std::vector<ClassObject>& objects = _classObjects[clsid];
  if (!revoke && std::any_of(objects.begin(), objects.end(), [&](const ClassObject& o) {
        return o.link == link && o.used;
      })) {
    return;  // the registration that activation used, again
  }
  std::erase_if(objects, [&](const ClassObject& o) { return o.link == link; });
  if (revoke) {
    if (objects.empty()) _classObjects.erase(clsid);
    return;
  }
  if (auto server = _servers.find(pid); server != _servers.end()) {
    if (server->second.exiting) return;  // asked to exit: it gets no more activations
    server->second.registered = true;
    server->second.link = link;
  }
  if (singleUse) _singleUse.insert(clsid);
  objects.push_back({link, pid, singleUse});
  FERRY_LOG(debug, "ferryd: pid " << pid << " registered class " << clsid
                                  << (singleUse ? " (singleUse)" : ""));
  pump(clsid);
}

// ---- activation --------------------------------------------------------------------------------

std::string Activator::refusal(const orpc::LinkInfo& info, const std::string& clsid) const {
  auto file = _classes.find(clsid);
  if (file == _classes.end() || file->second.allow.empty()) return "";
  const std::vector<std::string>& allow = file->second.allow;
  std::string requester = !info.principal.empty() ? info.principal
                          : info.hasCredentials   ? "uid:" + std::to_string(info.uid)
                                                  : "";
  if (!requester.empty() && std::find(allow.begin(), allow.end(), requester) != allow.end()) {
    return "";
  }
  return "the class file " + file->second.path + " allows only its `allow` requesters to "
         "activate '" + clsid + "', and " +
         (requester.empty() ? std::string("this requester is anonymous (no security provider)")
                            : "'" + requester + "' is not among them");
}

void Activator::activate(LinkId client, uint64_t callId, const std::string& clsid, uint64_t iid,
                         Clock::time_point deadline) {
  if (_classObjects.count(clsid) == 0 && _classes.count(clsid) == 0 &&
      launchesInProgress(clsid) == 0) {
    return answerError(
        client, callId, Errc::classNotRegistered,
        "no process of this host registered a class object for '" + clsid + "', and ferryd " +
            (_directory.empty() ? std::string("has no class directory (class_directory)")
                                : "has no class file " + _directory + "/" + clsid + ".class") +
            " to launch a server from");
  }
  // A request waits at most its requester's call timeout, or its class's start timeout.
  if (auto file = _classes.find(clsid); file != _classes.end()) {
    deadline = std::max(deadline, Clock::now() + file->second.startTimeout);
  }
  _waiting[clsid].push_back({client, callId, iid, deadline});
  pump(clsid);
}

void Activator::pump(const std::string& clsid) {
  auto waiting = _waiting.find(clsid);
  if (waiting == _waiting.end()) return;
  std::deque<Waiter>& queue = waiting->second;
  while (!queue.empty()) {
    auto objects = _classObjects.find(clsid);
    if (objects == _classObjects.end()) break;
    auto usable = std::find_if(objects->second.begin(), objects->second.end(),
                               [](const ClassObject& o) { return !o.used; });
    if (usable == objects->second.end()) break;
    if (usable->singleUse) usable->used = true;
    ClassObject object = *usable;
    Waiter waiter = queue.front();
    queue.pop_front();
    forward(object, clsid, waiter);
  }
  if (queue.empty()) {
    _waiting.erase(waiting);
    return;
  }
  if (_classes.count(clsid) == 0) {
    // A class object went (revoked, used) and there is nothing to launch.
    for (const Waiter& w : queue) {
      answerError(w.client, w.callId, Errc::classNotRegistered,
                  "the class object for '" + clsid +
                      "' was withdrawn, and ferryd has no class file to launch another");
    }
    _waiting.erase(waiting);
    return;
  }
  size_t wanted = _singleUse.count(clsid) != 0 ? queue.size() : 1;
  for (size_t running = launchesInProgress(clsid); running < wanted; ++running) {
    try {
      launch(clsid);
    } catch (const Error& e) {
      FERRY_LOG(warn, "ferryd: " << e.message());
      launchFailed(clsid, e.code(), e.message());
      return;
    }
  }
}

void Activator::forward(const ClassObject& object, const std::string& clsid, const Waiter& waiter) {
  Request request{Asked::activate, object.link,  object.pid,  waiter.client,
                  waiter.callId,   clsid,        waiter.iid,  waiter.deadline};
  if (auto server = _servers.find(object.pid); server != _servers.end()) {
    ++server->second.activationsInFlight;
    server->second.idleSince.reset();
  }
  ask(object.link, request, false, false, clsid, waiter.iid);
}

uint64_t Activator::ask(LinkId link, Request request, bool idle, bool exit,
                        const std::string& clsid, uint64_t iid) {
  uint64_t callId = orpc::CallTable::nextCallId();
  _requests[callId] = request;
  _network.send(link, idle ? idleQueryFrame(callId)
                      : exit ? exitFrame(callId)
                             : activateFrame(callId, clsid, iid));
  return callId;
}

size_t Activator::launchesInProgress(const std::string& clsid) const {
  size_t n = 0;
  for (const auto& [pid, server] : _servers) n += server.clsid == clsid && !server.registered;
  return n;
}

void Activator::launch(const std::string& clsid) {
  const ClassFile& file = _classes.at(clsid);
  pid_t pid = _launcher.launch(file, baseEnvironment());
  ++_launches;
  FERRY_LOG(info, "ferryd: launched " << file.executable << " (pid " << pid << ") for class "
                                      << clsid << (file.user ? " as user " + *file.user : ""));
  Server& server = _servers[pid];
  server.clsid = clsid;
  server.startBy = Clock::now() + file.startTimeout;
}

void Activator::launchFailed(const std::string& clsid, Errc code, const std::string& why) {
  auto waiting = _waiting.find(clsid);
  if (waiting == _waiting.end()) return;
  std::deque<Waiter>& queue = waiting->second;
  // The launches still in progress serve one request each (singleUse) or all of them.
  size_t served = launchesInProgress(clsid);
  if (_singleUse.count(clsid) == 0 && served > 0) return;
  while (queue.size() > served) {
    answerError(queue.front().client, queue.front().callId, code, why);
    queue.pop_front();
  }
  if (queue.empty()) _waiting.erase(waiting);
}

void Activator::answerError(LinkId link, uint64_t callId, Errc code, const std::string& message) {
  _network.send(link, errorReplyFrame(callId, code, message));
}

// ---- replies -----------------------------------------------------------------------------------

bool Activator::reply(LinkId link, uint64_t callId, OrpcMessage& message) {
  auto it = _requests.find(callId);
  if (it == _requests.end() || !(it->second.server == link)) return false;
  Request request = it->second;
  _requests.erase(it);
  auto server = _servers.find(request.pid);
  try {
    auto reply = message.root<wire::ActivationReply>();
    switch (request.what) {
      case Asked::activate: {
        if (server != _servers.end()) --server->second.activationsInFlight;
        if (reply.isError() && reply.getError().getCode() ==
                                   static_cast<uint16_t>(Errc::classNotRegistered)) {
          // The server revoked the class object as ferryd sent the request: ask another.
          auto objects = _classObjects.find(request.clsid);
          if (objects != _classObjects.end()) {
            std::erase_if(objects->second, [&](const ClassObject& o) { return o.link == link; });
          }
          _waiting[request.clsid].push_back(
              {request.client, request.clientCallId, request.iid, request.deadline});
          pump(request.clsid);
          break;
        }
        capnp::MallocMessageBuilder copy(256);
        copy.setRoot(reply);
        _network.send(request.client, orpc::encodeFrame(orpc::FrameKind::activationReply,
                                                        request.clientCallId, Oxid(), copy));
        break;
      }
      case Asked::idleQuery: {
        if (server == _servers.end()) break;
        Server& s = server->second;
        s.idleQuery = 0;
        if (!reply.isIdle() || reply.getIdle() != 0 || s.activationsInFlight != 0) {
          s.idleSince.reset();
          break;
        }
        auto now = Clock::now();
        if (!s.idleSince) s.idleSince = now;
        const ClassFile& file = _classes.at(s.clsid);
        if (s.exiting || now - *s.idleSince < file.idleTimeout || !s.link) break;
        // COM's local-server rule: no references left for the idle timeout.
        s.exiting = true;
        for (auto& [clsid, objects] : _classObjects) {
          std::erase_if(objects, [&](const ClassObject& o) { return o.pid == request.pid; });
        }
        std::erase_if(_classObjects, [](const auto& entry) { return entry.second.empty(); });
        FERRY_LOG(info, "ferryd: asking pid " << request.pid << " (class " << s.clsid
                                              << ") to exit: idle for "
                                              << file.idleTimeout.count() << " ms");
        ask(*s.link, Request{Asked::exit, *s.link, request.pid, {}, 0, s.clsid, 0, {}}, false, true, {}, 0);
        break;
      }
      case Asked::exit:
        break;
    }
  } catch (const kj::Exception& e) {
    if (request.what == Asked::activate) {
      answerError(request.client, request.clientCallId, Errc::protocolError,
                  "the server process " + std::to_string(request.pid) +
                      " answered the activation with a malformed reply");
    }
    _network.reject(link, "malformed activation reply: " +
                              std::string(kjReason(e.getDescription().cStr())));
  }
  return true;
}

bool Activator::sendFailed(LinkId link, uint64_t callId, const std::string& why) {
  auto it = _requests.find(callId);
  if (it == _requests.end() || !(it->second.server == link)) return false;
  Request request = it->second;
  _requests.erase(it);
  if (request.what == Asked::activate) {
    if (auto s = _servers.find(request.pid); s != _servers.end()) --s->second.activationsInFlight;
    answerError(request.client, request.clientCallId, Errc::unavailable,
                "ferryd could not ask server process " + std::to_string(request.pid) +
                    " for an instance: " + why);
  }
  return true;
}

void Activator::ended(LinkId link) {
  std::set<std::string> changed;
  for (auto& [clsid, objects] : _classObjects) {
    if (std::erase_if(objects, [&](const ClassObject& o) { return o.link == link; }) != 0) {
      changed.insert(clsid);
    }
  }
  std::erase_if(_classObjects, [](const auto& entry) { return entry.second.empty(); });
  for (auto& [pid, server] : _servers) {
    if (server.link == link) server.link.reset();
  }
  for (auto it = _requests.begin(); it != _requests.end();) {
    const Request& r = it->second;
    if (r.server == link && r.what == Asked::activate && !(r.client == link)) {
      // The server exited or crashed before it answered: the request waits for another.
      FERRY_LOG(info, "ferryd: server process " << r.pid << " closed its connection before it "
                                                  "answered an activation of " << r.clsid
                                                << "; asking another");
      _waiting[r.clsid].push_back({r.client, r.clientCallId, r.iid, r.deadline});
      changed.insert(r.clsid);
    }
    if (r.server == link || r.client == link) {
      it = _requests.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [clsid, queue] : _waiting) {
    std::erase_if(queue, [&](const Waiter& w) { return w.client == link; });
  }
  std::erase_if(_waiting, [](const auto& entry) { return entry.second.empty(); });
  for (const std::string& clsid : changed) pump(clsid);
}

void Activator::tick(Clock::time_point now) {
  for (const Launcher::Exit& exit : _launcher.poll()) {
    auto it = _servers.find(exit.pid);
    if (it == _servers.end()) continue;  // timed out and killed: already answered
    Server server = std::move(it->second);
    _servers.erase(it);
    std::string stderrPart =
        exit.stderrTail.empty() ? " and wrote nothing to standard error"
                                : "; its last lines of standard error:\n" + exit.stderrTail;
    if (!server.registered) {
      const ClassFile& file = _classes.at(server.clsid);
      std::string why = "the server of class '" + server.clsid + "' (" + file.executable +
                        ", pid " + std::to_string(exit.pid) + ", from " + file.path + ") " +
                        exit.description + " before it registered its class object" +
                        stderrPart;
      FERRY_LOG(warn, "ferryd: " << why);
      launchFailed(server.clsid, Errc::serverStartFailed, why);
    } else if (server.exiting && WIFEXITED(exit.status) && WEXITSTATUS(exit.status) == 0) {
      FERRY_LOG(info, "ferryd: pid " << exit.pid << " (class " << server.clsid << ") exited");
    } else {
      FERRY_LOG(warn, "ferryd: the server of class " << server.clsid << " (pid " << exit.pid
                                                     << ") " << exit.description << stderrPart);
    }
    pump(server.clsid);
  }
  std::vector<pid_t> late;
  for (auto& [pid, server] : _servers) {
    if (!server.registered && now >= server.startBy) late.push_back(pid);
  }
  for (pid_t pid : late) {
    Server server = std::move(_servers.at(pid));
    _servers.erase(pid);
    _launcher.kill(pid);
    const ClassFile& file = _classes.at(server.clsid);
    std::string why = "the server of class '" + server.clsid + "' (" + file.executable + ", pid " +
                      std::to_string(pid) + ") started but did not register its class object "
                      "within start_timeout_ms = " + std::to_string(file.startTimeout.count()) +
                      " of " + file.path + "; ferryd killed it. Check that it calls "
                      "ferry::registerClassObject for '" + server.clsid +
                      "', or raise start_timeout_ms";
    FERRY_LOG(warn, "ferryd: " << why);
    launchFailed(server.clsid, Errc::deadlineExceeded, why);
    pump(server.clsid);
  }
  // Requests that waited too long (their requester has given up by now).
  for (auto& [clsid, queue] : _waiting) {
    std::erase_if(queue, [&](const Waiter& w) {
      if (now < w.deadline) return false;
      answerError(w.client, w.callId, Errc::deadlineExceeded,
                  "no server of class '" + clsid + "' could take the activation in time");
      return true;
    });
  }
  std::erase_if(_waiting, [](const auto& entry) { return entry.second.empty(); });
  // Idle servers.
  for (auto& [pid, server] : _servers) {
    if (!server.link || server.exiting || server.idleQuery != 0) continue;
    if (_classes.at(server.clsid).idleTimeout.count() == 0) continue;
    server.idleQuery = ask(*server.link, Request{Asked::idleQuery, *server.link, pid, {}, 0, server.clsid, 0, {}}, true,
                           false, {}, 0);
  }
}

}  // namespace ferry::detail::activation
