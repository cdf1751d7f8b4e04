// ferryd's side of activation: the class objects the processes of its host registered (frame
// kind 19), the class files it launches servers from, and the activation requests waiting for a
// server (core/schema/activation.capnp).
//
// An activation of class C goes to the first class object of C registered by a process that is
// not being asked to exit (a singleUse one is then withdrawn); when that process's connection
// closes before it answers (it crashed), the request waits again, as a new one would. Without one, the request waits for
// C, and ferryd launches C's server from its class file: one launch at a time while C is not known
// to be singleUse, one per waiting request once a server registered C singleUse. A launch that
// does not register C within the class file's start timeout is killed (deadlineExceeded); one that
// exits first fails the requests it was launched for (serverStartFailed, with its exit status and
// last lines of standard error, also logged). A server ferryd launched is asked how many objects
// it holds for others about once a second; one that held none for its class file's idle timeout
// is asked to exit (and gets no more activations). One thread (the network thread).
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "../message.h"
#include "../orpc/link.h"
#include "../orpc/network.h"
#include "class-file.h"
#include "launcher.h"

namespace ferry::detail {
class RuntimeImpl;
}

namespace ferry::detail::activation {

class Activator {
public:
  using LinkId = orpc::LinkId;
  using Clock = std::chrono::steady_clock;

  // Reads RuntimeOptions::classDirectory (throws as readClassDirectory does).
  Activator(RuntimeImpl& runtime, orpc::Network& network);

  // A class object registered (or revoked) over `link` by process `pid` of this host.
  void classObject(LinkId link, int32_t pid, const std::string& clsid, bool singleUse,
                   bool revoke);
  // Why the class file of `clsid` does not let `info`'s requester activate it, or "" (its
  // `allow` lines; none: everyone).
  std::string refusal(const orpc::LinkInfo& info, const std::string& clsid) const;
  // A client's activation request, already admitted; answered on `client` with `callId`.
  void activate(LinkId client, uint64_t callId, const std::string& clsid, uint64_t iid,
                Clock::time_point deadline);
  // An ActivationReply: true when it answers one of ferryd's own requests (then it is handled).
  bool reply(LinkId link, uint64_t callId, OrpcMessage& message);
  // A request of ferryd's could not be sent: true when it was one.
  bool sendFailed(LinkId link, uint64_t callId, const std::string& why);
  void ended(LinkId link);
  void tick(Clock::time_point now);

  // What ferryd did, for its log and the tests: servers launched since it started.
  uint64_t launches() const noexcept { return _launches; }

private:
  struct ClassObject {
    LinkId link;
    int32_t pid = 0;
    bool singleUse = false;
    // A singleUse one ferryd sent an activation: kept, so that the same registration arriving
    // again (sent twice around a reconnection) is not taken for a new one, until the server's
    // revocation, which follows it on the same connection.
    bool used = false;
  };
  struct Waiter {
    LinkId client;
    uint64_t callId = 0;
    uint64_t iid = 0;
    Clock::time_point deadline;
  };
  // A server process ferryd launched.
  struct Server {
    std::string clsid;
    Clock::time_point startBy;
    bool registered = false;
    std::optional<LinkId> link;
    bool exiting = false;
    int activationsInFlight = 0;
    uint64_t idleQuery = 0;  // the call id of the query outstanding
    std::optional<Clock::time_point> idleSince;
  };
  enum class Asked : uint8_t { activate, idleQuery, exit };
  struct Request {
    Asked what = Asked::activate;
    LinkId server;
    int32_t pid = 0;
    LinkId client;
    uint64_t clientCallId = 0;
    // An activation's: asked again if the server's connection closes before it answers.
    std::string clsid;
    uint64_t iid = 0;
    Clock::time_point deadline;
  };

  // Hands waiting requests of `clsid` to class objects, and launches what is missing.
  void pump(const std::string& clsid);
  void forward(const ClassObject& object, const std::string& clsid, const Waiter& waiter);
  void launch(const std::string& clsid);
  // A launch of `clsid` failed: the requests no other launch in progress will serve fail.
  void launchFailed(const std::string& clsid, Errc code, const std::string& why);
  size_t launchesInProgress(const std::string& clsid) const;
  void answerError(LinkId link, uint64_t callId, Errc code, const std::string& message);
  uint64_t ask(LinkId link, Request request, bool idle, bool exit, const std::string& clsid,
               uint64_t iid);
  std::vector<std::string> baseEnvironment() const;

  RuntimeImpl& _runtime;
  orpc::Network& _network;
  std::string _directory;
  std::map<std::string, ClassFile> _classes;
  std::map<std::string, std::vector<ClassObject>> _classObjects;
  std::map<std::string, std::deque<Waiter>> _waiting;
  std::set<std::string> _singleUse;  // classes a server registered singleUse
  std::map<pid_t, Server> _servers;
  std::unordered_map<uint64_t, Request> _requests;  // ferryd's requests to servers, by call id
  Launcher _launcher;
  uint64_t _launches = 0;
};

}  // namespace ferry::detail::activation
