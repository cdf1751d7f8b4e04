// The ferry demo: a Calculator served from an STA, called from the MTA and from a second STA,
// with a Listener callback passed as a parameter and called back in the caller's apartment.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <ferry/ferry.h>

#include "calculator.ferry.h"

using demo::iface::Calculator;
using demo::iface::Listener;

namespace {

std::string here() {
  ferry::Apartment apartment = ferry::tryCurrentApartment();
  if (!apartment) return "no apartment";
  return std::string(ferry::toString(apartment.kind())) + ":" + apartment.name();
}

class CalculatorImpl final : public ferry::Implements<Calculator> {
public:
  double add(double a, double b) override { return report("add", a + b); }

  double divide(double a, double b) override {
    if (b == 0) throw std::domain_error("division by zero");
    return report("divide", a / b);
  }

  uint32_t subscribe(ferry::Ref<Listener> listener) override {
    _listeners.push_back(std::move(listener));
    return static_cast<uint32_t>(_listeners.size());
  }

  void unsubscribeAll() override { _listeners.clear(); }

  std::string whereAmI() override { return here(); }

private:
  double report(const char* operation, double value) {
    std::printf("  [%s] calculator computed %s = %g\n", here().c_str(), operation, value);
    // Calls back into each listener's apartment while the caller waits for this call.
    for (auto& listener : _listeners) listener->onResult(operation, value);
    return value;
  }

  std::vector<ferry::Ref<Listener>> _listeners;
};

class PrintingListener final : public ferry::Implements<Listener> {
public:
  explicit PrintingListener(std::string name) : _name(std::move(name)) {}
  void onResult(std::string_view operation, double value) override {
    std::printf("  [%s] listener '%s' heard %.*s -> %g\n", here().c_str(), _name.c_str(),
                static_cast<int>(operation.size()), operation.data(), value);
  }

private:
  std::string _name;
};

void callFrom(const char* who, ferry::Ref<Calculator> calculator) {
  std::printf("%s (running in %s) holds a %s\n", who, here().c_str(),
              ferry::detail::asProxy(calculator.get()) ? "proxy" : "direct pointer");
  std::printf("  calculator lives in %s\n", calculator->whereAmI().c_str());
  std::printf("  add(2, 3) = %g\n", calculator->add(2, 3));
  try {
    calculator->divide(1, 0);
  } catch (const ferry::Error& e) {
    std::printf("  divide(1, 0) failed: %s\n", e.what());
  }
}

}  // namespace

int main() {
  try {
    ferry::Runtime runtime;
    ferry::Sta server = runtime.newSta("calculator");
    ferry::Sta client = runtime.newSta("client");

    // The calculator is created in its STA; what leaves the STA is a marshaled interface pointer.
    ferry::ObjRefBytes packet = server.invoke([] {
      ferry::Ref<Calculator> calculator = ferry::make<CalculatorImpl>();
      return ferry::marshalInterface(calculator, ferry::MarshalContext::inproc,
                                     ferry::MarshalFlags::tableStrong);
    });
    std::printf("marshaled the calculator: a %zu-byte OBJREF\n\n", packet.size());

    {
      // From the MTA: the main thread joins it for this block.
      auto mta = runtime.joinMta();
      auto calculator = ferry::unmarshalInterface<Calculator>(packet);
      callFrom("the MTA", calculator);
      std::printf("\n");
    }

    client.invoke([&] {
      auto calculator = ferry::unmarshalInterface<Calculator>(packet);
      // A listener living in this STA, passed as a parameter: the calculator gets a proxy.
      ferry::Ref<Listener> listener = ferry::make<PrintingListener>("client");
      std::printf("the client STA subscribes a listener (%u now)\n", calculator->subscribe(listener));
      callFrom("the client STA", calculator);
      calculator->unsubscribeAll();
    });
    std::printf("\n");

    // The table-strong packet kept the calculator alive until now.
    server.invoke([&] { ferry::releaseMarshalData(packet); });
    std::printf("released the packet; the calculator's apartment released the object\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo failed: %s\n", e.what());
    return 1;
  }
  auto stats = ferry::Runtime::stats();
  std::printf("after shutdown: %lld exported objects, %lld proxies, %lld apartments\n",
              static_cast<long long>(stats.exportedObjects),
              static_cast<long long>(stats.proxyManagers), static_cast<long long>(stats.apartments));
  return 0;
}
