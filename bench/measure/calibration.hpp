// Calibration: what the hardware allows, measured in every run on the CPUs
// the cases use, so each case can be read against its physical floor.
//
// Every figure comes from the simplest code that does the thing: two
// processes (fork, no exec) on the placement's CPUs, one shared anonymous
// mapping, flags on their own cache lines. See docs/architecture.md.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/core/clock.hpp"
#include "bench/core/settings.hpp"
#include "mechanisms/mechanism.hpp"

namespace ipcbench {

// The floors measured under one placement. Spinning floors (cache line,
// payload, cross-core copy) are absent under same-cpu: two spinners on one
// CPU measure the scheduler, not the hardware.
struct PlacementCalibration {
  std::string placement;
  int runner_cpu = -1;  // read back while measuring
  int peer_cpu = -1;
  std::optional<double> cache_line_rtt_ns;                // p50
  std::optional<double> cache_line_rtt_min_ns;            // the sanity gate's bound
  std::map<std::size_t, double> payload_rtt_ns;           // p50 per size; empty under same-cpu
  double futex_rtt_ns = 0;                                // p50
  std::map<std::size_t, double> memcpy_bytes_per_second;  // best of a few
  std::map<std::size_t, double> cross_core_copy_bytes_per_second;  // best; empty under same-cpu
  std::vector<std::string> notes;
};

struct Calibration {
  double clock_read_ns = 0;
  double harness_ns = 0;  // p50 of the latency loop over a copy-only in-process channel
  double duration_s = 0;
  std::vector<PlacementCalibration> placements;
  const PlacementCalibration* find(const std::string& placement) const;
};

// Measures everything for each placement (pinning the calling thread as the
// runner; it is left pinned to the last placement's runner CPU, or
// unpinned). `allowed` is the CPU set "unpinned" means. Takes about a second
// per placement plus a fraction of a second per size. Throws
// std::runtime_error when a calibration process dies or stops answering.
Calibration calibrate(const Clock& clock, const std::vector<Placement>& placements,
                      const std::vector<std::size_t>& sizes, const std::vector<int>& allowed);

// The spinning floors re-measured right before one case. On VMs the
// cost of a cache-line transfer between two vCPUs changes from one second
// to the next (the host moves them), by up to 5x; a spinning mechanism's
// floor taken minutes earlier would make its ratio meaningless.
struct AdjacentFloor {
  double cache_line_rtt_min_ns = 0;
  std::optional<double> payload_rtt_ns;                    // latency cases
  std::optional<double> cross_core_copy_bytes_per_second;  // throughput cases
};

// Two figures of 30 ms, each after a 20 ms warm-up. Call while no peer
// runs (it needs the peer's CPU).
AdjacentFloor measure_adjacent_floor(const Clock& clock, const Placement& placement,
                                     Pattern pattern, std::size_t size,
                                     const std::vector<int>& allowed);

// The floor a case is compared with.
struct Floor {
  std::string name;       // "payload_rtt", "futex_rtt", "cross_core_copy", "memcpy"; empty: none
  double value = 0;       // ns (latency) or bytes/s (throughput)
  std::string note;       // why there is none
  bool adjacent = false;  // measured right before the case, not in the run's calibration
};

// A spinning mechanism under a placement with spinning floors: the only
// kind whose figures come near the floors, so the only kind worth the
// re-measurement right before the case.
bool wants_adjacent_floor(const Capabilities& caps, const Placement& placement);

Floor floor_for(const PlacementCalibration* cal, const Capabilities& caps, Mode mode,
                Pattern pattern, std::size_t size);

// latency: p50 / floor; throughput: floor / bytes per second. Both >= 1 when
// the floor is one. nullopt when there is no floor or no measurement.
std::optional<double> floor_ratio(const Floor& floor, Pattern pattern, double p50_ns,
                                  double bytes_per_second);

// On a VM the host may move the vCPUs during a case (onto one core's two
// hyperthreads, say), so a spinning round trip can fall below the cache-line
// floor measured before the case and still be real. A case the gate would
// flag has its floor measured again after it: when that floor is below the
// one before, the gate uses it, and this note (both figures) goes with the
// case instead of a measurement error when it explains the p50.
std::string floor_moved_note(double before_min_ns, double after_min_ns);

// The sanity gate: a reason when the figure is physically impossible (a
// round trip faster than the fastest cache-line round trip, or a copying
// mechanism faster than memcpy), else empty.
std::string sanity_check(const PlacementCalibration* cal, const Capabilities& caps, Pattern pattern,
                         std::size_t size, double p50_ns, double bytes_per_second);

// Console lines describing the calibration (printed before the cases run).
std::vector<std::string> describe(const Calibration& cal);

}  // namespace ipcbench
