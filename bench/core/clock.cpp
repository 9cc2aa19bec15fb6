#include "bench/core/clock.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

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

TscFit fit_tsc_spans(std::span<const TscSpan> spans) {
  TscFit fit;
  for (const TscSpan& s : spans) {
    fit.span_ticks_per_ns.push_back(
        s.ns == 0 ? 0.0 : static_cast<double>(s.ticks) / static_cast<double>(s.ns));
  }
  const std::size_t n = fit.span_ticks_per_ns.size();
  if (n < kMinTscSpans) {
    fit.note = "only " + std::to_string(n) + " TSC calibration spans (need at least " +
               std::to_string(kMinTscSpans) + "): timing with CLOCK_MONOTONIC";
    return fit;
  }
  std::vector<double> sorted = fit.span_ticks_per_ns;
  std::sort(sorted.begin(), sorted.end());
  fit.ticks_per_ns = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  char text[160];
  if (!(fit.ticks_per_ns > 0.01 && fit.ticks_per_ns < 100.0)) {
    std::snprintf(text, sizeof text,
                  "TSC measured an implausible %.4g ticks/ns: timing with CLOCK_MONOTONIC",
                  fit.ticks_per_ns);
    fit.note = text;
    return fit;
  }
  // Max - min rather than each span against the median: stricter, and one
  // number for the report.
  fit.spread = (sorted.back() - sorted.front()) / fit.ticks_per_ns;
  if (!(fit.spread <= kMaxTscSpread)) {
    std::snprintf(text, sizeof text,
                  "TSC spans disagreed by %.3f%% (limit %g%%): timing with CLOCK_MONOTONIC",
                  fit.spread * 100, kMaxTscSpread * 100);
    fit.note = text;
    return fit;
  }
  fit.use_tsc = true;
  return fit;
}

#ifdef IPCBENCH_HAVE_TSC
namespace {

// A TSC read that neither starts before earlier instructions finish nor lets
// later ones start before it.
std::uint64_t ordered_tsc() noexcept {
  _mm_lfence();
  const std::uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}

// One endpoint: CLOCK_MONOTONIC between two TSC reads, the TSC taken as their
// midpoint; `bracket` (their distance) bounds how far apart the two clocks'
// readings can be.
struct Stamp {
  std::uint64_t tsc = 0;
  std::uint64_t ns = 0;
  std::uint64_t bracket = ~0ull;
};

Stamp read_stamp() noexcept {
  const std::uint64_t before = ordered_tsc();
  const std::uint64_t ns = Clock::monotonic_ns();
  const std::uint64_t after = ordered_tsc();
  if (after < before) return {};  // cannot happen on one CPU; treat as interrupted
  return {before + (after - before) / 2, ns, after - before};
}

// An endpoint whose bracket is within 4x the smallest seen so far (a wider one
// was interrupted: preempted, a VM exit, a migration). Bounded retries; then
// the tightest seen, whose error the spans' agreement check still catches.
Stamp take_endpoint(std::uint64_t& min_bracket) {
  constexpr int kTries = 16;
  Stamp best;
  for (int i = 0; i < kTries; ++i) {
    const Stamp s = read_stamp();
    min_bracket = std::min(min_bracket, s.bracket);
    if (s.bracket < best.bracket) best = s;
    if (best.bracket <= 4 * min_bracket) break;
  }
  return best;
}

}  // namespace
#endif

Clock Clock::calibrate() {
  Clock c;
#ifdef IPCBENCH_HAVE_TSC
  std::string why;
  if (!tsc_is_usable(&why)) {
    c.note_ = why + ": timing with CLOCK_MONOTONIC";
    return c;
  }
  // Several spans, so one disturbed span (or a TSC that drifts against the
  // kernel's clock) shows as disagreement instead of silently skewing every
  // result. Sleeping, not spinning, through each span: both clocks keep
  // running, and the machine's other CPU users keep theirs.
  constexpr int kSpans = 5;
  constexpr long kSpanNs = 10'000'000;
  std::uint64_t min_bracket = ~0ull;
  for (int i = 0; i < 8; ++i) min_bracket = std::min(min_bracket, read_stamp().bracket);  // warm up
  std::vector<TscSpan> spans;
  for (int i = 0; i < kSpans; ++i) {
    const Stamp start = take_endpoint(min_bracket);
    timespec left = {0, kSpanNs};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &left, &left) == EINTR) {
    }
    const Stamp end = take_endpoint(min_bracket);
    // A backwards step (a TSC not in sync across CPUs) becomes 0 ticks, which
    // the fit rejects.
    spans.push_back(
        {end.tsc > start.tsc ? end.tsc - start.tsc : 0, end.ns > start.ns ? end.ns - start.ns : 0});
  }
  TscFit fit = fit_tsc_spans(spans);
  c.span_ticks_per_ns_ = std::move(fit.span_ticks_per_ns);
  c.span_spread_ = fit.spread;
  if (!fit.use_tsc) {
    c.note_ = std::move(fit.note);
    return c;
  }
  c.use_tsc_ = true;
  c.ticks_per_ns_ = fit.ticks_per_ns;
  c.mult_ =
      static_cast<std::uint64_t>((1.0 / fit.ticks_per_ns) * static_cast<double>(1ull << kShift));
#else
  std::string why;
  tsc_is_usable(&why);
  c.note_ = why + ": timing with CLOCK_MONOTONIC";
#endif
  return c;
}

}  // namespace ipcbench
