// The runner: turns the settings into cases (mechanism x mode x pattern x
// size), registers each with Google Benchmark, and runs each case against a
// peer process. The harness never names a mechanism: it loops over the
// registry.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/core/clock.hpp"
#include "bench/core/histogram.hpp"
#include "bench/core/load_sweep.hpp"
#include "bench/core/settings.hpp"
#include "bench/measure/bare_loops.hpp"
#include "bench/measure/calibration.hpp"
#include "bench/measure/patterns.hpp"
#include "bench/peer/session.hpp"
#include "bench/peer/watchdog.hpp"
#include "bench/run/progress.hpp"
#include "mechanisms/mechanism.hpp"

namespace ipcbench {

struct Case {
  Mechanism* mechanism = nullptr;
  Mode mode = Mode::kSync;
  Pattern pattern = Pattern::kLatency;
  std::size_t size = 0;
  std::size_t placement = 0;  // index into Settings::placements
  // Async cases of a pollable mechanism: the engine they run on (unset:
  // sync, or a channel that waits its own way).
  std::optional<Engine> engine;
  std::string name;         // <mechanism>/<mode>/<pattern>/<size>[/<engine>][/<placement>]
  std::string skip_reason;  // non-empty: never run, reported as skipped
  std::string error;        // set when the case failed
  int runner_cpu = -1;      // read back after pinning
  int peer_cpu = -1;        // reported by the peer
  std::optional<AdjacentFloor> adjacent;  // spinning floors re-measured before the case
  // Set once the case's results are reported:
  Floor floor;                    // the physical floor it is compared with
  std::string measurement_error;  // the sanity gate's verdict; empty: plausible
  std::optional<double> cv;       // across repetitions (p50 or bytes/s)
  std::string adapter_note;       // why a case of a bare family has no adapter_ratio
  std::string floor_moved;  // floor_moved_note() when the floor re-measured after it explains it
  // --load-sweep: the case's part in its sweep (Runner::sweeps()[sweep]):
  // the peak echo rate (a closed loop of kPeakWindow), the round trip
  // (closed loop at window 1), the unloaded figure (the open loop at one
  // message per kUnloadedSpacing round trips), or a step of the ladder (open
  // loop at step.offered(peak)); a rate is set when its case runs.
  enum class SweepRole { kNone, kPeak, kRoundTrip, kUnloaded, kStep };
  SweepRole sweep_role = SweepRole::kNone;
  int sweep = -1;
  LoadStep step;
  std::uint64_t window = 0;  // async closed loop; 0: --window
  std::uint64_t rate = 0;    // async open loop (a step's offered rate)
  double min_time = 0;       // seconds; 0: --min-time
  bool not_run = false;      // a step after its sweep stopped: left out of the result
};

// One mechanism, size and placement's load sweep, as its cases run.
struct Sweep {
  std::string mechanism;
  std::size_t size = 0;
  std::size_t placement = 0;
  std::optional<double> peak_echo_rate;   // echoes/s with kPeakWindow in flight
  std::optional<double> round_trip_ns;    // mean, closed loop at window 1
  std::optional<double> unloaded_rate;    // messages/s of the unloaded open loop
  std::optional<double> unloaded_ns;      // its SLO percentile, when backed
  std::optional<double> unloaded_p99_ns;  // when backed
  std::string no_unloaded;                // why the unloaded figure cannot set the bound
  std::vector<StepFigures> steps;         // the steps that ran, in order
  int saturated_in_a_row = 0;
  std::string stopped;        // why the remaining steps were not run
  std::size_t last_case = 0;  // its last step's case index
};

// What one Google Benchmark trial of a case produced.
struct Trial {
  std::size_t case_index = 0;
  TrialResult result;
  std::optional<Histogram> histogram;   // latency cases only
  std::optional<OneWayPayload> oneway;  // async latency: the peer's one-way spectrum
  // The bare reference loop's block run right after this trial (sync cases
  // of pipe, fifo, uds-stream, tcp, udp): p50 ns or bytes/s.
  std::optional<double> bare;
};

class Runner {
 public:
  // `calibration` (may be null: --no-calibration) must outlive the runner.
  Runner(const Settings& settings, const Clock& clock, std::string run_dir,
         const Calibration* calibration);
  ~Runner();

  // Registers every case with Google Benchmark (skipped ones too, so that
  // they appear in the report with their reason).
  void register_benchmarks();

  // Ends the current case's session (called once Google Benchmark is done).
  void finish();

  void set_progress(Progress* progress) { progress_ = progress; }
  // Across hosts: every case's peer is started through this server.
  void set_remote(RemoteServer* remote) { remote_ = remote; }
  Watchdog& watchdog() { return watchdog_; }
  const Settings& settings() const { return settings_; }
  const Calibration* calibration() const { return calibration_; }
  // Ends case `c`'s peer and measures its spinning floors again (~0.2 s);
  // nullopt for a case that had none measured before it.
  std::optional<AdjacentFloor> measure_floor_after(const Case& c);
  const Placement& placement_of(const Case& c) const { return settings_.placements[c.placement]; }

  std::vector<Case>& cases() { return cases_; }
  const std::vector<Sweep>& sweeps() const { return sweeps_; }
  // Trials by id; each reported run carries its trial id (see reporter).
  std::map<std::int64_t, Trial>& trials() { return trials_; }

  // Index of the case registered as `name`, or -1.
  int find_case(const std::string& name) const;

 private:
  void run_case(benchmark::State& state, std::size_t index);
  void start_session(std::size_t index);
  // Runs the bare reference block that follows a trial; nullopt when the
  // case has none (or it failed: the case's adapter_note says why).
  std::optional<double> run_bare_block(Case& c, const TrialResult& r);
  // The pattern's view of the current session for case `c`.
  PatternContext context_for(const Case& c);
  // --load-sweep: registers the sweep cases of one mechanism, placement and size.
  void add_sweep(Mechanism* mech, std::size_t placement, std::size_t size, bool several_placements);
  // Before a sweep case's trial: false when it must not run (c.error or
  // c.not_run says why); sets a step's offered rate.
  bool prepare_sweep_case(Case& c);
  // After its trial: what the sweep learns from it.
  void record_sweep_case(const Case& c, double echoed);

  const Settings& settings_;
  const Clock& clock_;
  const Calibration* calibration_;
  std::string run_dir_;
  std::string executable_;
  std::vector<Case> cases_;
  std::vector<Sweep> sweeps_;
  std::map<std::int64_t, Trial> trials_;
  std::int64_t next_trial_ = 1;
  Progress* progress_ = nullptr;
  RemoteServer* remote_ = nullptr;

  Watchdog watchdog_;
  std::unique_ptr<PeerSession> session_;
  std::unique_ptr<BarePair> bare_;  // the current case's bare reference loop
  std::size_t session_case_ = static_cast<std::size_t>(-1);
  Histogram histogram_;
  Histogram lateness_;  // open loop: send lateness
  std::vector<std::byte> send_buffer_;
  std::vector<std::byte> receive_buffer_;
};

}  // namespace ipcbench
