// The transport conformance suite: what every transport plugin must do, checked through the C
// ABI alone (core/include/ferry/plugin/transport.h). meson runs it once per plugin:
//
//     transport-conformance -- tcp
//
// The harness (harness.h) checks the ABI's event rules on every event of every case; the cases
// below check the behaviour: connections, whole and ordered messages, size limits, closing,
// failing connects, refused bindings, hostile peers, and teardown.
#define BOOST_TEST_MODULE transport conformance
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstddef>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "harness.h"

namespace ferry::conformance {
namespace {

// A message that says where it belongs: stream `stream`, position `index`, then content.
Bytes taggedMessage(uint32_t stream, uint32_t index, size_t size) {
  Bytes message = pattern(size < 8 ? 0 : size - 8, stream * 100003u + index);
  Bytes tag(8);
  for (int i = 0; i < 4; ++i) {
    tag[i] = static_cast<uint8_t>(stream >> (8 * i));
    tag[4 + i] = static_cast<uint8_t>(index >> (8 * i));
  }
  message.insert(message.begin(), tag.begin(), tag.end());
  return message;
}

uint32_t streamOf(const Bytes& message) {
  return uint32_t{message[0]} | uint32_t{message[1]} << 8 | uint32_t{message[2]} << 16 |
         uint32_t{message[3]} << 24;
}

// A precondition for cases that concern one plugin only: the others report them skipped.
struct OnlyFor {
  const char* plugin;
  const char* why;
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result result(pluginName() == plugin);
    result.message() << why;
    return result;
  }
};

// A precondition for cases that do not apply to one plugin: it reports them skipped.
struct NotFor {
  const char* plugin;
  const char* why;
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result result(pluginName() != plugin);
    result.message() << why;
    return result;
  }
};

constexpr const char* kStreamFraming =
    "stream framing: a datagram transport has no length prefix to get wrong "
    "(tests/udp sends it malformed, truncated and random datagrams)";

bool isTextError(int error) {
  const char* text = table().strerror(error);
  return text != nullptr && *text != '\0';
}

// A directory of the test's own under the host's runtime directory, removed at the end.
class ScratchDirectory {
public:
  ScratchDirectory(const std::string& name, mode_t mode)
      : _path(std::string(host()->runtime_dir) + "/" + name) {
    std::filesystem::remove_all(_path);
    BOOST_REQUIRE_MESSAGE(mkdir(_path.c_str(), 0700) == 0,
                          "mkdir " << _path << ": " << std::strerror(errno));
    BOOST_REQUIRE(chmod(_path.c_str(), mode) == 0);
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(_path, ignored);
  }
  const std::string& path() const { return _path; }

private:
  std::string _path;
};

bool isSocketFile(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// The plugin's every refusal of a binding: check_binding, listen and connect all return an
// error for it, and the instance raises no event about it.
void checkRefused(Harness& harness, Instance& instance, const std::string& address,
                  const std::string& endpoint) {
  BOOST_TEST_CONTEXT("address '" << address << "' endpoint '" << endpoint << "'") {
    int checked = table().check_binding(address.c_str(), endpoint.c_str());
    BOOST_TEST(checked < 0);
    BOOST_TEST(isTextError(checked));
    BOOST_TEST(instance.tryListen(address, endpoint) < 0);
    ferry_conn_id conn = 12345;
    int connectResult = instance.tryConnect(address, endpoint, 1000, &conn);
    BOOST_TEST(connectResult < 0);
    BOOST_TEST(conn == 12345u, "a refused connect wrote a connection id");
  }
  harness.runFor(milliseconds(20));
}

BOOST_AUTO_TEST_CASE(the_plugin_loads_with_a_complete_version_1_table) {
  const ferry_transport_v1& t = table();
  BOOST_TEST(t.struct_size >= sizeof(ferry_transport_v1));
  BOOST_TEST(t.abi_version == FERRY_PLUGIN_ABI_VERSION);
  // ferry's largest message is 16 MiB; a transport must carry it with its headers.
  BOOST_TEST(t.max_message_size > size_t{16} * 1024 * 1024);
  BOOST_TEST(isTextError(-1));
  BOOST_TEST(t.strerror(0) != nullptr);
}

BOOST_AUTO_TEST_CASE(the_plugin_declares_what_it_is) {
  const ferry_transport_v1& t = table();
  BOOST_TEST(t.cost_rank != 0u, "a cost rank, so that core can rank it among the others");
  BOOST_TEST(traits().costRank != detail::TransportTraits::kUndeclaredCostRank);
  // The kernel's word on who is at the other end means something on this host only.
  if (traits().kernelCredentials) BOOST_TEST(traits().localOnly);
  BOOST_TEST(traits().sendAnyThread == (t.send_any_thread != nullptr));
  // Settings are offered whole or not at all.
  BOOST_TEST((t.create_with_settings != nullptr) == (t.check_settings != nullptr));
}

BOOST_AUTO_TEST_CASE(listen_then_connect_reports_accepted_and_connected_with_sane_peers) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    std::string endpoint = server.listen(address);
    Link link = connectPair(harness, server, client, address, endpoint);
    BOOST_TEST(link.client != 0u);
    BOOST_TEST(link.server != 0u);

    const PeerRecord& clientSeen = server.accepted.back().second;
    const PeerRecord& serverSeen = *client.connected[link.client].peer;
    if (!pathAddresses()) {
      std::string host = address.find(':') != std::string::npos ? "[" + address + "]" : address;
      BOOST_TEST(serverSeen.address == host + ":" + endpoint);
      BOOST_TEST(clientSeen.address.rfind(host + ":", 0) == 0u, clientSeen.address);
      BOOST_TEST(clientSeen.address != serverSeen.address);
    } else {
      std::string expected = pluginName() + ":" + runtimePath(endpoint);
      for (const PeerRecord* peer : {&clientSeen, &serverSeen}) {
        BOOST_TEST(peer->address == expected);
      }
      BOOST_TEST(isSocketFile(runtimePath(endpoint)));
    }
    // Credentials exactly when the transport declares them, and then the kernel's.
    for (const PeerRecord* peer : {&clientSeen, &serverSeen}) {
      BOOST_TEST(peer->hasCredentials == (traits().kernelCredentials ? 1 : 0));
      if (traits().kernelCredentials) {
        BOOST_TEST(peer->uid == getuid());
        BOOST_TEST(peer->gid == getgid());
        BOOST_TEST(peer->pid == getpid());
      }
    }
  });
}

BOOST_AUTO_TEST_CASE(listening_twice_on_one_instance_gives_two_working_listeners) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    std::string first = server.listen(address);
    std::string second = server.listen(address);
    BOOST_TEST(first != second);
    connectPair(harness, server, client, address, first);
    connectPair(harness, server, client, address, second);
  });
}

BOOST_AUTO_TEST_CASE(messages_from_empty_to_the_maximum_arrive_whole_and_in_order_both_ways) {
  const std::vector<size_t> sizes = {0, 1, 1024, 64 * 1024, 1024 * 1024, table().max_message_size};
  forEachAddress([&](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    Link link = connectPair(harness, server, client, address, server.listen(address));
    std::vector<Bytes> toServer;
    std::vector<Bytes> toClient;
    for (size_t i = 0; i < sizes.size(); ++i) {
      toServer.push_back(pattern(sizes[i], static_cast<uint32_t>(i)));
      toClient.push_back(pattern(sizes[i], static_cast<uint32_t>(100 + i)));
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      BOOST_REQUIRE(client.send(link.client, toServer[i]) == 0);
      BOOST_REQUIRE(server.send(link.server, toClient[i]) == 0);
    }
    harness.runUntil(
        [&] {
          return server.receivedCount(link.server) >= sizes.size() &&
                 client.receivedCount(link.client) >= sizes.size();
        },
        kPatience, "every message in both directions");
    BOOST_REQUIRE_EQUAL(server.receivedCount(link.server), sizes.size());
    BOOST_REQUIRE_EQUAL(client.receivedCount(link.client), sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) {
      BOOST_TEST_CONTEXT("message " << i << " of " << sizes[i] << " bytes") {
        BOOST_TEST((server.received[link.server][i] == toServer[i]));
        BOOST_TEST((client.received[link.client][i] == toClient[i]));
      }
    }
  });
}

BOOST_AUTO_TEST_CASE(a_message_above_the_maximum_is_refused_and_the_connection_keeps_working) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    Link link = connectPair(harness, server, client, address, server.listen(address));
    Bytes tooLarge(table().max_message_size + 1);
    int err = client.send(link.client, tooLarge);
    BOOST_TEST(err < 0);
    BOOST_TEST(isTextError(err));
    Bytes after = pattern(100, 7);
    BOOST_REQUIRE(client.send(link.client, after) == 0);
    harness.runUntil([&] { return server.receivedCount(link.server) == 1; }, kPatience,
                     "the message sent after the refused one");
    BOOST_TEST((server.received[link.server][0] == after));
    harness.runFor(milliseconds(20));
    BOOST_TEST(server.receivedCount(link.server) == 1u);
    BOOST_TEST(server.closed.empty());
    BOOST_TEST(client.closed.empty());
  });
}

BOOST_AUTO_TEST_CASE(a_thousand_messages_queued_back_to_back_arrive_in_order) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    Link link = connectPair(harness, server, client, address, server.listen(address));
    constexpr uint32_t kCount = 1000;
    std::vector<Bytes> sent;
    for (uint32_t i = 0; i < kCount; ++i) {
      // Mostly small, some around socket-buffer sizes, every hundredth one of 1 MiB.
      size_t size = i % 100 == 99 ? 1024 * 1024 : (i * 7919u) % 70000u;
      sent.push_back(taggedMessage(0, i, size));
      BOOST_REQUIRE(client.send(link.client, sent.back()) == 0);
    }
    harness.runUntil([&] { return server.receivedCount(link.server) >= kCount; }, kPatience,
                     "a thousand messages");
    BOOST_REQUIRE_EQUAL(server.receivedCount(link.server), kCount);
    for (uint32_t i = 0; i < kCount; ++i) {
      if (server.received[link.server][i] != sent[i]) {
        BOOST_ERROR("message " << i << " differs from what was sent");
        break;
      }
    }
  });
}

BOOST_AUTO_TEST_CASE(sends_from_other_threads_keep_each_senders_order_alongside_loop_sends) {
  if (table().struct_size < offsetof(ferry_transport_v1, send_any_thread) + sizeof(void*) ||
      table().send_any_thread == nullptr) {
    BOOST_TEST_MESSAGE(pluginName() << " does not offer send_any_thread");
    return;
  }
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    Link link = connectPair(harness, server, client, address, server.listen(address));
    constexpr uint32_t kThreads = 4;
    constexpr uint32_t kEach = 300;
    // Sizes from empty to 256 KiB, so some writes stay whole and some are handed to the loop.
    auto sizeOf = [](uint32_t stream, uint32_t i) -> size_t {
      return i % 50 == 49 ? 256 * 1024 : ((i + 1) * (stream + 3) * 7919u) % 20000u;
    };
    std::atomic<int> failures{0};
    std::vector<std::thread> senders;
    for (uint32_t t = 0; t < kThreads; ++t) {
      senders.emplace_back([&, t] {
        for (uint32_t i = 0; i < kEach; ++i) {
          if (client.sendAnyThread(link.client, taggedMessage(t, i, sizeOf(t, i))) != 0) ++failures;
        }
      });
    }
    // Meanwhile the loop's own sends, on stream 9.
    for (uint32_t i = 0; i < kEach; ++i) {
      BOOST_REQUIRE(client.send(link.client, taggedMessage(9, i, sizeOf(9, i))) == 0);
      if (i % 30 == 0) harness.runFor(milliseconds(1));
    }
    harness.runUntil([&] { return server.receivedCount(link.server) >= (kThreads + 1) * kEach; },
                     kPatience, "messages from five senders");
    for (auto& s : senders) s.join();
    BOOST_CHECK_EQUAL(failures.load(), 0);
    std::map<uint32_t, uint32_t> next;
    for (const Bytes& m : server.received[link.server]) {
      BOOST_REQUIRE_GE(m.size(), 8u);
      uint32_t stream = streamOf(m);
      uint32_t index = next[stream]++;
      if (m != taggedMessage(stream, index, sizeOf(stream, index))) {
        BOOST_ERROR("stream " << stream << ": message " << index << " is not the one sent next");
        break;
      }
    }
    for (uint32_t t = 0; t < kThreads; ++t) BOOST_CHECK_EQUAL(next[t], kEach);
    BOOST_CHECK_EQUAL(next[9], kEach);
  });
}

// --- receive_any_thread: a waiting thread reads its outgoing connection itself. ---

bool offersReceiveAnyThread() {
  if (table().struct_size < offsetof(ferry_transport_v1, receive_any_thread) + sizeof(void*) ||
      table().receive_any_thread == nullptr) {
    BOOST_TEST_MESSAGE(pluginName() << " does not offer receive_any_thread");
    return false;
  }
  return true;
}

// An eventfd of the test's, for the wake_fd of receive_any_thread.
struct WakeFd {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ~WakeFd() { ::close(fd); }
  void write() const {
    uint64_t one = 1;
    BOOST_REQUIRE(::write(fd, &one, sizeof one) == sizeof one);
  }
};

// Runs `body` on a connected pair of instances per address, with a wake descriptor, for a plugin
// that offers receive_any_thread (for another, says so and returns).
void forEachLentLink(
    const std::function<void(Harness&, Instance& server, Instance& client, const Link&,
                             const WakeFd&)>& body) {
  if (!offersReceiveAnyThread()) return;
  forEachAddress([&](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    Link link = connectPair(harness, server, client, address, server.listen(address));
    WakeFd wake;
    body(harness, server, client, link, wake);
  });
}

// What one receive_any_thread on another thread returned and was offered.
struct Reading {
  int rc = -99999;
  std::vector<Bytes> offered;
  std::chrono::milliseconds took{0};
};

// receive_any_thread on a thread of its own; `takeFirst`: take the first message offered.
// `request`: sent first, by the same call.
std::thread readOnOtherThread(Instance& instance, ferry_conn_id conn, int wakeFd,
                              uint32_t timeoutMs, bool takeFirst, Reading& out,
                              const Bytes* request = nullptr) {
  return std::thread([&instance, conn, wakeFd, timeoutMs, takeFirst, &out, request] {
    auto start = std::chrono::steady_clock::now();
    out.rc = instance.receiveAnyThread(
        conn, wakeFd, timeoutMs,
        [&](const uint8_t* data, size_t size) {
          out.offered.emplace_back(data, data + size);
          return takeFirst;
        },
        request);
    out.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
  });
}

BOOST_AUTO_TEST_CASE(a_waiting_thread_takes_its_reply_and_the_loop_delivers_the_rest_in_order) {
  forEachLentLink([](Harness& harness, Instance& server, Instance& client, const Link& link,
                     const WakeFd& wake) {
    // Written at once by the server (libuv writes before it queues); the loop does not run while
    // the other thread reads, so nothing but that thread can read them.
    Bytes reply = taggedMessage(1, 0, 100);
    Bytes large = taggedMessage(1, 1, 300 * 1024);  // read in part by the thread, then the loop
    Bytes last = taggedMessage(1, 2, 10);
    BOOST_REQUIRE(server.send(link.server, reply) == 0);
    BOOST_REQUIRE(server.send(link.server, large) == 0);
    BOOST_REQUIRE(server.send(link.server, last) == 0);
    Reading reading;
    readOnOtherThread(client, link.client, wake.fd, 10000, true, reading).join();
    BOOST_TEST(reading.rc == 1);
    BOOST_REQUIRE_EQUAL(reading.offered.size(), 1u);
    BOOST_TEST((reading.offered[0] == reply));
    BOOST_TEST(counter(client, "messages_read_by_caller") == 1u);
    // What it read past its reply (part of the large message) and the rest: through the loop,
    // each once, in order.
    harness.runUntil([&] { return client.receivedCount(link.client) >= 2; }, kPatience,
                     "the messages after the reply");
    harness.runFor(milliseconds(50));
    BOOST_REQUIRE_EQUAL(client.receivedCount(link.client), 2u);
    BOOST_TEST((client.received[link.client][0] == large));
    BOOST_TEST((client.received[link.client][1] == last));
    BOOST_TEST(counter(client, "messages_received") == 3u);
  });
}

BOOST_AUTO_TEST_CASE(a_round_trip_on_the_calling_thread_keeps_the_reply_from_the_running_loop) {
  forEachLentLink([](Harness& harness, Instance& server, Instance& client, const Link& link,
                     const WakeFd& wake) {
    Bytes request = taggedMessage(4, 0, 2000);
    Bytes reply = taggedMessage(4, 1, 3000);
    // The server answers from inside its event, while the loop runs on this thread.
    server.onReceived = [&](ferry_conn_id conn, const uint8_t*, size_t) {
      if (conn == link.server) BOOST_REQUIRE(server.send(link.server, reply) == 0);
    };
    Reading reading;
    std::atomic<bool> finished{false};
    std::thread caller([&] {
      readOnOtherThread(client, link.client, wake.fd, 20000, true, reading, &request).join();
      finished = true;
    });
    harness.runUntil([&] { return finished.load(); }, kPatience, "the round trip");
    caller.join();
    BOOST_TEST(reading.rc == 1);
    BOOST_REQUIRE_EQUAL(server.receivedCount(link.server), 1u);
    BOOST_TEST((server.received[link.server][0] == request));
    BOOST_REQUIRE_EQUAL(reading.offered.size(), 1u);
    BOOST_TEST((reading.offered[0] == reply));
    // The loop ran all along, and never saw the reply.
    harness.runFor(milliseconds(50));
    BOOST_TEST(client.receivedCount(link.client) == 0u);
    BOOST_TEST(counter(client, "messages_read_by_caller") == 1u);
  });
}

BOOST_AUTO_TEST_CASE(a_message_the_waiting_thread_leaves_goes_to_the_loop_with_what_follows) {
  forEachLentLink([](Harness& harness, Instance& server, Instance& client, const Link& link,
                     const WakeFd& wake) {
    std::vector<Bytes> sent;
    for (uint32_t i = 0; i < 3; ++i) {
      sent.push_back(taggedMessage(2, i, 1000 + i));
      BOOST_REQUIRE(server.send(link.server, sent.back()) == 0);
    }
    Reading reading;
    readOnOtherThread(client, link.client, wake.fd, 10000, false, reading).join();
    BOOST_TEST(reading.rc == 0);
    BOOST_REQUIRE_EQUAL(reading.offered.size(), 1u);
    BOOST_TEST((reading.offered[0] == sent[0]));
    harness.runUntil([&] { return client.receivedCount(link.client) >= 3; }, kPatience,
                     "the three messages through the loop");
    BOOST_TEST((client.received[link.client] == sent));
    BOOST_TEST(counter(client, "messages_read_by_caller") == 0u);
    // The socket is the loop's again: a later message arrives as usual.
    Bytes later = taggedMessage(2, 3, 5);
    BOOST_REQUIRE(server.send(link.server, later) == 0);
    harness.runUntil([&] { return client.receivedCount(link.client) >= 4; }, kPatience,
                     "a message after the lease");
    BOOST_TEST((client.received[link.client][3] == later));
  });
}

BOOST_AUTO_TEST_CASE(a_waiting_reader_ends_on_its_wake_fd_its_timeout_or_the_connection_closing) {
  forEachLentLink([](Harness& harness, Instance& server, Instance& client, const Link& link,
                     const WakeFd& wake) {
    // The wake descriptor, written while the thread waits; meanwhile a second reader is refused.
    Reading woken;
    std::thread reader = readOnOtherThread(client, link.client, wake.fd, 30000, true, woken);
    std::this_thread::sleep_for(milliseconds(200));
    WakeFd other;
    int busy = client.receiveAnyThread(link.client, other.fd, 0,
                                       [](const uint8_t*, size_t) { return true; });
    wake.write();
    reader.join();
    BOOST_TEST(busy == UV_EBUSY);
    BOOST_TEST(woken.rc == 0);
    BOOST_TEST(woken.offered.empty());
    BOOST_TEST(woken.took.count() < 10000);
    uint64_t drained;
    BOOST_REQUIRE(::read(wake.fd, &drained, sizeof drained) == sizeof drained);
    // The timeout.
    Reading timedOut;
    readOnOtherThread(client, link.client, wake.fd, 100, true, timedOut).join();
    BOOST_TEST(timedOut.rc == 0);
    BOOST_TEST(timedOut.took.count() >= 90);
    // The loop has the socket back after each: a message arrives as usual.
    Bytes message = taggedMessage(3, 0, 64);
    BOOST_REQUIRE(server.send(link.server, message) == 0);
    harness.runUntil([&] { return client.receivedCount(link.client) >= 1; }, kPatience,
                     "a message after two leases");
    BOOST_TEST((client.received[link.client][0] == message));
    // The connection closed on the loop while a thread waits on it: the thread returns at once.
    Reading closing;
    reader = readOnOtherThread(client, link.client, wake.fd, 30000, true, closing);
    std::this_thread::sleep_for(milliseconds(200));
    client.close(link.client);
    reader.join();
    BOOST_TEST(closing.rc == UV_ENOTCONN);
    BOOST_TEST(closing.took.count() < 10000);
    harness.runUntil([&] { return client.closed.count(link.client) == 1; }, kPatience,
                     "the client's closed event");
    BOOST_TEST(client.receiveAnyThread(link.client, wake.fd, 0,
                                       [](const uint8_t*, size_t) { return true; }) ==
               UV_ENOTCONN);
  });
}

BOOST_AUTO_TEST_CASE(only_outgoing_connections_are_lent_to_a_waiting_thread) {
  forEachLentLink([](Harness&, Instance& server, Instance& client, const Link& link,
                     const WakeFd& wake) {
    auto take = [](const uint8_t*, size_t) { return true; };
    BOOST_TEST(server.receiveAnyThread(link.server, wake.fd, 0, take) == UV_ENOTSUP);
    BOOST_TEST(client.receiveAnyThread(987654, wake.fd, 0, take) == UV_ENOTCONN);
  });
}

BOOST_AUTO_TEST_CASE(sixteen_connections_at_once_each_keep_their_messages_in_order) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    std::string endpoint = server.listen(address);
    constexpr uint32_t kConnections = 16;
    constexpr uint32_t kMessages = 100;
    auto sizeOf = [](uint32_t stream, uint32_t index) {
      return 8 + (stream * 31 + index * 977) % 9000;
    };

    std::vector<ferry_conn_id> conns;
    for (uint32_t k = 0; k < kConnections; ++k) conns.push_back(client.connect(address, endpoint));
    harness.runUntil(
        [&] {
          return server.accepted.size() == kConnections && client.connected.size() == kConnections;
        },
        kPatience, "sixteen connections");
    for (uint32_t k = 0; k < kConnections; ++k) {
      BOOST_REQUIRE(client.connected[conns[k]].status == 0);
      for (uint32_t i = 0; i < kMessages; ++i) {
        BOOST_REQUIRE(client.send(conns[k], taggedMessage(k, i, sizeOf(k, i))) == 0);
      }
    }
    auto allArrived = [&] {
      for (const auto& accepted : server.accepted) {
        if (server.receivedCount(accepted.first) < kMessages) return false;
      }
      return true;
    };
    harness.runUntil(allArrived, kPatience, "a hundred messages on each connection");

    // Each server-side connection carries one client stream, whole and in order; every stream
    // arrived once. The server answers on each, in order too.
    std::set<uint32_t> streams;
    for (const auto& accepted : server.accepted) {
      ferry_conn_id conn = accepted.first;
      const std::vector<Bytes>& got = server.received[conn];
      BOOST_REQUIRE_EQUAL(got.size(), kMessages);
      uint32_t stream = streamOf(got[0]);
      BOOST_REQUIRE(stream < kConnections);
      BOOST_TEST(streams.insert(stream).second, "stream " << stream << " arrived twice");
      for (uint32_t i = 0; i < kMessages; ++i) {
        BOOST_REQUIRE_MESSAGE(got[i] == taggedMessage(stream, i, sizeOf(stream, i)),
                              "stream " << stream << " message " << i
                                        << " is wrong or out of order");
        BOOST_REQUIRE(server.send(conn, taggedMessage(stream, i, sizeOf(stream, i) + 1)) == 0);
      }
    }
    harness.runUntil(
        [&] {
          for (ferry_conn_id conn : conns) {
            if (client.receivedCount(conn) < kMessages) return false;
          }
          return true;
        },
        kPatience, "a hundred answers on each connection");
    for (uint32_t k = 0; k < kConnections; ++k) {
      const std::vector<Bytes>& got = client.received[conns[k]];
      BOOST_REQUIRE_EQUAL(got.size(), kMessages);
      for (uint32_t i = 0; i < kMessages; ++i) {
        BOOST_REQUIRE_MESSAGE(got[i] == taggedMessage(k, i, sizeOf(k, i) + 1),
                              "answer " << i << " on connection " << k
                                        << " is wrong or out of order");
      }
    }
  });
}

BOOST_AUTO_TEST_CASE(connection_info_describes_open_connections_only_and_network_ones_measure_the_rtt) {
  const ferry_transport_v1& t = table();
  BOOST_TEST(traits().connectionInfo == (t.connection_info != nullptr));
  if (t.connection_info == nullptr) return;  // optional
  forEachAddress([&](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    Link link = connectPair(harness, server, client, address, server.listen(address));
    // Round trips, so that the network transports have measured the path.
    for (uint32_t i = 0; i < 20; ++i) {
      BOOST_REQUIRE(client.send(link.client, pattern(100, i)) == 0);
      harness.runUntil([&] { return server.receivedCount(link.server) > i; }, kPatience, "a request");
      BOOST_REQUIRE(server.send(link.server, pattern(100, i)) == 0);
      harness.runUntil([&] { return client.receivedCount(link.client) > i; }, kPatience, "a reply");
    }
    for (auto [instance, conn] : {std::pair{&client, link.client}, std::pair{&server, link.server}}) {
      ferry_connection_info_v1 info{};
      info.struct_size = sizeof info;
      BOOST_REQUIRE(t.connection_info(instance->transport(), conn, &info) == 0);
      BOOST_TEST(info.struct_size == sizeof info);
      if (!traits().localOnly) BOOST_TEST(info.rtt_us > 0u, "a network transport measures it");
      // The host's older, shorter struct: nothing past it is written.
      struct {
        ferry_connection_info_v1 info;
        uint64_t guard;
      } shorter{};
      shorter.info.struct_size = offsetof(ferry_connection_info_v1, rtt_var_us);
      shorter.info.rtt_var_us = 77;
      shorter.guard = 78;
      BOOST_REQUIRE(t.connection_info(instance->transport(), conn, &shorter.info) == 0);
      BOOST_TEST(shorter.info.rtt_var_us == 77u);
      BOOST_TEST(shorter.guard == 78u);
    }
    ferry_connection_info_v1 info{};
    info.struct_size = sizeof info;
    BOOST_TEST(t.connection_info(client.transport(), 987654321, &info) == UV_ENOTCONN);
    BOOST_TEST(t.connection_info(client.transport(), link.client, nullptr) == UV_EINVAL);
    client.close(link.client);
    BOOST_TEST(t.connection_info(client.transport(), link.client, &info) == UV_ENOTCONN);
    harness.runUntil([&] { return server.closed.count(link.server) > 0; }, kPatience, "closed");
  });
}

BOOST_AUTO_TEST_CASE(closing_one_side_reports_closed_on_both_and_send_on_a_closed_id_errors) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    Link link = connectPair(harness, server, client, address, server.listen(address));
    client.close(link.client);
    // Closed for the host at once, even before `closed` is reported.
    BOOST_TEST(client.send(link.client, pattern(10, 1)) < 0);
    harness.runUntil(
        [&] { return client.closed.count(link.client) && server.closed.count(link.server); },
        kPatience, "closed on both sides");
    BOOST_TEST(client.closed[link.client] == 0, "the side that closed hears status 0");
    BOOST_TEST(server.closed[link.server] == 0, "the peer of a clean close hears status 0");
    int err = server.send(link.server, pattern(10, 2));
    BOOST_TEST(err < 0);
    BOOST_TEST(isTextError(err));
    BOOST_TEST(client.send(link.client, pattern(10, 3)) < 0);
    // Closing again, or closing an id that never existed, is ignored.
    size_t eventsBefore = client.events + server.events;
    client.close(link.client);
    server.close(link.server);
    client.close(987654321);
    BOOST_TEST(client.send(987654321, pattern(1, 1)) < 0);
    harness.runFor(milliseconds(20));
    BOOST_TEST(client.events + server.events == eventsBefore);
  });
}

BOOST_AUTO_TEST_CASE(connecting_to_a_dead_endpoint_reports_an_error_in_time_and_never_closed) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& client = harness.instance();
    constexpr uint32_t kTimeoutMs = 2000;
    ferry_conn_id conn = client.connect(address, deadEndpoint(address), kTimeoutMs);
    // `connected` is due within the timeout; the slack covers a loaded machine.
    harness.runUntil([&] { return client.connected.count(conn) != 0; },
                     milliseconds(kTimeoutMs + 3000), "connected with an error");
    int status = client.connected[conn].status;
    BOOST_TEST(status < 0);
    BOOST_TEST(isTextError(status));
    BOOST_TEST_MESSAGE("a dead endpoint reports: " << table().strerror(status));
    BOOST_TEST(client.send(conn, pattern(1, 1)) < 0);
    client.close(conn);
    harness.runFor(milliseconds(50));
    BOOST_TEST(client.closed.empty());
  });
}

BOOST_AUTO_TEST_CASE(closing_a_connection_still_connecting_reports_connected_with_an_error) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    std::string endpoint = server.listen(address);
    ferry_conn_id conn = client.connect(address, endpoint);
    // No loop iteration has run: the connect cannot have been reported yet.
    client.close(conn);
    harness.runUntil([&] { return client.connected.count(conn) != 0; }, kPatience,
                     "connected for the closed connect");
    BOOST_TEST(client.connected[conn].status < 0);
    harness.runFor(milliseconds(50));
    BOOST_TEST(client.closed.empty());
    if (!overDatagrams()) {
      // The kernel had connected it already: the server sees it come and go. (A udp connect
      // closed before the loop ran has sent nothing.)
      harness.runUntil([&] { return server.accepted.size() == 1 && server.closed.size() == 1; },
                       kPatience, "the server to see the abandoned connection come and go");
    }
    // The listener is unharmed.
    connectPair(harness, server, client, address, endpoint);
  });
}

// A full Unix socket backlog refuses at once; only tcp can be made to hang on loopback.
BOOST_AUTO_TEST_CASE(a_connect_that_hangs_times_out_with_an_error,
                     *boost::unit_test::precondition(
                         OnlyFor{"tcp", "only a TCP connect can be made to hang on loopback"})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    // A listener with backlog 0 that never accepts: once one connection waits in its queue,
    // Linux drops further SYNs, and a connect hangs until its timer fires.
    sockaddr_storage name{};
    socklen_t length = 0;
    int family = address.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    int listener = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(listener >= 0);
    std::vector<int> fds{listener};
    struct Closer {
      std::vector<int>& fds;
      ~Closer() {
        for (int fd : fds) ::close(fd);
      }
    } closer{fds};
    if (family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&name);
      in->sin_family = AF_INET;
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      length = sizeof(sockaddr_in);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&name);
      in6->sin6_family = AF_INET6;
      in6->sin6_addr = in6addr_loopback;
      length = sizeof(sockaddr_in6);
    }
    BOOST_REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&name), length) == 0);
    BOOST_REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&name), &length) == 0);
    BOOST_REQUIRE(::listen(listener, 0) == 0);
    bool full = false;
    for (int attempt = 0; attempt < 8 && !full; ++attempt) {
      int filler = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      BOOST_REQUIRE(filler >= 0);
      fds.push_back(filler);
      int r = ::connect(filler, reinterpret_cast<sockaddr*>(&name), length);
      if (r == 0) continue;
      BOOST_REQUIRE(errno == EINPROGRESS);
      pollfd wait{filler, POLLOUT, 0};
      full = poll(&wait, 1, 200) == 0;
    }
    if (!full) {
      BOOST_TEST_MESSAGE("skipped: this kernel completes connects to a full backlog");
      return;
    }
    uint16_t port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&name)->sin_port
                                            : reinterpret_cast<sockaddr_in6*>(&name)->sin6_port);
    Instance& client = harness.instance();
    constexpr uint32_t kTimeoutMs = 300;
    ferry_conn_id conn = client.connect(address, std::to_string(port), kTimeoutMs);
    harness.runUntil([&] { return client.connected.count(conn) != 0; },
                     milliseconds(kTimeoutMs + 5000), "the connect to time out");
    int status = client.connected[conn].status;
    BOOST_TEST(status < 0);
    BOOST_TEST_MESSAGE("a hanging connect reports: " << table().strerror(status));
    harness.runFor(milliseconds(50));
    BOOST_TEST(client.closed.empty());
  });
}

BOOST_AUTO_TEST_CASE(malformed_bindings_are_refused_by_check_binding_listen_and_connect) {
  Harness harness;
  Instance& instance = harness.instance();
  if (!pathAddresses()) {
    for (const char* endpoint :
         {"abc", "70000", "65536", "-1", "+1", " 80", "80 ", "0x50", "0", ""}) {
      // "0" and "" name any port to listen on, but no port to connect to.
      if (std::strcmp(endpoint, "0") == 0 || *endpoint == '\0') {
        BOOST_TEST(table().check_binding("127.0.0.1", endpoint) < 0);
        continue;
      }
      checkRefused(harness, instance, "127.0.0.1", endpoint);
    }
    for (const char* address : {"999.1.1.1", "not-an-ip", "localhost", "[::1]", "", "1.2.3",
                                "::1::", "127.0.0.1:80"}) {
      checkRefused(harness, instance, address, "5000");
    }
    BOOST_TEST(table().check_binding("127.0.0.1", "1") == 0);
    BOOST_TEST(table().check_binding("::1", "65535") == 0);
    // Another host's address: a network transport takes it, a local-only one cannot reach it.
    BOOST_TEST((table().check_binding("192.0.2.7", "7135") == 0) == !traits().localOnly);
  } else {
    for (const std::string& endpoint :
         {std::string("../x"), std::string("a/b"), std::string(200, 'a'), std::string(65, 'a'),
          std::string("."), std::string(".."), std::string("bad name"), std::string("tab\tname")}) {
      checkRefused(harness, instance, "", endpoint);
    }
    checkRefused(harness, instance, "/nonexistent-ferry-directory", "x");
    checkRefused(harness, instance, "/tmp", "x");  // writable by everyone
    checkRefused(harness, instance, "relative/directory", "x");
    checkRefused(harness, instance, "/etc/passwd", "x");  // not a directory
    BOOST_TEST(table().check_binding("", "") < 0, "there is no socket name to connect to");
    BOOST_TEST(table().check_binding("", "ferry-x") == 0);
    BOOST_TEST(table().check_binding("", std::string(64, 'a').c_str()) == 0);
  }
  BOOST_TEST(instance.events == 0u);
}

BOOST_AUTO_TEST_CASE(a_pipe_directory_must_be_private_and_the_path_must_fit_a_socket_address,
                     *boost::unit_test::precondition(OnlyFor{"pipe", "pipe directories only"})) {
  Harness harness;
  Instance& server = harness.instance();
  Instance& client = harness.instance();
  std::string tag = "conformance-" + std::to_string(getpid());
  {
    ScratchDirectory shared(tag + "-shared", 0770);
    checkRefused(harness, server, shared.path(), "x");
  }
  if (geteuid() == 0) {
    // Another user's private directory: nobody but its owner can place a socket there, so a
    // process may connect to it (as to ferryd's /run/ferry, its service user's), but must not
    // listen in it.
    ScratchDirectory foreign(tag + "-foreign", 0700);
    BOOST_REQUIRE(chown(foreign.path().c_str(), 65534, 65534) == 0);
    BOOST_TEST(table().check_binding(foreign.path().c_str(), "x") == 0);
    BOOST_TEST(server.tryListen(foreign.path(), "x") < 0);
  }
  {
    // A directory path of about 100 bytes: with a valid 10-byte name the socket path overflows
    // sun_path (108 bytes with the NUL).
    std::string runtime = host()->runtime_dir;
    size_t nameLength = runtime.size() < 89 ? 100 - runtime.size() - 1 : 10;
    std::string name = tag + "-deep";
    if (name.size() < nameLength) name += std::string(nameLength - name.size(), 'l');
    ScratchDirectory deep(name, 0700);
    std::string endpoint(10, 'e');
    BOOST_REQUIRE(deep.path().size() + 1 + endpoint.size() >= sizeof(sockaddr_un::sun_path));
    checkRefused(harness, server, deep.path(), endpoint);
  }
  ScratchDirectory own(tag + "-own", 0700);
  std::string endpoint = server.listen(own.path(), "named.socket_1");
  BOOST_TEST(endpoint == "named.socket_1");
  BOOST_TEST(isSocketFile(own.path() + "/named.socket_1"));
  Link link = connectPair(harness, server, client, own.path(), endpoint);
  BOOST_TEST(client.connected[link.client].peer->address ==
             "pipe:" + own.path() + "/named.socket_1");
  harness.destroyAll();
  BOOST_TEST(!exists(own.path() + "/named.socket_1"), "the socket file outlived its listener");
}

BOOST_AUTO_TEST_CASE(a_pipe_socket_admits_its_own_user_only_unless_opened_to_every_local_user,
                     *boost::unit_test::precondition(OnlyFor{"pipe", "pipe socket files only"})) {
  Harness harness;
  Instance& server = harness.instance();
  ScratchDirectory own("conformance-" + std::to_string(getpid()) + "-modes", 0700);
  auto mode = [&](const char* name) {
    struct stat st {};
    BOOST_REQUIRE(lstat((own.path() + "/" + name).c_str(), &st) == 0);
    return st.st_mode & 0777;
  };
  BOOST_REQUIRE_EQUAL(server.tryListen(own.path(), "private"), 0);
  BOOST_TEST(mode("private") == 0600u);
  BOOST_REQUIRE_EQUAL(server.tryListen(own.path(), "shared", nullptr, 256,
                                       FERRY_LISTEN_ALL_LOCAL_USERS), 0);
  BOOST_TEST(mode("shared") == 0666u);
  BOOST_TEST(server.tryListen(own.path(), "unknown", nullptr, 256, 0x80000000u) == UV_ENOTSUP);
  BOOST_TEST(!exists(own.path() + "/unknown"));
  harness.destroyAll();
}

BOOST_AUTO_TEST_CASE(a_pipe_listener_replaces_a_stale_socket_but_never_a_live_one,
                     *boost::unit_test::precondition(OnlyFor{"pipe", "pipe socket files only"})) {
  std::string tag = "conformance-" + std::to_string(getpid());
  std::string stale = tag + "-stale";
  std::string notSocket = tag + "-file";
  struct Cleanup {
    std::vector<std::string> paths;
    ~Cleanup() {
      for (const std::string& path : paths) unlink(path.c_str());
    }
  } cleanup{{runtimePath(stale), runtimePath(notSocket)}};

  {
    // A socket file whose process is gone: bound, never listened on, closed.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un name{};
    name.sun_family = AF_UNIX;
    std::strcpy(name.sun_path, runtimePath(stale).c_str());
    BOOST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&name), sizeof(name)) == 0);
    ::close(fd);
    BOOST_REQUIRE(isSocketFile(runtimePath(stale)));
  }
  {
    int fd = open(runtimePath(notSocket).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    BOOST_REQUIRE(fd >= 0);
    ::close(fd);
  }

  Harness harness;
  Instance& first = harness.instance();
  Instance& second = harness.instance();
  Instance& client = harness.instance();
  BOOST_TEST(first.listen("", stale) == stale);
  connectPair(harness, first, client, "", stale);

  size_t acceptedBefore = first.accepted.size();
  BOOST_TEST(second.tryListen("", stale) < 0, "a live listener's socket was taken over");
  // Telling live from stale takes a connect: the live listener sees the probe come and go.
  harness.runUntil(
      [&] {
        return first.accepted.size() == acceptedBefore + 1 &&
               first.closed.count(first.accepted.back().first) != 0;
      },
      kPatience, "the probe of the live socket to come and go");
  connectPair(harness, first, client, "", stale);

  BOOST_TEST(second.tryListen("", notSocket) < 0, "a file that is no socket was replaced");
  BOOST_TEST(exists(runtimePath(notSocket)));

  harness.destroyAll();
  BOOST_TEST(!exists(runtimePath(stale)), "the socket file outlived its listener");
}

BOOST_AUTO_TEST_CASE(a_malformed_frame_closes_only_that_connection_with_an_error,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamFraming})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    std::string endpoint = server.listen(address);
    Link good = connectPair(harness, server, client, address, endpoint);

    for (uint64_t length : {uint64_t{table().max_message_size} + 1, uint64_t{0xffffffff}}) {
      BOOST_TEST_CONTEXT("a length prefix of " << length) {
        RawPeer raw(address, endpoint);
        size_t before = server.accepted.size();
        harness.runUntil([&] { return server.accepted.size() > before; }, kPatience,
                         "the raw peer's connection");
        ferry_conn_id hostile = server.accepted.back().first;
        raw.write(frameHeader(length));
        harness.runUntil([&] { return server.closed.count(hostile) != 0; }, kPatience,
                         "the hostile connection to close");
        BOOST_TEST(server.closed[hostile] < 0);
        BOOST_TEST(isTextError(server.closed[hostile]));
        BOOST_TEST(server.receivedCount(hostile) == 0u);
        Bytes ignored;
        harness.runUntil([&] { return !raw.readAvailable(ignored); }, kPatience,
                         "the raw peer to see the connection end");
      }
    }

    BOOST_TEST(server.closed.count(good.server) == 0u);
    BOOST_TEST(client.closed.empty());
    Bytes ping = pattern(300, 1);
    Bytes pong = pattern(300, 2);
    BOOST_REQUIRE(client.send(good.client, ping) == 0);
    BOOST_REQUIRE(server.send(good.server, pong) == 0);
    harness.runUntil(
        [&] {
          return server.receivedCount(good.server) == 1 && client.receivedCount(good.client) == 1;
        },
        kPatience, "the good connection to carry messages");
    BOOST_TEST((server.received[good.server][0] == ping));
    BOOST_TEST((client.received[good.client][0] == pong));
  });
}

BOOST_AUTO_TEST_CASE(frames_split_across_writes_arrive_whole_and_a_truncated_one_is_an_error,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamFraming})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    std::string endpoint = server.listen(address);
    RawPeer raw(address, endpoint);
    harness.runUntil([&] { return server.accepted.size() == 1; }, kPatience, "the raw peer");
    ferry_conn_id conn = server.accepted.back().first;

    Bytes payload = pattern(1000, 5);
    Bytes header = frameHeader(payload.size());
    for (uint8_t byte : header) {
      raw.write({byte});
      harness.runFor(milliseconds(5));
    }
    raw.write(Bytes(payload.begin(), payload.begin() + 400));
    harness.runFor(milliseconds(5));
    BOOST_TEST(server.receivedCount(conn) == 0u, "a message was delivered before it was whole");
    raw.write(Bytes(payload.begin() + 400, payload.end()));
    Bytes empty = frameHeader(0);
    raw.write(empty);
    harness.runUntil([&] { return server.receivedCount(conn) == 2; }, kPatience,
                     "the split message and an empty one");
    BOOST_TEST((server.received[conn][0] == payload));
    BOOST_TEST(server.received[conn][1].empty());

    raw.write(frameHeader(50));
    raw.write(pattern(20, 6));
    raw.close();
    harness.runUntil([&] { return server.closed.count(conn) != 0; }, kPatience,
                     "the truncated connection to close");
    BOOST_TEST(server.closed[conn] < 0, "a stream that ends inside a message is an error");
    BOOST_TEST(server.receivedCount(conn) == 2u);
  });
}

BOOST_AUTO_TEST_CASE(a_message_on_the_wire_is_a_little_endian_length_then_the_payload,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamFraming})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    std::string endpoint = server.listen(address);
    RawPeer raw(address, endpoint);
    harness.runUntil([&] { return server.accepted.size() == 1; }, kPatience, "the raw peer");
    ferry_conn_id conn = server.accepted.back().first;
    Bytes payload = pattern(300, 8);
    BOOST_REQUIRE(server.send(conn, payload) == 0);
    Bytes wire;
    harness.runUntil(
        [&] {
          raw.readAvailable(wire);
          return wire.size() >= 4 + payload.size();
        },
        kPatience, "the frame at the raw peer");
    Bytes expected = frameHeader(payload.size());
    expected.insert(expected.end(), payload.begin(), payload.end());
    BOOST_TEST((wire == expected));
  });
}

// --- Hostile stream peers: the limits of transports/common/stream-limits.h. ---

constexpr const char* kStreamLimits =
    "stream limits: udp bounds its sessions itself (PROTOCOL.md; tests/udp floods it)";

BOOST_AUTO_TEST_CASE(stream_settings_that_are_unknown_or_leave_no_connection_are_refused,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamLimits})) {
  char why[256] = {};
  BOOST_TEST(table().check_settings("receive_budget=1048576,idle_timeout_ms=0", why, sizeof why) ==
             0);
  BOOST_TEST(table().check_settings("bogus=1", why, sizeof why) == UV_EINVAL);
  BOOST_TEST(std::string(why).find("bogus") != std::string::npos, why);
  BOOST_TEST(table().check_settings("max_connections=8,connection_reserve=8", why, sizeof why) ==
             UV_EINVAL);
  BOOST_TEST(std::string(why).find("connection_reserve") != std::string::npos, why);
  BOOST_TEST(table().check_settings("send_queue_limit=x", why, sizeof why) == UV_EINVAL);
}

BOOST_AUTO_TEST_CASE(declared_message_sizes_reserve_nothing_until_their_bytes_arrive,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamLimits})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    std::string endpoint = server.listen(address);
    constexpr size_t kPeers = 20;
    std::vector<std::unique_ptr<RawPeer>> peers;
    for (size_t i = 0; i < kPeers; ++i) {
      peers.push_back(std::make_unique<RawPeer>(address, endpoint));
      Bytes frame = frameHeader(table().max_message_size);
      Bytes start = pattern(1000, static_cast<uint32_t>(i));
      frame.insert(frame.end(), start.begin(), start.end());
      peers.back()->write(frame);
    }
    harness.runUntil([&] { return counter(server, "now_receive_buffer_bytes") >= kPeers * 1000; },
                     kPatience, "every peer's first bytes to be buffered");
    // Each maximal message declared holds what came of it, rounded up to a page, not 16 MiB.
    BOOST_TEST(counter(server, "now_receive_buffer_bytes") <= kPeers * 4096);
    peers.clear();
    harness.runUntil([&] { return server.closed.size() == kPeers; }, kPatience,
                     "the truncated connections to close");
    BOOST_TEST(counter(server, "closed_truncated") == kPeers);
    BOOST_TEST(counter(server, "now_receive_buffer_bytes") == 0u);
  });
}

BOOST_AUTO_TEST_CASE(a_peer_past_the_receive_budget_is_closed_and_counted_and_others_carry_on,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamLimits})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance("receive_budget=1048576");
    Instance& client = harness.instance();
    std::string endpoint = server.listen(address);
    Link good = connectPair(harness, server, client, address, endpoint);
    RawPeer raw(address, endpoint);
    harness.runUntil([&] { return server.accepted.size() == 2; }, kPatience, "the raw peer");
    ferry_conn_id hostile = server.accepted.back().first;
    raw.write(frameHeader(4 * 1024 * 1024));
    Bytes chunk = pattern(64 * 1024, 3);
    size_t sent = 0;
    // Bytes of a 4 MiB message, past the 1 MiB budget, until the server closes the connection.
    harness.runUntil(
        [&] {
          if (server.closed.count(hostile) != 0) return true;
          if (sent < 3 * 1024 * 1024) sent += raw.writeSome(chunk);
          return false;
        },
        kPatience, "the connection over the budget to close");
    BOOST_TEST(server.closed[hostile] == UV_ENOBUFS);
    BOOST_TEST(counter(server, "closed_over_budget") == 1u);
    BOOST_TEST(counter(server, "now_receive_buffer_bytes") == 0u);
    // A message split across reads still has the budget to itself once the hostile one went.
    Bytes big = pattern(512 * 1024, 4);
    BOOST_REQUIRE(client.send(good.client, big) == 0);
    harness.runUntil([&] { return server.receivedCount(good.server) == 1; }, kPatience,
                     "the good client's message");
    BOOST_TEST((server.received[good.server][0] == big));
  });
}

BOOST_AUTO_TEST_CASE(an_idle_accepted_connection_is_closed_and_counted,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamLimits})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance("idle_timeout_ms=100,frame_timeout_ms=0");
    std::string endpoint = server.listen(address);
    RawPeer raw(address, endpoint);
    harness.runUntil([&] { return server.accepted.size() == 1; }, kPatience, "the raw peer");
    ferry_conn_id idle = server.accepted.back().first;
    harness.runUntil([&] { return server.closed.count(idle) != 0; }, kPatience,
                     "the idle connection to close");
    BOOST_TEST(server.closed[idle] == UV_ETIMEDOUT);
    BOOST_TEST(counter(server, "closed_idle") == 1u);
    BOOST_TEST(counter(server, "closed_stalled_frame") == 0u);
    Bytes ignored;
    harness.runUntil([&] { return !raw.readAvailable(ignored); }, kPatience,
                     "the raw peer to see the connection end");
  });
}

BOOST_AUTO_TEST_CASE(a_message_that_stalls_half_sent_closes_its_connection_and_is_counted,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamLimits})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance("idle_timeout_ms=0,frame_timeout_ms=100");
    std::string endpoint = server.listen(address);
    RawPeer raw(address, endpoint);
    harness.runUntil([&] { return server.accepted.size() == 1; }, kPatience, "the raw peer");
    ferry_conn_id stalled = server.accepted.back().first;
    Bytes whole = frameHeader(5);
    Bytes five = pattern(5, 1);
    whole.insert(whole.end(), five.begin(), five.end());
    raw.write(whole);
    raw.write(frameHeader(1000));
    raw.write(pattern(10, 2));
    harness.runUntil([&] { return server.closed.count(stalled) != 0; }, kPatience,
                     "the stalled connection to close");
    BOOST_TEST(server.closed[stalled] == UV_ETIMEDOUT);
    BOOST_TEST(server.receivedCount(stalled) == 1u, "the whole message before it was lost");
    BOOST_TEST(counter(server, "closed_stalled_frame") == 1u);
    BOOST_TEST(counter(server, "now_receive_buffer_bytes") == 0u);
  });
}

BOOST_AUTO_TEST_CASE(a_peer_that_never_reads_is_refused_sends_and_no_longer_read_from,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamLimits})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    constexpr uint64_t kLimit = 256 * 1024;
    Instance& server = harness.instance("send_queue_limit=" + std::to_string(kLimit));
    Instance& client = harness.instance();
    std::string endpoint = server.listen(address);
    Link good = connectPair(harness, server, client, address, endpoint);
    RawPeer raw(address, endpoint);
    harness.runUntil([&] { return server.accepted.size() == 2; }, kPatience, "the raw peer");
    ferry_conn_id deaf = server.accepted.back().first;
    // The raw peer reads nothing: the kernel's buffers fill, then the server's queue.
    Bytes message = pattern(64 * 1024, 7);
    int refused = 0;
    uint64_t highest = 0;
    harness.runUntil(
        [&] {
          int rc = server.send(deaf, message);
          highest = std::max(highest, counter(server, "now_send_queue_bytes"));
          if (rc == UV_ENOBUFS) refused = rc;
          return refused != 0;
        },
        kPatience, "send to the peer that never reads to be refused");
    BOOST_TEST(counter(server, "sends_refused_queue_full") >= 1u);
    // Taken whole below the limit: at most one message past it.
    BOOST_TEST(highest <= kLimit + message.size() + 4);
    BOOST_TEST(counter(server, "reads_paused") == 1u);
    // What the deaf peer sends now stays unread, while the good client is served as before.
    Bytes request = frameHeader(3);
    request.insert(request.end(), {1, 2, 3});
    raw.write(request);
    Bytes ping = pattern(100, 8);
    BOOST_REQUIRE(client.send(good.client, ping) == 0);
    BOOST_REQUIRE(server.send(good.server, ping) == 0);
    harness.runUntil(
        [&] {
          return server.receivedCount(good.server) == 1 && client.receivedCount(good.client) == 1;
        },
        kPatience, "the good client's messages both ways");
    harness.runFor(milliseconds(50));
    BOOST_TEST(server.receivedCount(deaf) == 0u, "the server read from a peer that reads nothing");
    // Once the peer reads, the queue drains and its request is read.
    Bytes drained;
    harness.runUntil(
        [&] {
          raw.readAvailable(drained);
          return server.receivedCount(deaf) == 1;
        },
        kPatience, "the peer's request once it reads");
    BOOST_TEST((server.received[deaf][0] == Bytes{1, 2, 3}));
    harness.runUntil([&] { return counter(server, "now_send_queue_bytes") == 0; }, kPatience,
                     "the queue to drain");
    BOOST_TEST(server.closed.count(deaf) == 0u);
  });
}

BOOST_AUTO_TEST_CASE(connections_past_the_per_peer_cap_are_refused_and_counted,
                     *boost::unit_test::precondition(NotFor{"udp", kStreamLimits})) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance("max_connections_per_peer=2");
    std::string endpoint = server.listen(address);
    RawPeer first(address, endpoint);
    RawPeer second(address, endpoint);
    harness.runUntil([&] { return server.accepted.size() == 2; }, kPatience, "two peers");
    RawPeer third(address, endpoint);
    Bytes ignored;
    harness.runUntil([&] { return !third.readAvailable(ignored); }, kPatience,
                     "the third connection to be closed");
    BOOST_TEST(server.accepted.size() == 2u, "the connection over the cap was reported");
    BOOST_TEST(counter(server, "connections_refused_per_peer") == 1u);
    BOOST_TEST(counter(server, "now_connections") == 2u);
    // Once one goes, the peer may connect again.
    first.close();
    harness.runUntil([&] { return server.closed.size() == 1; }, kPatience, "the first to close");
    RawPeer again(address, endpoint);
    harness.runUntil([&] { return server.accepted.size() == 3; }, kPatience, "the new one");
  });
}

BOOST_AUTO_TEST_CASE(the_last_connections_are_kept_for_peers_that_have_none,
                     *boost::unit_test::precondition(OnlyFor{
                         "tcp", "a second source address: tcp from 127.0.0.2 and 127.0.0.3"})) {
  Harness harness;
  Instance& server =
      harness.instance("max_connections=4,max_connections_per_peer=4,connection_reserve=1");
  std::string endpoint = server.listen("127.0.0.1");
  std::vector<std::unique_ptr<RawPeer>> busy;
  for (int i = 0; i < 3; ++i) busy.push_back(std::make_unique<RawPeer>("127.0.0.1", endpoint));
  harness.runUntil([&] { return server.accepted.size() == 3; }, kPatience, "the busy peer's three");
  // The busy peer is below its own cap, but only the reserve is left.
  RawPeer fourth("127.0.0.1", endpoint);
  Bytes ignored;
  harness.runUntil([&] { return !fourth.readAvailable(ignored); }, kPatience,
                   "the busy peer's fourth connection to be closed");
  BOOST_TEST(counter(server, "connections_refused_limit") == 1u);
  // A new peer gets the reserve.
  RawPeer newcomer("127.0.0.1", endpoint, "127.0.0.2");
  harness.runUntil([&] { return server.accepted.size() == 4; }, kPatience, "the new peer");
  BOOST_TEST(server.peerAddress(server.accepted.back().first).rfind("127.0.0.2:", 0) == 0u);
  // Now every connection is taken.
  RawPeer late("127.0.0.1", endpoint, "127.0.0.3");
  harness.runUntil([&] { return !late.readAvailable(ignored); }, kPatience,
                   "the connection past max_connections to be closed");
  BOOST_TEST(counter(server, "connections_refused_limit") == 2u);
  BOOST_TEST(counter(server, "connections_accepted") == 4u);
}

BOOST_AUTO_TEST_CASE(destroy_with_open_listeners_and_connections_closes_all_without_events) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    std::string first = server.listen(address);
    std::string second = server.listen(address);
    Link a = connectPair(harness, server, client, address, first);
    Link b = connectPair(harness, server, client, address, second);
    // Work in flight at destroy: queued writes both ways, a connect not yet reported, one that
    // will fail, and a connection closed but not yet reported as closed.
    for (int i = 0; i < 3; ++i) {
      BOOST_REQUIRE(client.send(a.client, pattern(1024 * 1024, i)) == 0);
      BOOST_REQUIRE(server.send(b.server, pattern(1024 * 1024, i)) == 0);
    }
    client.connect(address, first);
    client.connect(address, deadEndpoint(address));
    client.close(b.client);
    size_t serverEvents = server.events;
    size_t clientEvents = client.events;
    server.destroy();
    client.destroy();
    harness.runUntil([&] { return server.doneCalls == 1 && client.doneCalls == 1; }, kPatience,
                     "done from both instances");
    BOOST_TEST(server.events == serverEvents, "the server raised events after destroy");
    BOOST_TEST(client.events == clientEvents, "the client raised events after destroy");
    if (pathAddresses()) {
      BOOST_TEST(!exists(runtimePath(first)), "a socket file outlived destroy");
      BOOST_TEST(!exists(runtimePath(second)), "a socket file outlived destroy");
    }
  });
}

BOOST_AUTO_TEST_CASE(an_idle_instance_destroys_and_calls_done_from_the_loop) {
  Harness harness;
  Instance& idle = harness.instance();
  idle.destroy();
  BOOST_TEST(idle.doneCalls == 0, "done ran inside destroy");
  harness.runUntil([&] { return idle.doneCalls == 1; }, kPatience, "done");
}

BOOST_AUTO_TEST_CASE(destroying_an_instance_from_inside_its_own_event_is_safe) {
  forEachAddress([](Harness& harness, const std::string& address) {
    Instance& server = harness.instance();
    Instance& client = harness.instance();
    Link link = connectPair(harness, server, client, address, server.listen(address));
    server.onReceived = [&](ferry_conn_id, const uint8_t*, size_t) { server.destroy(); };
    // Several messages in one read: none may be delivered after the destroy.
    for (uint32_t i = 0; i < 5; ++i) BOOST_REQUIRE(client.send(link.client, pattern(10, i)) == 0);
    harness.runUntil([&] { return server.doneCalls == 1; }, kPatience, "done after destroy");
    BOOST_TEST(server.receivedCount(link.server) == 1u);
    harness.runUntil([&] { return client.closed.count(link.client) != 0; }, kPatience,
                     "the client to see its peer go");
  });
}

}  // namespace
}  // namespace ferry::conformance
