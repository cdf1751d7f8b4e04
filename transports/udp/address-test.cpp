#define BOOST_TEST_MODULE udp addresses and rate limits
#include <boost/test/unit_test.hpp>

#include <uv.h>

#include <string>

#include "address.h"
#include "test-address.h"

namespace ferry::transports::udp {
namespace {

constexpr uint64_t kSecond = 1000000000ull;

BOOST_AUTO_TEST_CASE(bindings_are_numeric_addresses_and_decimal_ports) {
  sockaddr_storage out;
  std::string why;
  BOOST_TEST(parseBinding("127.0.0.1", "7135", false, out, why) == 0);
  BOOST_TEST(formatAddress(out) == "127.0.0.1:7135");
  BOOST_TEST(parseBinding("::1", "1", false, out, why) == 0);
  BOOST_TEST(formatAddress(out) == "[::1]:1");
  BOOST_TEST(parseBinding("0.0.0.0", "", true, out, why) == 0, "any port, to listen");
  BOOST_TEST(parseBinding("0.0.0.0", "", false, out, why) == UV_EINVAL, "but not to connect to");
  for (const char* port : {"0x50", "65536", "-1", " 80", "abc"}) {
    BOOST_TEST(parseBinding("127.0.0.1", port, true, out, why) == UV_EINVAL, port);
    BOOST_TEST(!why.empty());
  }
  for (const char* host : {"localhost", "[::1]", "1.2.3", "127.0.0.1:80", ""}) {
    BOOST_TEST(parseBinding(host, "80", false, out, why) == UV_EINVAL, host);
  }
}

BOOST_AUTO_TEST_CASE(endpoints_compare_by_family_address_and_port) {
  BOOST_TEST(sameEndpoint(testAddress("127.0.0.1", "5"), testAddress("127.0.0.1", "5")));
  BOOST_TEST(!sameEndpoint(testAddress("127.0.0.1", "5"), testAddress("127.0.0.1", "6")));
  BOOST_TEST(!sameEndpoint(testAddress("127.0.0.1", "5"), testAddress("127.0.0.2", "5")));
  BOOST_TEST(!sameEndpoint(testAddress("127.0.0.1", "5"), testAddress("::1", "5")));
  BOOST_TEST(hostKey(testAddress("192.0.2.7", "1")) == hostKey(testAddress("192.0.2.7", "2")));
  BOOST_TEST(hostKey(testAddress("192.0.2.7", "1")) != hostKey(testAddress("192.0.2.8", "1")));
}

BOOST_AUTO_TEST_CASE(rate_limits_apply_per_prefix) {
  RateLimiter limiter(3);
  sockaddr_storage a = testAddress("192.0.2.7", "1");
  sockaddr_storage sameSlash24 = testAddress("192.0.2.200", "9");
  BOOST_TEST(prefixHash(a) == prefixHash(sameSlash24));
  BOOST_TEST(prefixHash(a) != prefixHash(testAddress("192.0.3.7", "1")));
  uint64_t t = 5 * kSecond;
  BOOST_TEST(limiter.allow(a, t));
  BOOST_TEST(limiter.allow(sameSlash24, t));
  BOOST_TEST(limiter.allow(a, t));
  BOOST_TEST(!limiter.allow(sameSlash24, t), "a burst of 3 per /24");
  BOOST_TEST(limiter.allow(a, t + kSecond / 3 + 1), "refilled at 3 per second");
  RateLimiter none(0);
  BOOST_TEST(!none.allow(a, t));
}

BOOST_AUTO_TEST_CASE(the_loopback_route_carries_large_datagrams) {
  // Loopback's MTU is 64 KiB on Linux; whatever it is, never below the base size.
  size_t v4 = pathMaxDatagram(testAddress("127.0.0.1", "9"));
  BOOST_TEST(v4 >= 1200u);
  BOOST_TEST(v4 <= 65507u);
  BOOST_TEST_MESSAGE("127.0.0.1 carries UDP payloads of " << v4 << " bytes");
}

}  // namespace
}  // namespace ferry::transports::udp
