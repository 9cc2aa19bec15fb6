#include "clock.hpp"

#include <fstream>
#include <string>

#ifdef IPCBENCH_HAVE_TSC
#include <cpuid.h>
#endif

namespace ipcbench {

bool tsc_is_usable(std::string* why) {
#ifdef IPCBENCH_HAVE_TSC
  unsigned a = 0, b = 0, c = 0, d = 0;
  // CPUID 0x80000007 EDX bit 8: invariant TSC (constant rate, runs in deep
  // C-states).
  if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8))) {
    if (why) *why = "CPU reports no invariant TSC";
    return false;
  }
  std::ifstream cs("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string source;
  if (cs >> source && source != "tsc") {
    if (why) *why = "kernel clocksource is " + source + ", not tsc";
    return false;
  }
  return true;
#else
  if (why) *why = "no TSC on this architecture";
  return false;
#endif
}

Clock Clock::calibrate() {
  Clock c;
#ifdef IPCBENCH_HAVE_TSC
  if (!tsc_is_usable(nullptr)) return c;
  c.use_tsc_ = true;
  // Two spans of ~10 ms against CLOCK_MONOTONIC; keep the ratio of the
  // longer one (less relative error from the endpoints).
  unsigned aux;
  const std::uint64_t m0 = monotonic_ns();
  const std::uint64_t t0 = __rdtscp(&aux);
  while (monotonic_ns() - m0 < 20'000'000) {
  }
  const std::uint64_t t1 = __rdtscp(&aux);
  const std::uint64_t m1 = monotonic_ns();
  const double ticks_per_ns = static_cast<double>(t1 - t0) / static_cast<double>(m1 - m0);
  if (!(ticks_per_ns > 0.01 && ticks_per_ns < 100.0)) {
    c.use_tsc_ = false;  // implausible: do not trust it
    return c;
  }
  c.ticks_per_ns_ = ticks_per_ns;
  c.mult_ = static_cast<std::uint64_t>((1.0 / ticks_per_ns) * static_cast<double>(1ull << kShift));
#endif
  return c;
}

}  // namespace ipcbench
