// The load sweep's rules (`run --load-sweep`), apart from the runner so
// they can be checked on synthetic figures: the ladder of offered rates,
// the latency bound (--slo, --slo-factor), when a step is saturated, which
// percentiles its samples back, and the capacity.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ipcbench {

// One step of the ladder: a share of the peak echo rate, or a rate.
struct LoadStep {
  double fraction = 0;        // of the peak echo rate (1.0 = 100%); 0 when absolute
  std::uint64_t rate = 0;     // messages/s; 0 when a fraction
  std::string label() const;  // "50%" or "50000/s": the step's name in the case name
  std::uint64_t offered(double peak_echo_rate) const;  // messages/s, at least 1
};

// The default ladder: light load, then dense where latency bends (60% to
// 100% of the peak in 5% steps), then past the peak to find saturation.
std::vector<LoadStep> default_ladder();

// "10%,50%,90%,100%,120%", "50k,100000" or a mix; ascending, no duplicates.
// Throws std::invalid_argument with a one-line reason.
std::vector<LoadStep> parse_ladder(std::string_view text);

// The latency bound a step must meet to count toward capacity: a
// percentile under an absolute bound (--slo p99=20us), or (bound_ns 0)
// under factor times the unloaded figure (--slo-factor, default 2).
struct Slo {
  double percentile = 99;
  double bound_ns = 0;
  double factor = 2;
  std::string text() const;  // "p99 <= 20.0 us" or "p99 <= 2x unloaded"
  double bound_for(double unloaded_ns) const {
    return bound_ns > 0 ? bound_ns : factor * unloaded_ns;
  }
};

// "p99=20us", "p50=800ns", "p999=1ms". Throws std::invalid_argument.
Slo parse_slo(std::string_view text);

// A percentile is reported only when this many samples lie beyond it.
inline constexpr double kSamplesBeyond = 100;
bool backed(double percentile, std::uint64_t samples);
// Samples a step needs for `percentile` to be backed.
std::uint64_t samples_for(double percentile);

// A step fell short of its offered rate by more than 1%.
bool saturated(double offered, double achieved);

struct StepFigures {
  double offered = 0;
  double achieved = 0;
  std::uint64_t samples = 0;
  double value_ns = 0;  // the SLO's percentile at this step
};

// The highest offered rate achieved (within 1%) whose SLO percentile was
// backed and within the bound; nullopt when no step qualifies.
std::optional<double> capacity(const std::vector<StepFigures>& steps, const Slo& slo,
                               double bound_ns);

}  // namespace ipcbench
