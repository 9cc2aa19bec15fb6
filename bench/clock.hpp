// The low-overhead clock the patterns time with.
//
// On x86 with an invariant TSC (and the kernel using it as clocksource) we
// read the TSC directly: it costs a few ns and never enters the kernel.
// Ticks are converted to ns with a factor calibrated against CLOCK_MONOTONIC.
// Everywhere else we fall back to clock_gettime(CLOCK_MONOTONIC).
#pragma once

#include <time.h>

#include <cstdint>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define IPCBENCH_HAVE_TSC 1
#endif

namespace ipcbench {

__extension__ typedef unsigned __int128 Uint128;  // GCC/Clang builtin

class Clock {
 public:
  // Chooses the source and calibrates it (takes ~20 ms with the TSC).
  static Clock calibrate();

  // Current time in ticks (TSC cycles or ns). Monotonic within one process.
  std::uint64_t now() const noexcept {
#ifdef IPCBENCH_HAVE_TSC
    if (use_tsc_) {
      // Plain rdtsc, not rdtscp: half the cost here (~10 ns against ~20 ns
      // on the VMs we measured), and the latency loop takes consecutive
      // stamps, so a stamp that runs a few cycles ahead of the reply it
      // follows only moves those cycles from one sample to the next; the
      // total span stays exact. The stamp follows the loop or system call
      // that delivered the reply, which it cannot overtake by more than the
      // few instructions in flight.
      return __rdtsc();
    }
#endif
    return monotonic_ns();
  }

  // Converts a tick difference to ns (exact integer arithmetic, no division).
  std::uint64_t to_ns(std::uint64_t ticks) const noexcept {
    return static_cast<std::uint64_t>((static_cast<Uint128>(ticks) * mult_) >> kShift);
  }

  // "tsc" or "clock_monotonic".
  const char* source() const noexcept { return use_tsc_ ? "tsc" : "clock_monotonic"; }
  // Ticks per ns (1.0 for clock_monotonic).
  double ticks_per_ns() const noexcept { return ticks_per_ns_; }

  static std::uint64_t monotonic_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
  }

 private:
  static constexpr int kShift = 32;
  bool use_tsc_ = false;
  std::uint64_t mult_ = 1ull << kShift;  // ns per tick, fixed point
  double ticks_per_ns_ = 1.0;
};

// True when the CPU has an invariant TSC and the kernel's clocksource is the
// TSC (so the kernel trusts it too). Sets `why` to the reason when false.
bool tsc_is_usable(std::string* why);

}  // namespace ipcbench
