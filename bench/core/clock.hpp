// The low-overhead clock the patterns time with.
//
// On x86 with an invariant TSC (and the kernel using it as clocksource) we
// read the TSC directly: it costs a few ns and never enters the kernel.
// Ticks are converted to ns with a factor calibrated against CLOCK_MONOTONIC.
// Everywhere else we fall back to clock_gettime(CLOCK_MONOTONIC).
#pragma once

#include <time.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define IPCBENCH_HAVE_TSC 1
#endif

namespace ipcbench {

__extension__ typedef unsigned __int128 Uint128;  // GCC/Clang builtin

// One calibration span: TSC ticks and CLOCK_MONOTONIC ns between the same two
// endpoints.
struct TscSpan {
  std::uint64_t ticks = 0;
  std::uint64_t ns = 0;
};

// What fit_tsc_spans made of the spans.
struct TscFit {
  bool use_tsc = false;                   // enough spans, plausible and in agreement
  double ticks_per_ns = 0;                // median of the spans (computed even when rejected)
  std::vector<double> span_ticks_per_ns;  // each span's ratio, in measurement order
  double spread = 0;                      // (max - min) / median of the spans' ratios
  std::string note;                       // why not the TSC (empty when use_tsc)
};

inline constexpr std::size_t kMinTscSpans = 3;
inline constexpr double kMaxTscSpread = 0.001;  // 0.1%

// The decision, apart from the timing so it can be tested: the median of the
// spans' ticks per ns, kept only when there are at least kMinTscSpans spans,
// the median is plausible (0.01-100 ticks per ns) and the spans' spread is at
// most kMaxTscSpread.
TscFit fit_tsc_spans(std::span<const TscSpan> spans);

class Clock {
 public:
  // Chooses the source and calibrates it: with the TSC, 5 spans of ~10 ms
  // against CLOCK_MONOTONIC (~50 ms), see clock.cpp.
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
  // Why the clock is not the TSC, one sentence; empty exactly when it is.
  const std::string& note() const noexcept { return note_; }
  // Each calibration span's TSC ticks per ns, and their spread ((max - min) /
  // median). Kept when the spans were rejected (they show why); empty when no
  // span was measured.
  const std::vector<double>& span_ticks_per_ns() const noexcept { return span_ticks_per_ns_; }
  double span_spread() const noexcept { return span_spread_; }

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
  // Calibration record, off the hot path (after the fields now() and to_ns() read).
  std::vector<double> span_ticks_per_ns_;
  double span_spread_ = 0;
  std::string note_;
};

// True when the CPU has an invariant TSC and the kernel's clocksource is the
// TSC (so the kernel trusts it too). Sets `why` to the reason when false.
bool tsc_is_usable(std::string* why);

// A CLOCK_MONOTONIC stamp taken now but paid for later. mark() reads only
// the TSC (a few ns); monotonic_at_mark() then reads CLOCK_MONOTONIC and the
// TSC together and subtracts the ticks since the mark, converted at the rate
// seen since this object was made. The peer stamps each echo's arrival this
// way: reading CLOCK_MONOTONIC before the echo cost ~280 ns of every
// open-loop shm-spin round trip (the clock's data is cold after an idle
// millisecond), a cost the sync round trip does not carry. Without a usable
// TSC, mark() reads CLOCK_MONOTONIC itself.
class DeferredStamp {
 public:
  DeferredStamp() : use_tsc_(tsc_is_usable(nullptr)) {
#ifdef IPCBENCH_HAVE_TSC
    if (use_tsc_) origin_ticks_ = __rdtsc();
#endif
    origin_ns_ = Clock::monotonic_ns();
  }

  void mark() noexcept {
#ifdef IPCBENCH_HAVE_TSC
    if (use_tsc_) {
      mark_ = __rdtsc();
      return;
    }
#endif
    mark_ = Clock::monotonic_ns();
  }

  std::uint64_t monotonic_at_mark() const noexcept {
#ifdef IPCBENCH_HAVE_TSC
    if (use_tsc_) {
      const std::uint64_t ns = Clock::monotonic_ns();
      const std::uint64_t ticks = __rdtsc();
      return back_date(ns, ticks - origin_ticks_, ns - origin_ns_, ticks - mark_);
    }
#endif
    return mark_;
  }

  // `now_ns` minus `since_mark` ticks at the rate `origin_ticks` per
  // `origin_ns` (the span since the origin); `now_ns` itself when that span
  // is empty. Apart from the clocks so it can be tested.
  static std::uint64_t back_date(std::uint64_t now_ns, std::uint64_t origin_ticks,
                                 std::uint64_t origin_ns, std::uint64_t since_mark) noexcept {
    if (origin_ns == 0 || origin_ticks == 0) return now_ns;
    const auto back = static_cast<std::uint64_t>(static_cast<double>(since_mark) *
                                                 static_cast<double>(origin_ns) /
                                                 static_cast<double>(origin_ticks));
    return back < now_ns ? now_ns - back : 0;
  }

 private:
  bool use_tsc_;
  std::uint64_t origin_ticks_ = 0;
  std::uint64_t origin_ns_ = 0;
  std::uint64_t mark_ = 0;
};

}  // namespace ipcbench
