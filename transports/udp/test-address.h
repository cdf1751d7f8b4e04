// For the udp plugin's unit tests: a socket address from numeric text, or the test fails.
#pragma once

#include <boost/test/unit_test.hpp>

#include <string>

#include "address.h"

namespace ferry::transports::udp {

inline sockaddr_storage testAddress(const char* ip, const char* port) {
  sockaddr_storage out;
  std::string why;
  BOOST_REQUIRE_MESSAGE(parseBinding(ip, port, false, out, why) == 0, why);
  return out;
}

}  // namespace ferry::transports::udp
