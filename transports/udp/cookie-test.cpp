#define BOOST_TEST_MODULE udp cookies
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <string>

#include "address.h"
#include "test-address.h"
#include "cookie.h"

namespace ferry::transports::udp {
namespace {

constexpr uint64_t kSecond = 1000000000ull;

const uint8_t kNonce[kNonceSize] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

BOOST_AUTO_TEST_CASE(a_cookie_verifies_for_the_address_nonce_and_session_it_was_made_for) {
  CookieJar jar(42, 60 * kSecond, 120 * kSecond, 1000 * kSecond);
  sockaddr_storage from = testAddress("192.0.2.7", "7135");
  uint8_t cookie[kCookieSize];
  jar.make(from, kNonce, 99, 1000 * kSecond, cookie);
  BOOST_TEST(jar.verify(from, kNonce, 99, cookie, 1001 * kSecond));
  BOOST_TEST(!jar.verify(testAddress("192.0.2.8", "7135"), kNonce, 99, cookie, 1001 * kSecond));
  BOOST_TEST(!jar.verify(testAddress("192.0.2.7", "7136"), kNonce, 99, cookie, 1001 * kSecond));
  BOOST_TEST(!jar.verify(from, kNonce, 98, cookie, 1001 * kSecond));
  uint8_t otherNonce[kNonceSize] = {};
  BOOST_TEST(!jar.verify(from, otherNonce, 99, cookie, 1001 * kSecond));
  for (size_t bit = 0; bit < kCookieSize * 8; ++bit) {
    cookie[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    BOOST_TEST(!jar.verify(from, kNonce, 99, cookie, 1001 * kSecond), "bit " << bit);
    cookie[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  }
}

BOOST_AUTO_TEST_CASE(a_cookie_expires_and_another_servers_cookie_never_verifies) {
  CookieJar jar(42, 60 * kSecond, 120 * kSecond, 0);
  sockaddr_storage from = testAddress("::1", "5000");
  uint8_t cookie[kCookieSize];
  jar.make(from, kNonce, 7, 10 * kSecond, cookie);
  BOOST_TEST(jar.verify(from, kNonce, 7, cookie, 69 * kSecond));
  BOOST_TEST(!jar.verify(from, kNonce, 7, cookie, 72 * kSecond));
  BOOST_TEST(!jar.verify(from, kNonce, 7, cookie, 9 * kSecond), "from the future");
  CookieJar other(42, 60 * kSecond, 120 * kSecond, 0);
  jar.make(from, kNonce, 7, 10 * kSecond, cookie);
  BOOST_TEST(!other.verify(from, kNonce, 7, cookie, 11 * kSecond));
}

BOOST_AUTO_TEST_CASE(a_cookie_made_before_a_key_rotation_still_verifies_after_it) {
  CookieJar jar(1, 60 * kSecond, 60 * kSecond, 0);
  sockaddr_storage from = testAddress("127.0.0.1", "1");
  uint8_t cookie[kCookieSize];
  jar.make(from, kNonce, 1, 50 * kSecond, cookie);
  uint8_t fresh[kCookieSize];
  jar.make(from, kNonce, 1, 61 * kSecond, fresh);  // rotates
  BOOST_TEST(jar.verify(from, kNonce, 1, cookie, 62 * kSecond));
  BOOST_TEST(jar.verify(from, kNonce, 1, fresh, 62 * kSecond));
  BOOST_TEST(std::memcmp(cookie + 4, fresh + 4, kCookieSize - 4) != 0);
}

}  // namespace
}  // namespace ferry::transports::udp
