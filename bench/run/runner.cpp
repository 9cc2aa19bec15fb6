#include "bench/run/runner.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bench/core/protocol.hpp"
#include "bench/core/sysinfo.hpp"
#include "bench/engine/engine.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/registry.hpp"

namespace ipcbench {
namespace {

std::string self_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "/proc/self/exe";
  return std::string(buf, static_cast<std::size_t>(n));
}

// Why a case of `mech_name` at `size` (on `eng`, for an async case of a
// pollable mechanism) cannot run here; empty when it can.
std::string skip_reason_of(const std::string& mech_name, const Capabilities& caps,
                           const std::string& unavailable, std::size_t size,
                           std::optional<Engine> eng) {
  const std::vector<Engine> usable = engine::engines_of(caps);
  if (!unavailable.empty()) return unavailable;
  if (size > caps.max_message) {
    return "message size " + std::to_string(size) + " exceeds " + mech_name + "'s limit of " +
           std::to_string(caps.max_message) + " bytes";
  }
  if (eng && std::find(usable.begin(), usable.end(), *eng) == usable.end()) {
    return mech_name + " cannot run on " + std::string(name_of(*eng)) +
           ": its channel does not move its bytes with plain reads and writes an engine could "
           "make";
  }
  if (eng && !engine::unavailable_reason(*eng).empty()) {
    return std::string(name_of(*eng)) + " is unavailable here: " + engine::unavailable_reason(*eng);
  }
  return {};
}

// The reason a mechanism is unavailable here, as a skip reason ("" if it is).
std::string unavailable_text(const std::string& mech_name, const Mechanism& mech) {
  std::string why = mech.unavailable_reason();
  if (!why.empty()) why.insert(0, mech_name + " is unavailable here: ");
  return why;
}

}  // namespace

// Object-name stem of a case. (Built with append: GCC 12 warns falsely on
// "literal" + std::string here.)
static std::string case_tag(std::size_t index) {
  std::string tag("case");
  tag.append(std::to_string(index)).append("-").append(std::to_string(::getpid()));
  return tag;
}

Runner::Runner(const Settings& settings, const Clock& clock, std::string run_dir,
               const Calibration* calibration)
    : settings_(settings),
      clock_(clock),
      calibration_(calibration),
      run_dir_(std::move(run_dir)),
      executable_(settings.peer_executable.empty() ? self_executable() : settings.peer_executable),
      watchdog_(settings.timeout),
      histogram_(make_latency_histogram()),
      lateness_(make_latency_histogram()) {
  // Open-loop pacing sleeps to shortly before a due time: the least timer
  // slack keeps that sleep's overshoot small (the spin covers the rest).
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  // The name gains the placement only when more than one runs, so a
  // single-placement run keeps the names comparable with older files.
  const bool several_placements = settings.placements.size() > 1;
  // Likewise the engine, on the async cases it applies to.
  const bool several_engines = settings.engines.size() > 1;
  for (const std::string& mech_name : settings.mechanisms) {
    Mechanism* mech = find_mechanism(mech_name);
    const Capabilities caps = mech->capabilities();
    const std::string unavailable = unavailable_text(mech_name, *mech);
    if (settings.load_sweep) {
      for (std::size_t p = 0; p < settings.placements.size(); ++p) {
        for (std::size_t size : settings.sizes) add_sweep(mech, p, size, several_placements);
      }
      continue;
    }
    for (std::size_t p = 0; p < settings.placements.size(); ++p) {
      for (const Mode mode : settings.modes) {
        // Sync cases, and the async ones of a channel that waits its own
        // way, run once; other async cases once per engine.
        const std::vector<Engine> usable = engine::engines_of(caps);
        std::vector<std::optional<Engine>> engines{std::nullopt};
        if (mode == Mode::kAsync && !usable.empty()) {
          engines.assign(settings.engines.begin(), settings.engines.end());
        }
        for (const std::optional<Engine> eng : engines) {
          for (const Pattern pattern : settings.patterns) {
            for (std::size_t size : settings.sizes) {
              Case c;
              c.mechanism = mech;
              c.mode = mode;
              c.pattern = pattern;
              c.size = size;
              c.placement = p;
              c.engine = eng;
              c.name = mech_name + "/" + std::string(name_of(mode)) + "/" +
                       std::string(name_of(pattern)) + "/" + std::to_string(size);
              if (eng && several_engines) c.name += "/" + std::string(name_of(*eng));
              if (several_placements) c.name += "/" + settings.placements[p].name();
              c.skip_reason = skip_reason_of(mech_name, caps, unavailable, size, eng);
              cases_.push_back(std::move(c));
            }
          }
        }
      }
    }
  }
  std::size_t largest = kControlBytes;
  for (const Case& c : cases_) {
    if (c.skip_reason.empty()) largest = std::max(largest, c.size);
  }
  // Allocated and touched once, so no case pays for page faults.
  send_buffer_.assign(largest, std::byte{0x5a});
  receive_buffer_.assign(largest, std::byte{0});
}

Runner::~Runner() { finish(); }

// The peak echo rate's closed loop: enough in flight that the mechanism,
// not the round trip, sets the rate.
constexpr std::uint64_t kPeakWindow = 64;
// A step runs until its SLO percentile is backed (load_sweep.hpp), at least
// --min-time and at most this long, so a light step of a slow mechanism
// does not take minutes.
constexpr double kMaxStepSeconds = 2.0;
// The unloaded figure, the bound's base, is the open loop like the steps
// (a closed loop hides the sender's stalls: a stalled ping-pong loses one
// sample, an open loop counts every message due during the stall), at one
// message per this many round trips, so both sides idle between messages.
constexpr double kUnloadedSpacing = 4;
// It runs until its percentiles are backed, at least this long (the machine's
// stalls come in bursts) and at most that long.
constexpr double kUnloadedMinSeconds = 1.0;
constexpr double kUnloadedMaxSeconds = 5.0;
// The sweep stops after this many saturated steps in a row.
constexpr int kSaturatedSteps = 2;

void Runner::add_sweep(Mechanism* mech, std::size_t placement, std::size_t size,
                       bool several_placements) {
  const int index = static_cast<int>(sweeps_.size());
  Sweep s;
  s.mechanism = std::string(mech->name());
  s.size = size;
  s.placement = placement;
  const Capabilities caps = mech->capabilities();
  const std::string unavailable = unavailable_text(s.mechanism, *mech);
  const std::optional<Engine> eng = engine::engines_of(caps).empty()
                                        ? std::nullopt
                                        : std::optional<Engine>(settings_.engines.front());
  const std::string skip = skip_reason_of(s.mechanism, caps, unavailable, size, eng);
  const auto add = [&](Case::SweepRole role, const std::string& label, const LoadStep& step) {
    Case c;
    c.mechanism = mech;
    c.mode = Mode::kAsync;
    c.pattern = Pattern::kLatency;
    c.size = size;
    c.placement = placement;
    c.engine = eng;
    c.name = s.mechanism + "/async/load/" + std::to_string(size) + "/" + label;
    if (several_placements) c.name += "/" + settings_.placements[placement].name();
    c.sweep_role = role;
    c.sweep = index;
    c.step = step;
    c.window = role == Case::SweepRole::kPeak ? kPeakWindow : 1;  // the open loop ignores it
    c.skip_reason = skip;
    cases_.push_back(std::move(c));
  };
  add(Case::SweepRole::kPeak, "peak", {});
  add(Case::SweepRole::kRoundTrip, "round-trip", {});
  add(Case::SweepRole::kUnloaded, "unloaded", {});
  for (const LoadStep& step : settings_.ladder) add(Case::SweepRole::kStep, step.label(), step);
  s.last_case = cases_.size() - 1;
  sweeps_.push_back(std::move(s));
}

bool Runner::prepare_sweep_case(Case& c) {
  Sweep& s = sweeps_[static_cast<std::size_t>(c.sweep)];
  if (c.sweep_role == Case::SweepRole::kPeak || c.sweep_role == Case::SweepRole::kRoundTrip) {
    c.min_time = settings_.min_time;
    return true;
  }
  if (c.sweep_role == Case::SweepRole::kUnloaded) {
    if (!s.round_trip_ns) {
      c.error =
          "the round trip was not measured, so the unloaded open loop has no rate (see the "
          "round-trip case)";
      return false;
    }
    c.rate = static_cast<std::uint64_t>(
        std::max(1.0, std::round(1e9 / (kUnloadedSpacing * *s.round_trip_ns))));
    const std::uint64_t samples = std::max(samples_for(settings_.slo.percentile), samples_for(99));
    const double wanted = static_cast<double>(samples) * 1.05 / static_cast<double>(c.rate);
    const double least = std::max(settings_.min_time, kUnloadedMinSeconds);
    c.min_time = std::clamp(wanted, least, std::max(least, kUnloadedMaxSeconds));
    return true;
  }
  if (!s.stopped.empty()) {
    c.not_run = true;
    return false;
  }
  if (!s.peak_echo_rate) {
    c.error = "the peak echo rate was not measured, so the step has no rate (see the peak case)";
    return false;
  }
  c.rate = c.step.offered(*s.peak_echo_rate);
  const double wanted = static_cast<double>(samples_for(settings_.slo.percentile)) * 1.05 /
                        static_cast<double>(c.rate);
  c.min_time =
      std::clamp(wanted, settings_.min_time, std::max(settings_.min_time, kMaxStepSeconds));
  return true;
}

void Runner::record_sweep_case(const Case& c, double echoed) {
  Sweep& s = sweeps_[static_cast<std::size_t>(c.sweep)];
  switch (c.sweep_role) {
    case Case::SweepRole::kPeak:
      s.peak_echo_rate = echoed;
      break;
    case Case::SweepRole::kRoundTrip:
      if (echoed > 0) s.round_trip_ns = 1e9 / echoed;
      break;
    case Case::SweepRole::kUnloaded: {
      // A repetition's figures replace the last one's, never mix with them.
      s.unloaded_ns.reset();
      s.unloaded_p99_ns.reset();
      s.no_unloaded.clear();
      s.unloaded_rate = static_cast<double>(c.rate);
      // Only a backed figure of an open loop that kept its rate may set the
      // bound.
      if (saturated(static_cast<double>(c.rate), echoed)) {
        s.no_unloaded = "the unloaded open loop fell short of its rate";
        break;
      }
      if (backed(settings_.slo.percentile, histogram_.count())) {
        s.unloaded_ns =
            static_cast<double>(histogram_.value_at_percentile(settings_.slo.percentile));
      } else {
        s.no_unloaded = "the unloaded figure is not backed (" + std::to_string(histogram_.count()) +
                        " samples)";
      }
      if (backed(99, histogram_.count())) {
        s.unloaded_p99_ns = static_cast<double>(histogram_.value_at_percentile(99));
      }
      break;
    }
    case Case::SweepRole::kStep: {
      StepFigures f;
      f.offered = static_cast<double>(c.rate);
      f.achieved = echoed;
      f.samples = histogram_.count();
      f.value_ns = static_cast<double>(histogram_.value_at_percentile(settings_.slo.percentile));
      s.steps.push_back(f);
      s.saturated_in_a_row = saturated(f.offered, f.achieved) ? s.saturated_in_a_row + 1 : 0;
      if (s.saturated_in_a_row >= kSaturatedSteps) {
        s.stopped = "stopped after " + std::to_string(kSaturatedSteps) + " saturated steps";
      }
      break;
    }
    case Case::SweepRole::kNone:
      break;
  }
}

void Runner::register_benchmarks() {
  for (std::size_t i = 0; i < cases_.size(); ++i) {
    auto* b = benchmark::RegisterBenchmark(
        cases_[i].name.c_str(), [this, i](benchmark::State& state) { run_case(state, i); });
    b->UseManualTime()->Unit(benchmark::kNanosecond);
    // Every trial runs its own loop for --min-time of wall time and reports
    // the mean round trip (or ns per message) as its one iteration's time.
    // Google Benchmark would otherwise first run short trials to estimate
    // the iterations (about as long again as the trial it keeps), and would
    // stop on the accumulated manual time: minutes for an open loop.
    b->Iterations(1);
  }
}

int Runner::find_case(const std::string& name) const {
  for (std::size_t i = 0; i < cases_.size(); ++i) {
    if (cases_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

void Runner::finish() {
  bare_.reset();
  session_.reset();
  session_case_ = static_cast<std::size_t>(-1);
}

std::optional<AdjacentFloor> Runner::measure_floor_after(const Case& c) {
  if (!c.adjacent) return std::nullopt;
  finish();  // the measurement needs the peer's CPU to itself
  return measure_adjacent_floor(clock_, placement_of(c), c.pattern, c.size, settings_.allowed_cpus);
}

void Runner::start_session(std::size_t index) {
  bare_.reset();
  session_.reset();  // the previous case's peer goes first
  session_case_ = static_cast<std::size_t>(-1);
  Case& c = cases_[index];
  if (progress_ != nullptr) progress_->start_case(c.name);
  const Placement& placement = placement_of(c);
  // Before the peer exists: the measurement needs the peer's CPU to itself.
  if (calibration_ != nullptr && remote_ == nullptr &&
      wants_adjacent_floor(c.mechanism->capabilities(), placement)) {
    c.adjacent =
        measure_adjacent_floor(clock_, placement, c.pattern, c.size, settings_.allowed_cpus);
  }
  // The runner's placement: the peer inherits its affinity when it is not
  // pinned itself.
  if (placement.runner_cpu >= 0) {
    pin_current_thread(placement.runner_cpu);
  } else {
    set_thread_affinity(settings_.allowed_cpus);
  }
  SessionConfig config{.mechanism = c.mechanism,
                       .run_dir = run_dir_,
                       .tag = case_tag(index),
                       .max_message = c.size,
                       .peer_cpu = placement.peer_cpu,
                       .verify_full = settings_.verify_full,
                       .executable = executable_,
                       .same_cpu = remote_ == nullptr && placement.runner_cpu >= 0 &&
                                   placement.runner_cpu == placement.peer_cpu,
                       .spin_budget = settings_.spin_budget,
                       .remote = remote_};
  session_ = std::make_unique<PeerSession>(config, watchdog_);
  session_case_ = index;
  c.runner_cpu = current_cpu();
  c.peer_cpu = session_->peer_cpu();
  // Warm-up under the watchdog too: a peer can hang here as well.
  PatternContext ctx = context_for(c);
  {
    Watchdog::Armed armed(watchdog_, session_->peer_pid(), session_->peer_pidfd(),
                          &session_->channel());
    warm_up(ctx, std::chrono::milliseconds(25), 64, 2000);
  }
  // The bare reference loop of the mechanism's kernel object, on the same
  // CPUs; its blocks alternate with the case's trials (run_bare_block). Made
  // outside the case peer's watchdog: a bare peer that does not start must
  // not get the case's peer killed (BarePair's own start deadline ends the
  // wait).
  const auto family = bare_family_for(c.mechanism->name());
  if (family && c.mode == Mode::kSync && remote_ == nullptr &&
      c.size <= bare_max_message(*family)) {
    try {
      bare_ = std::make_unique<BarePair>(*family, c.size, placement.runner_cpu, placement.peer_cpu,
                                         clock_);
      bare_->watch_progress(watchdog_.progress());
    } catch (const std::exception& e) {
      c.adapter_note = std::string("the bare reference loop could not start: ") + e.what();
    }
  }
}

std::optional<double> Runner::run_bare_block(Case& c, const TrialResult& r) {
  if (!bare_) return std::nullopt;
  // As long as the trial's timed span, at most --min-time.
  const double min_time = settings_.min_time;
  const auto duration =
      std::chrono::nanoseconds(static_cast<std::int64_t>(std::min(r.seconds, min_time) * 1e9));
  try {
    // Watched like a trial: a bare peer that dies or stops answering is
    // killed and the block ends, instead of hanging the run.
    Watchdog::Armed armed(watchdog_, bare_->peer_pid(), bare_->peer_pidfd());
    if (c.pattern == Pattern::kLatency) return bare_->run_latency_for(duration).p50_ns;
    return bare_->run_stream_for(duration).bytes_per_second;
  } catch (const std::exception& e) {
    c.adapter_note = std::string("the bare reference loop failed: ") + e.what();
    bare_.reset();
    if (posix::stop_signal() != 0) throw;  // a stop signal: end the case
    posix::clear_interrupt();              // the watchdog ended the bare block, not the case
    return std::nullopt;
  }
}

PatternContext Runner::context_for(const Case& c) {
  const Placement& p = placement_of(c);
  return {
      .link = session_->link(),
      .clock = clock_,
      .histogram = histogram_,
      .lateness = lateness_,
      .progress = watchdog_.progress(),
      .send_buffer = send_buffer_,
      .receive_buffer = receive_buffer_,
      .size = c.size,
      .verify_full = settings_.verify_full,
      .same_cpu = remote_ == nullptr && p.runner_cpu >= 0 && p.runner_cpu == p.peer_cpu,
      .spin_wait = !c.mechanism->capabilities().pollable &&
                   c.mechanism->capabilities().readiness == Waiting::kSpin,
      .engine = c.engine.value_or(Engine::kPoll),
      .window = c.window > 0 ? c.window : settings_.window,
      .rate = c.sweep >= 0 ? c.rate : settings_.rate,
      .in_flight_bytes = settings_.in_flight_bytes,
      .min_time = std::chrono::nanoseconds(
          static_cast<std::int64_t>((c.min_time > 0 ? c.min_time : settings_.min_time) * 1e9)),
      .timed = true,
  };
}

void Runner::run_case(benchmark::State& state, std::size_t index) {
  Case& c = cases_[index];
  if (!c.skip_reason.empty()) {
    state.SkipWithError(c.skip_reason.c_str());
    return;
  }
  if (posix::stop_signal() != 0) {
    if (c.error.empty()) {
      c.error =
          session_case_ == index ? "interrupted by a signal" : "not run: the run was interrupted";
    }
    state.SkipWithError(c.error.c_str());
    return;
  }
  if (!c.error.empty()) {  // an earlier repetition failed; do not retry
    state.SkipWithError(c.error.c_str());
    return;
  }
  if (c.sweep >= 0 && !prepare_sweep_case(c)) {
    if (c.not_run) {
      state.SkipWithError("not run: the sweep stopped past saturation");
    } else {
      state.SkipWithError(c.error.c_str());
    }
    return;
  }
  try {
    if (session_case_ != index) start_session(index);
    PatternContext ctx = context_for(c);
    TrialResult r;
    const bool async = c.mode == Mode::kAsync;
    {
      Watchdog::Armed armed(watchdog_, session_->peer_pid(), session_->peer_pidfd(),
                            &session_->channel());
      // One batch of all the iterations Google Benchmark wants: the pattern
      // times them itself, and reports the manual time.
      const auto iterations = static_cast<std::uint64_t>(state.max_iterations);
      while (state.KeepRunningBatch(state.max_iterations)) {
        r = run_trial(c.mode, c.pattern, ctx, iterations);
      }
      state.SetIterationTime(r.iteration_seconds);
    }

    // The bare reference block right after the trial: both see the same
    // moment of the machine.
    const std::optional<double> bare = run_bare_block(c, r);
    const double msgs = static_cast<double>(std::max<std::uint64_t>(r.messages, 1));
    const double secs = r.seconds > 0 ? r.seconds : 1e-9;
    // Rates are computed here from the timed span: Google Benchmark's kIsRate
    // would divide by the runner's CPU time, which is not what we measure.
    const double bytes_per_msg =
        static_cast<double>(c.size) * (c.pattern == Pattern::kLatency ? 2.0 : 1.0);
    auto& k = state.counters;
    k["messages"] = static_cast<double>(r.messages);
    k["messages_lost"] = static_cast<double>(r.messages_lost);
    k["items_per_second"] = static_cast<double>(r.messages) / secs;
    k["bytes_per_second"] = static_cast<double>(r.messages) * bytes_per_msg / secs;
    k["runner_cpu_ns_per_msg"] = static_cast<double>(r.runner_cpu_ns) / msgs;
    k["peer_cpu_ns_per_msg"] = static_cast<double>(r.peer_cpu_ns) / msgs;
    k["runner_ctx_switches_per_msg"] = static_cast<double>(r.runner_context_switches) / msgs;
    k["peer_ctx_switches_per_msg"] = static_cast<double>(r.peer_context_switches) / msgs;
    if (r.runner_syscalls)
      k["runner_syscalls_per_msg"] = static_cast<double>(*r.runner_syscalls) / msgs;
    if (r.peer_syscalls) k["peer_syscalls_per_msg"] = static_cast<double>(*r.peer_syscalls) / msgs;
    k["runner_own_syscalls_per_msg"] = static_cast<double>(r.runner_own_syscalls) / msgs;
    k["peer_own_syscalls_per_msg"] = static_cast<double>(r.peer_own_syscalls) / msgs;
    if (r.flow) {
      k["in_flight_limit_messages"] = static_cast<double>(r.flow->messages);
      k["in_flight_limit_bytes"] = static_cast<double>(r.flow->bytes);
      k["in_flight_limit_receive_buffer"] = r.flow->receive_buffer ? 1.0 : 0.0;  // see reporter
      k["flow_stall_fraction"] = r.flow_stall_fraction;
      k["channel_full_fraction"] = r.channel_full_fraction;
      if (session_->lossy()) k["lost_ack_wait_fraction"] = r.lost_ack_wait_fraction;
    }
    if (settings_.verify_full && c.pattern == Pattern::kThroughput) {
      k["runner_verify_ns_per_msg"] = static_cast<double>(r.runner_verify_ns) / msgs;
      k["peer_verify_ns_per_msg"] = static_cast<double>(r.peer_verify_ns) / msgs;
    }
    if (session_->lossy() && c.pattern == Pattern::kLatency)
      k["late"] = static_cast<double>(r.late);

    Trial trial{index, r, std::nullopt, std::nullopt, bare};
    if (bare && *bare > 0) {
      // Oriented like floor_ratio: how many times slower than the bare loop.
      const double figure = c.pattern == Pattern::kLatency
                                ? static_cast<double>(histogram_.value_at_percentile(50))
                                : k["bytes_per_second"].value;
      if (c.pattern == Pattern::kLatency) {
        k["bare_p50_ns"] = *bare;
        k["adapter_ratio"] = figure / *bare;
      } else if (figure > 0) {
        k["bare_bytes_per_second"] = *bare;
        k["adapter_ratio"] = *bare / figure;
      }
    }
    if (c.pattern == Pattern::kLatency) {
      const Histogram& h = histogram_;
      k["samples"] = static_cast<double>(h.count());
      k["min_ns"] = static_cast<double>(h.min());
      k["p50_ns"] = static_cast<double>(h.value_at_percentile(50));
      k["p90_ns"] = static_cast<double>(h.value_at_percentile(90));
      k["p99_ns"] = static_cast<double>(h.value_at_percentile(99));
      k["p999_ns"] = static_cast<double>(h.value_at_percentile(99.9));
      k["p9999_ns"] = static_cast<double>(h.value_at_percentile(99.99));
      k["max_ns"] = static_cast<double>(h.max());
      k["mean_ns"] = r.mean_ns;  // exact (the histogram's mean is within half a slot)
      k["stddev_ns"] = h.stddev();
      trial.histogram = histogram_;
    }
    if (async && c.pattern == Pattern::kLatency) {
      k["rate_achieved"] = r.rate_achieved;
      k["max_in_flight"] = static_cast<double>(r.max_in_flight);
      if (ctx.rate > 0) {
        const Histogram& l = lateness_;
        k["lateness_p50_ns"] = static_cast<double>(l.value_at_percentile(50));
        k["lateness_p99_ns"] = static_cast<double>(l.value_at_percentile(99));
        k["lateness_max_ns"] = static_cast<double>(l.max());
        k["runner_pacing_ns_per_msg"] = static_cast<double>(r.runner_pacing_ns) / msgs;
      }
    }
    // Across hosts the peer's clock is not ours: its one-way times are
    // meaningless and are not reported (the JSON says why).
    if (r.oneway && remote_ == nullptr) {
      const OneWayPayload& o = *r.oneway;
      const auto at = [&o](double p) {
        for (std::size_t i = 0; i < kSpectrumPoints; ++i) {
          if (kSpectrumPercentiles[i] == p) return static_cast<double>(o.value_ns[i]);
        }
        return 0.0;
      };
      k["oneway_samples"] = static_cast<double>(o.count);
      k["oneway_min_ns"] = static_cast<double>(o.min_ns);
      k["oneway_p50_ns"] = at(50);
      k["oneway_p90_ns"] = at(90);
      k["oneway_p99_ns"] = at(99);
      k["oneway_p999_ns"] = at(99.9);
      k["oneway_max_ns"] = static_cast<double>(o.max_ns);
      k["oneway_mean_ns"] = o.mean_ns;
      trial.oneway = o;
    }
    if (c.sweep >= 0) {
      const double echoed = static_cast<double>(r.messages) / secs;
      record_sweep_case(c, echoed);
      k["achieved_rate"] = echoed;
      if (c.rate > 0) k["offered_rate"] = static_cast<double>(c.rate);  // the open-loop parts
    }
    const std::int64_t id = next_trial_++;
    k["trial"] = static_cast<double>(id);  // removed again by the reporter
    trials_.emplace(id, std::move(trial));
  } catch (const std::exception& e) {
    std::string msg = e.what();
    // The watchdog's verdict (or a stop signal) explains the failure better
    // than its symptom, e.g. end-of-file after the watchdog killed the peer.
    if (posix::interrupt_flag().load() && msg != posix::interrupt_reason()) {
      msg = std::string(posix::interrupt_reason()) + ": " + msg;
    }
    if (session_ && session_case_ == index) {
      // Stopping anyway: do not wait for a peer that may still be alive.
      if (posix::stop_signal() != 0) session_->kill_peer();
      const std::string epitaph = session_->peer_epitaph();
      if (epitaph != "peer is still running") msg += " (" + epitaph + ")";
    }
    c.error = msg;
    session_.reset();
    session_case_ = static_cast<std::size_t>(-1);
    state.SkipWithError(c.error.c_str());
  }
}

}  // namespace ipcbench
