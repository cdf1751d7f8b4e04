// Serves a Greeter from an STA, prints its OBJREF as text, and runs until its input closes.
#include <unistd.h>

#include <cstdio>
#include <string>

#include <ferry/ferry.h>

#include "greeter.ferry.h"

class GreeterImpl final : public ferry::Implements<greeter::iface::Greeter> {
public:
  std::string greet(std::string_view name) override {
    ++_count;
    return "hello, " + std::string(name);
  }
  uint32_t count() override { return _count; }

private:
  uint32_t _count = 0;
};

int main() {
  try {
    ferry::Runtime runtime;
    ferry::Sta sta = runtime.newSta("greeter");
    ferry::ObjRefBytes packet = sta.invoke([] {
      ferry::Ref<greeter::iface::Greeter> greeter(ferry::make<GreeterImpl>());
      return ferry::marshalInterface(greeter, ferry::MarshalContext::local,
                                     ferry::MarshalFlags::tableStrong);
    });
    std::printf("%s\n", ferry::objRefToText(packet).c_str());
    std::fflush(stdout);
    char buffer[64];
    while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
    }
    sta.invoke([&] { ferry::releaseMarshalData(packet); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "greeter-server: %s\n", e.what());
    return 1;
  }
  return 0;
}
