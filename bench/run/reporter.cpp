#include "bench/run/reporter.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <set>
#include <system_error>

#include "bench/control/control.hpp"
#include "bench/core/syscall_count.hpp"
#include "bench/core/units.hpp"
#include "version.hpp"

namespace ipcbench {
namespace {

// Counters the console shows; the JSON gets all of them.
const std::set<std::string> kConsoleLatency = {"p50_ns", "p99_ns", "max_ns"};
const std::set<std::string> kConsoleThroughput = {"items_per_second", "bytes_per_second"};
// Counters that are counts or ns values: integers in the JSON of a single run.
const std::set<std::string> kIntegerFields = {"messages",
                                              "messages_lost",
                                              "samples",
                                              "min_ns",
                                              "p50_ns",
                                              "p90_ns",
                                              "p99_ns",
                                              "p999_ns",
                                              "p9999_ns",
                                              "max_ns",
                                              "oneway_samples",
                                              "oneway_min_ns",
                                              "oneway_p50_ns",
                                              "oneway_p90_ns",
                                              "oneway_p99_ns",
                                              "oneway_p999_ns",
                                              "oneway_max_ns",
                                              "late",
                                              "max_in_flight",
                                              "in_flight_limit_messages",
                                              "in_flight_limit_bytes",
                                              "lateness_p50_ns",
                                              "lateness_p99_ns",
                                              "lateness_max_ns"};

// An open-loop run counts as keeping up when it sent at least this share of
// the requested rate.
constexpr double kRateKeptUp = 0.95;

// How the runner waits for a message in this mode: sync calls block in the
// kernel or wait as the mechanism does; async waits poll descriptors, or use
// the mechanism's readiness wait when it has none.
std::string wait_of(const Mechanism& m, Mode mode, std::uint32_t spin_budget) {
  const Capabilities caps = m.capabilities();
  Waiting w = mode == Mode::kAsync ? caps.readiness : caps.waiting;
  if (mode == Mode::kAsync && caps.pollable) return "poll";
  if (caps.spin_budget && spin_budget > 0) w = Waiting::kSpinThenSleep;
  switch (w) {
    case Waiting::kSpin:
      return "spin";
    case Waiting::kSpinThenSleep:
      return "spin-then-block";
    case Waiting::kSleep:
      break;
  }
  return "block";
}

const char* role_name(Case::SweepRole role) {
  switch (role) {
    case Case::SweepRole::kPeak:
      return "peak";
    case Case::SweepRole::kRoundTrip:
      return "round-trip";
    case Case::SweepRole::kUnloaded:
      return "unloaded";
    case Case::SweepRole::kStep:
      return "step";
    case Case::SweepRole::kNone:
      break;
  }
  return "";
}

// A load sweep's row: pattern "load", its part in the sweep, for a step its
// label, for an open-loop part whether it saturated, and which percentiles
// its samples back.
void sweep_fields(nlohmann::ordered_json& b, const Case& c) {
  b["pattern"] = "load";
  b["load_role"] = role_name(c.sweep_role);
  if (c.sweep_role == Case::SweepRole::kStep) {
    b["load_step"] = c.step.label();
    if (c.step.rate == 0) b["load_fraction"] = c.step.fraction;
  }
  // The open-loop parts (the unloaded figure and the steps) have a rate.
  if (b.contains("offered_rate") && b.contains("achieved_rate")) {
    b["saturated"] = saturated(b["offered_rate"].get<double>(), b["achieved_rate"].get<double>());
  }
  if (b.contains("samples")) {
    // A percentile without 100 samples beyond it is not reported (its
    // value would be one or two samples' luck); the list says which are.
    nlohmann::ordered_json backed_list = nlohmann::ordered_json::array();
    const auto n = static_cast<std::uint64_t>(b["samples"].get<double>());
    for (const auto& [p, field] : {std::pair<double, const char*>{50.0, "p50_ns"},
                                   {90.0, "p90_ns"},
                                   {99.0, "p99_ns"},
                                   {99.9, "p999_ns"},
                                   {99.99, "p9999_ns"}}) {
      if (backed(p, n)) {
        backed_list.push_back(p);
      } else {
        b.erase(field);
      }
    }
    b["backed_percentiles"] = backed_list;
  }
}

nlohmann::ordered_json spectrum(const Histogram& h) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (double p : kSpectrumPercentiles) {
    out.push_back({{"percentile", p}, {"value_ns", h.value_at_percentile(p)}});
  }
  return out;
}

std::string fmt_ns(double ns) { return format_ns(ns); }

std::string fmt_rate(double per_second, const char* unit) {
  char buf[48];
  if (per_second >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f G%s/s", per_second / 1e9, unit);
  } else if (per_second >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M%s/s", per_second / 1e6, unit);
  } else if (per_second >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.2f k%s/s", per_second / 1e3, unit);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f %s/s", per_second, unit);
  }
  return buf;
}

std::size_t unsaturated(const Sweep& s) {
  return static_cast<std::size_t>(std::count_if(s.steps.begin(), s.steps.end(), [](const auto& f) {
    return !saturated(f.offered, f.achieved);
  }));
}

// Why a sweep under a relative bound has none, with what to do.
std::string no_bound_reason(const Sweep& s) {
  return (s.no_unloaded.empty() ? std::string("the unloaded figure was not measured")
                                : s.no_unloaded) +
         " (give --slo p99=TIME for an absolute bound)";
}

std::optional<double> sweep_bound(const Sweep& s, const Slo& slo) {
  if (slo.bound_ns > 0) return slo.bound_ns;
  if (s.unloaded_ns) return slo.bound_for(*s.unloaded_ns);
  return std::nullopt;
}

std::optional<double> sweep_capacity(const Sweep& s, const Slo& slo) {
  const auto bound = sweep_bound(s, slo);
  if (!bound) return std::nullopt;
  return capacity(s.steps, slo, *bound);
}

std::string sweep_summary(const Sweep& s, const Slo& slo) {
  std::string size = format_size(s.size);
  if (std::isdigit(static_cast<unsigned char>(size.back())) != 0) size += " B";
  std::string line = "load sweep " + s.mechanism + " " + size + ": ";
  if (!s.peak_echo_rate) return line + "no peak echo rate, so no sweep";
  line += "peak echo rate " + fmt_rate(*s.peak_echo_rate, "msg");
  const auto bound = sweep_bound(s, slo);
  const auto cap = sweep_capacity(s, slo);
  line += ", " + std::to_string(s.steps.size()) + " steps (" + std::to_string(unsaturated(s)) +
          " unsaturated)";
  if (!bound) return line + "; no capacity: " + no_bound_reason(s);
  line += "; capacity at " + slo.text() + " (" + fmt_ns(*bound) + "): ";
  line += cap ? fmt_rate(*cap, "msg") : std::string("none (no step met the bound)");
  return line;
}

// A counter of `run` formatted, or "n/a" when the run does not have it
// (never a made-up 0).
template <typename Format>
std::string counter_text(const benchmark::BenchmarkReporter::Run& run, const char* name,
                         Format format) {
  auto it = run.counters.find(name);
  return it == run.counters.end() ? std::string("n/a") : format(it->second.value);
}

// Rows that are a measurement (a repetition, or the mean or median of
// them), as opposed to a spread (stddev, cv).
bool is_measurement(const benchmark::BenchmarkReporter::Run& run) {
  return run.run_type == benchmark::BenchmarkReporter::Run::RT_Iteration ||
         run.aggregate_name == "mean" || run.aggregate_name == "median";
}

double counter_value(const benchmark::BenchmarkReporter::Run& run, const char* name) {
  auto it = run.counters.find(name);
  return it == run.counters.end() ? 0.0 : it->second.value;
}

// Cases whose headline figure varies more than this across repetitions are
// flagged as unstable.
constexpr double kUnstableCv = 0.05;

nlohmann::ordered_json per_size(const std::map<std::size_t, double>& m) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [size, v] : m) out[std::to_string(size)] = v;
  return out;
}

template <typename T>
nlohmann::ordered_json or_null(const std::optional<T>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json calibration_json(const Calibration& cal) {
  nlohmann::ordered_json places = nlohmann::ordered_json::object();
  for (const PlacementCalibration& p : cal.placements) {
    const bool spin = p.cache_line_rtt_ns.has_value();
    places[p.placement] = {
        {"cpus", nlohmann::ordered_json::array({p.runner_cpu, p.peer_cpu})},
        {"cache_line_rtt_ns", or_null(p.cache_line_rtt_ns)},
        {"cache_line_rtt_min_ns", or_null(p.cache_line_rtt_min_ns)},
        {"payload_rtt_ns", spin ? per_size(p.payload_rtt_ns) : nlohmann::ordered_json(nullptr)},
        {"futex_rtt_ns", p.futex_rtt_ns},
        {"memcpy_bytes_per_second", per_size(p.memcpy_bytes_per_second)},
        {"cross_core_copy_bytes_per_second",
         spin ? per_size(p.cross_core_copy_bytes_per_second) : nlohmann::ordered_json(nullptr)},
        {"notes", p.notes}};
  }
  return {{"clock_read_ns", cal.clock_read_ns},
          {"harness_ns", cal.harness_ns},
          {"duration_s", cal.duration_s},
          {"placements", places}};
}

}  // namespace

// The suite's verdicts on a measured case, on each of its rows: the floor
// and this row's ratio to it, the sanity gate's flag, the stability.
void annotate(nlohmann::ordered_json& b, const Case& c) {
  if (!c.skip_reason.empty() || !c.error.empty() || b.value("error_occurred", false)) return;
  const bool measurement = !b.contains("aggregate_name") || b["aggregate_name"] == "mean" ||
                           b["aggregate_name"] == "median";
  if (c.floor.name.empty()) {
    b["floor"] = nullptr;
    b["floor_value"] = nullptr;
    b["floor_ratio"] = nullptr;
    b["floor_note"] = c.floor.note;
  } else {
    b["floor"] = c.floor.name;
    b["floor_value"] = c.floor.value;
    b["floor_source"] = c.floor.adjacent ? "adjacent" : "calibration";
    const double p50 = b.contains("p50_ns") ? b["p50_ns"].get<double>() : 0.0;
    const double bps = b.contains("bytes_per_second") ? b["bytes_per_second"].get<double>() : 0.0;
    const std::optional<double> ratio =
        measurement ? floor_ratio(c.floor, c.pattern, p50, bps) : std::nullopt;
    b["floor_ratio"] = or_null(ratio);
  }
  if (!c.measurement_error.empty()) b["measurement_error"] = c.measurement_error;
  if (!c.floor_moved.empty()) b["floor_moved"] = c.floor_moved;
  if (c.cv) {
    b["cv"] = *c.cv;
    b["cv_metric"] = c.pattern == Pattern::kLatency ? "p50_ns" : "bytes_per_second";
    b["unstable"] = *c.cv > kUnstableCv;
  }
}

std::optional<double> coefficient_of_variation(const std::vector<double>& values) {
  if (values.size() < 2) return std::nullopt;
  double mean = 0;
  for (double v : values) mean += v;
  mean /= static_cast<double>(values.size());
  if (!(mean > 0)) return std::nullopt;
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  // Sample standard deviation, as Google Benchmark's own cv aggregate.
  return std::sqrt(ss / static_cast<double>(values.size() - 1)) / mean;
}

IpcbenchReporter::IpcbenchReporter(Runner& runner, Progress& progress)
    : runner_(runner), progress_(progress), console_(benchmark::ConsoleReporter::OO_Tabular) {
  json_.SetOutputStream(&json_text_);
  json_.SetErrorStream(&std::cerr);
}

bool IpcbenchReporter::ReportContext(const Context& context) {
  progress_.clear();
  console_.ReportContext(context);
  json_.ReportContext(context);
  progress_.redraw();
  return true;
}

void IpcbenchReporter::ReportRuns(const std::vector<Run>& reported_runs) {
  if (reported_runs.empty()) return;
  // Self-timed cases register one iteration per trial; Google Benchmark
  // would then append "/iterations:1" to the name. The name stays the case's.
  std::vector<Run> runs = reported_runs;
  for (Run& run : runs) run.run_name.iterations.clear();
  const int case_index = runner_.find_case(runs.front().run_name.function_name);
  std::vector<Run> for_json = runs;
  std::vector<std::int64_t> batch_trials;
  for (Run& run : for_json) {
    Row row;
    row.case_index = case_index;
    row.aggregate = run.run_type == Run::RT_Aggregate;
    auto trial = run.counters.find("trial");
    if (trial != run.counters.end()) {
      if (!row.aggregate) {
        row.trial = static_cast<std::int64_t>(trial->second.value);
        batch_trials.push_back(row.trial);
      }
      run.counters.erase(trial);
    }
    // NOTE: Google Benchmark writes NaN/Infinity (e.g. the cv of a counter
    // whose mean is 0), which is not JSON. Such an aggregate is undefined, so
    // it is left out rather than written as a made-up number.
    for (auto it = run.counters.begin(); it != run.counters.end();) {
      it = std::isfinite(it->second.value) ? std::next(it) : run.counters.erase(it);
    }
    rows_.push_back(std::move(row));
  }
  // Aggregate rows merge the histograms of the case's reported trials.
  if (case_index >= 0) {
    std::vector<std::int64_t> reported;
    for (const Row& r : rows_) {
      if (r.case_index == case_index && r.trial >= 0) reported.push_back(r.trial);
    }
    if (reported.empty()) {
      // Only aggregates were reported: the repetitions are the case's last
      // `repetitions` trials (iteration-estimation trials come first).
      for (const auto& [id, t] : runner_.trials()) {
        if (t.case_index == static_cast<std::size_t>(case_index)) reported.push_back(id);
      }
      const auto reps =
          static_cast<std::size_t>(std::max<std::int64_t>(runs.front().repetitions, 1));
      if (reported.size() > reps)
        reported.erase(reported.begin(), reported.end() - static_cast<std::ptrdiff_t>(reps));
    }
    for (std::size_t i = rows_.size() - for_json.size(); i < rows_.size(); ++i) {
      if (rows_[i].aggregate) rows_[i].merged = reported;
    }
    Case& c = runner_.cases()[static_cast<std::size_t>(case_index)];
    if (c.skip_reason.empty() && c.error.empty()) assess(c, runs, reported);
  }
  json_.ReportRuns(for_json);
  print_console(runs, case_index);
}

void IpcbenchReporter::assess(Case& c, const std::vector<Run>& runs,
                              const std::vector<std::int64_t>& trials) {
  const Capabilities caps = c.mechanism->capabilities();
  const Calibration* cal = runner_.calibration();
  const PlacementCalibration* pc =
      cal != nullptr ? cal->find(runner_.placement_of(c).name()) : nullptr;
  const bool across_hosts = !runner_.settings().remote.empty();
  // Between hosts there is no shared-memory floor, and the calibration
  // measured this host only; no sanity gate either (its bounds are local).
  if (across_hosts) {
    c.floor = Floor{};
    c.floor.note = "across hosts: the calibration's floors describe this host only";
  } else {
    c.floor = floor_for(pc, caps, c.mode, c.pattern, c.size);
  }
  // The gate's bound: the fastest cache-line round trip seen anywhere in the
  // run (a lower bound that moves with the host cannot cause a false flag).
  std::optional<PlacementCalibration> gate;
  if (pc != nullptr) gate = *pc;
  if (c.adjacent) {
    if (c.floor.name == "payload_rtt" && c.adjacent->payload_rtt_ns) {
      c.floor.value = *c.adjacent->payload_rtt_ns;
      c.floor.adjacent = true;
    }
    if (c.floor.name == "cross_core_copy" && c.adjacent->cross_core_copy_bytes_per_second) {
      c.floor.value = *c.adjacent->cross_core_copy_bytes_per_second;
      c.floor.adjacent = true;
    }
    if (gate && gate->cache_line_rtt_min_ns) {
      gate->cache_line_rtt_min_ns =
          std::min(*gate->cache_line_rtt_min_ns, c.adjacent->cache_line_rtt_min_ns);
    }
  }
  const auto verdict = [&] {
    for (const Run& run : runs) {
      if (across_hosts || run.error_occurred || !is_measurement(run)) continue;
      std::string why =
          sanity_check(gate ? &*gate : nullptr, caps, c.pattern, c.size,
                       counter_value(run, "p50_ns"), counter_value(run, "bytes_per_second"));
      if (!why.empty()) return why;
    }
    return std::string();
  };
  std::string why = verdict();
  // Below the floor measured before the case: the host may have moved the
  // vCPUs during it. Measure again after it before calling it an error.
  if (!why.empty() && c.pattern == Pattern::kLatency && gate && gate->cache_line_rtt_min_ns) {
    if (const std::optional<AdjacentFloor> after = runner_.measure_floor_after(c)) {
      const double before = *gate->cache_line_rtt_min_ns;
      if (after->cache_line_rtt_min_ns < before) {
        gate->cache_line_rtt_min_ns = after->cache_line_rtt_min_ns;
        why = verdict();
        if (why.empty()) {
          c.floor_moved = floor_moved_note(before, after->cache_line_rtt_min_ns);
          if (c.floor.name == "payload_rtt" && after->payload_rtt_ns) {
            c.floor.value = *after->payload_rtt_ns;
            c.floor.adjacent = true;
          }
        }
      }
      if (!why.empty()) {
        why += " (measured again after the case: " + fmt_ns(after->cache_line_rtt_min_ns) + ")";
      }
    }
  }
  c.measurement_error = why;
  // Stability: the spread of the headline figure over the repetitions.
  std::vector<double> values;
  for (std::int64_t id : trials) {
    auto t = runner_.trials().find(id);
    if (t == runner_.trials().end()) continue;
    if (c.pattern == Pattern::kLatency) {
      if (t->second.histogram) {
        values.push_back(static_cast<double>(t->second.histogram->value_at_percentile(50)));
      }
    } else if (t->second.result.seconds > 0) {
      values.push_back(static_cast<double>(t->second.result.messages) *
                       static_cast<double>(c.size) / t->second.result.seconds);
    }
  }
  c.cv = coefficient_of_variation(values);
}

void IpcbenchReporter::print_console(const std::vector<Run>& runs, int case_index) {
  progress_.clear();
  const Case* c =
      case_index >= 0 ? &runner_.cases()[static_cast<std::size_t>(case_index)] : nullptr;
  const bool latency = c != nullptr && c->pattern == Pattern::kLatency;
  std::vector<Run> shown;
  for (const Run& run : runs) {
    if (c != nullptr && c->not_run) continue;  // left out of the result too
    if (c != nullptr && !c->skip_reason.empty()) {
      std::cout << run.benchmark_name() << "  SKIPPED: " << c->skip_reason << "\n";
      continue;
    }
    Run copy = run;
    const auto& keep = latency ? kConsoleLatency : kConsoleThroughput;
    for (auto it = copy.counters.begin(); it != copy.counters.end();) {
      if (keep.count(it->first) == 0) {
        it = copy.counters.erase(it);
      } else {
        if (it->first.ends_with("_per_second")) {
          it->second.flags = benchmark::Counter::kIsRate;  // display only: adds "/s"
        }
        ++it;
      }
    }
    shown.push_back(std::move(copy));
  }
  if (!shown.empty()) console_.ReportRuns(shown);
  std::cout.flush();

  // Progress counts a case once, on its first batch of rows.
  if (!finished_.insert(case_index).second) {
    progress_.redraw();
    return;
  }
  std::string outcome;
  const Run& last = runs.back();
  if (c != nullptr && !c->skip_reason.empty()) {
    outcome = "skipped: " + c->skip_reason;
  } else if (c != nullptr && c->not_run) {
    outcome = "not run: the sweep stopped past saturation";
  } else if (last.error_occurred) {
    outcome = "FAILED: " + last.error_message;
  } else if (latency) {
    outcome = "p50 " + counter_text(last, "p50_ns", fmt_ns) + ", p99 " +
              counter_text(last, "p99_ns", fmt_ns);
    if (last.counters.count("oneway_p50_ns")) {
      outcome += ", one-way p50 " + counter_text(last, "oneway_p50_ns", fmt_ns);
    }
    const std::uint64_t rate = c->sweep >= 0 ? c->rate : runner_.settings().rate;
    if (c->sweep >= 0 && c->rate > 0) {  // the open-loop parts
      outcome = "offered " + fmt_rate(static_cast<double>(c->rate), "msg") + ", echoed " +
                counter_text(last, "achieved_rate", [](double v) { return fmt_rate(v, "msg"); }) +
                (saturated(static_cast<double>(c->rate), counter_value(last, "achieved_rate"))
                     ? " (SATURATED)"
                     : "") +
                "; " + outcome;
    } else if (c->sweep_role == Case::SweepRole::kPeak) {
      outcome = "peak echo rate " +
                counter_text(last, "achieved_rate", [](double v) { return fmt_rate(v, "msg"); }) +
                "; " + outcome;
    }
    auto achieved = last.counters.find("rate_achieved");
    if (c->mode == Mode::kAsync && rate > 0 && achieved != last.counters.end() &&
        achieved->second.value < kRateKeptUp * static_cast<double>(rate)) {
      outcome += "; WARNING: sent only " + fmt_rate(achieved->second.value, "msg") +
                 " of the requested " + fmt_rate(static_cast<double>(rate), "msg");
    }
  } else {
    outcome = counter_text(last, "items_per_second", [](double v) { return fmt_rate(v, "msg"); }) +
              ", " +
              counter_text(last, "bytes_per_second", [](double v) { return fmt_rate(v, "B"); });
  }
  if (c != nullptr && c->skip_reason.empty() && !last.error_occurred) {
    const double p50 = counter_value(last, "p50_ns");
    const double bps = counter_value(last, "bytes_per_second");
    if (const auto ratio = floor_ratio(c->floor, c->pattern, p50, bps)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "; %.2fx %s", *ratio, c->floor.name.c_str());
      outcome += buf;
    }
    if (c->cv && *c->cv > kUnstableCv) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "; UNSTABLE: cv %.1f%% over the repetitions", *c->cv * 100);
      outcome += buf;
    }
    if (!c->measurement_error.empty()) outcome += "; MEASUREMENT ERROR: " + c->measurement_error;
    if (!c->floor_moved.empty()) outcome += "; FLOOR MOVED: " + c->floor_moved;
  }
  progress_.finish_case(c != nullptr ? c->name : runs.front().benchmark_name(), outcome);
  if (c != nullptr && c->sweep >= 0) {
    const Sweep& s = runner_.sweeps()[static_cast<std::size_t>(c->sweep)];
    if (static_cast<std::size_t>(case_index) == s.last_case) {
      progress_.clear();
      std::printf("%s\n", sweep_summary(s, runner_.settings().slo).c_str());
      std::fflush(stdout);
      progress_.redraw();
    }
  }
}

void IpcbenchReporter::add_load_sweeps(nlohmann::ordered_json& doc,
                                       const Settings& settings) const {
  const Slo& slo = settings.slo;
  const auto or_null = [](const std::optional<double>& v) {
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
  };
  nlohmann::ordered_json steps = nlohmann::ordered_json::array();
  for (const LoadStep& step : settings.ladder) steps.push_back(step.label());
  const nlohmann::ordered_json rule = {
      {"percentile", slo.percentile},
      {"bound_ns", slo.bound_ns > 0 ? nlohmann::ordered_json(slo.bound_ns) : nullptr},
      {"factor",
       slo.bound_ns > 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(slo.factor)}};
  doc["ipcbench"]["configuration"]["load_sweep"] = {{"steps", steps}, {"slo", rule}};
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const Sweep& s : runner_.sweeps()) {
    const std::optional<double> bound_ns = sweep_bound(s, slo);
    nlohmann::ordered_json bound = {
        {"percentile", slo.percentile}, {"ns", or_null(bound_ns)}, {"text", slo.text()}};
    if (!bound_ns) bound["why"] = no_bound_reason(s);
    list.push_back({{"mechanism", s.mechanism},
                    {"message_size", s.size},
                    {"placement", settings.placements[s.placement].name()},
                    {"peak_echo_rate", or_null(s.peak_echo_rate)},
                    {"capacity_rate", or_null(sweep_capacity(s, slo))},
                    {"bound", bound},
                    {"round_trip_ns", or_null(s.round_trip_ns)},
                    {"unloaded_rate", or_null(s.unloaded_rate)},
                    {"unloaded_p99_ns", or_null(s.unloaded_p99_ns)},
                    {"steps_run", s.steps.size()},
                    {"unsaturated_steps", unsaturated(s)},
                    {"stopped", s.stopped.empty() ? nlohmann::ordered_json(nullptr)
                                                  : nlohmann::ordered_json(s.stopped)}});
  }
  doc["ipcbench"]["load_sweeps"] = list;
}

void IpcbenchReporter::Finalize() {
  json_.Finalize();
  progress_.clear();
}

std::vector<std::pair<std::string, std::string>> IpcbenchReporter::flagged() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Case& c : runner_.cases()) {
    if (!c.measurement_error.empty())
      out.emplace_back(c.name + "/manual_time", c.measurement_error);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> IpcbenchReporter::failed() const {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<int> seen;
  for (const Row& r : rows_) {
    if (r.case_index < 0 || !seen.insert(r.case_index).second) continue;
    const Case& c = runner_.cases()[static_cast<std::size_t>(r.case_index)];
    if (c.skip_reason.empty() && !c.error.empty() && !c.not_run) {
      out.emplace_back(c.name + "/manual_time", c.error);
    }
  }
  return out;
}

nlohmann::ordered_json IpcbenchReporter::result(const Settings& settings, const HostInfo& host,
                                                const Clock& clock, bool complete,
                                                const nlohmann::json* remote_welcome) const {
  const bool across_hosts = !settings.remote.empty();
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(json_text_.str());
  nlohmann::ordered_json& benchmarks = doc["benchmarks"];
  for (std::size_t i = 0; i < benchmarks.size() && i < rows_.size(); ++i) {
    nlohmann::ordered_json& b = benchmarks[i];
    const Row& row = rows_[i];
    if (row.case_index < 0) continue;
    const Case& c = runner_.cases()[static_cast<std::size_t>(row.case_index)];
    b["mechanism"] = std::string(c.mechanism->name());
    b["family"] = std::string(c.mechanism->family());
    b["mode"] = name_of(c.mode);
    b["pattern"] = name_of(c.pattern);
    b["message_size"] = c.size;
    b["placement"] = runner_.placement_of(c).name();
    b["cpus"] = c.runner_cpu < 0 || c.peer_cpu < 0
                    ? nlohmann::ordered_json::array()
                    : nlohmann::ordered_json::array({c.runner_cpu, c.peer_cpu});
    if (across_hosts) {
      b["across_hosts"] = true;
      b["remote"] = {{"address", settings.remote}, {"peer_cpu", c.peer_cpu}};
    }
    b["verify"] = settings.verify_full ? "full" : "header";
    b["copies"] = copies_in(c.mechanism->capabilities(), c.mode == Mode::kAsync);
    b["wait"] = wait_of(*c.mechanism, c.mode, settings.spin_budget);
    if (c.engine) b["engine"] = name_of(*c.engine);
    if (c.mechanism->capabilities().spin_budget) b["spin_budget"] = settings.spin_budget;
    if (b.contains("adapter_ratio")) {
      if (const auto family = bare_family_for(c.mechanism->name())) {
        b["bare_family"] = bare_family_name(*family);
      }
    } else if (!c.adapter_note.empty()) {
      b["adapter_note"] = c.adapter_note;
    }
    if (c.sweep >= 0) sweep_fields(b, c);
    if (c.mode == Mode::kAsync) {
      // A sweep's case has its own window (peak, round trip) or rate (the
      // unloaded figure, a step).
      const std::uint64_t rate = c.sweep >= 0 ? c.rate : runner_.settings().rate;
      const std::uint64_t window = c.window > 0 ? c.window : runner_.settings().window;
      const bool open_loop = rate > 0 && c.pattern == Pattern::kLatency;
      const bool closed_loop = rate == 0 && c.pattern == Pattern::kLatency;
      // The window applies to the closed loop only: the open loop has none
      // and throughput has its own flow control (in_flight_limit_*).
      b["window"] = closed_loop ? nlohmann::ordered_json(window) : nlohmann::ordered_json(nullptr);
      b["rate"] = open_loop ? nlohmann::ordered_json(rate) : nlohmann::ordered_json(nullptr);
      if (closed_loop) b["includes_queueing"] = window > 1;
      if (open_loop && b.contains("rate_achieved")) {
        const bool kept_up =
            b["rate_achieved"].get<double>() >= kRateKeptUp * static_cast<double>(rate);
        b["rate_kept_up"] = kept_up;
        // The sender, not the mechanism, fell behind: too slow on average, or
        // more than 1% of its sends later than one period.
        const double period_ns = 1e9 / static_cast<double>(rate);
        b["sender_behind"] = !kept_up || (b.contains("lateness_p99_ns") &&
                                          b["lateness_p99_ns"].get<double>() > period_ns);
      }
      if (c.pattern == Pattern::kLatency) {
        b["oneway_note"] =
            across_hosts
                ? "not reported across hosts: one-way latency needs a clock both hosts "
                  "share; only round trips are reported"
                : "one-way times use CLOCK_MONOTONIC, shared by both processes on this host";
      }
    }
    if (!c.skip_reason.empty()) {
      b.erase("error_occurred");
      b.erase("error_message");
      b["skipped"] = true;
      b["skip_message"] = c.skip_reason;
      continue;
    }
    if (!row.aggregate) {
      for (const std::string& key : kIntegerFields) {
        if (b.contains(key) && b[key].is_number()) {
          b[key] = static_cast<std::uint64_t>(std::llround(b[key].get<double>()));
        }
      }
    }
    if (b.contains("in_flight_limit_receive_buffer")) {
      // Who set the streaming flow limit: the receiver's socket buffer (the
      // mechanism's own limit) or the harness's budget.
      b["in_flight_limit_source"] =
          b["in_flight_limit_receive_buffer"].get<double>() > 0.5 ? "receive_buffer" : "harness";
      b.erase("in_flight_limit_receive_buffer");
    }
    annotate(b, c);
    if (c.pattern != Pattern::kLatency) continue;
    const auto& trials = runner_.trials();
    if (row.trial >= 0) {
      auto t = trials.find(row.trial);
      if (t != trials.end() && t->second.histogram) b["histogram"] = spectrum(*t->second.histogram);
      if (t != trials.end() && t->second.oneway) {
        nlohmann::ordered_json ow = nlohmann::ordered_json::array();
        for (std::size_t k = 0; k < kSpectrumPoints; ++k) {
          ow.push_back({{"percentile", kSpectrumPercentiles[k]},
                        {"value_ns", t->second.oneway->value_ns[k]}});
        }
        b["oneway_histogram"] = ow;
      }
    } else if (row.aggregate && !row.merged.empty()) {
      std::optional<Histogram> merged;
      for (std::int64_t id : row.merged) {
        auto t = trials.find(id);
        if (t == trials.end() || !t->second.histogram) continue;
        if (!merged) {
          merged = *t->second.histogram;
        } else {
          merged->merge(*t->second.histogram);
        }
      }
      if (merged) {
        // The spectrum of all repetitions' samples together: percentiles of
        // the merged histogram, not an average of per-repetition percentiles.
        b["histogram"] = spectrum(*merged);
        b["histogram_samples"] = merged->count();
      }
    }
  }

  // The steps a sweep did not run (it stopped past saturation) are left out.
  nlohmann::ordered_json kept = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < benchmarks.size(); ++i) {
    const bool not_run = i < rows_.size() && rows_[i].case_index >= 0 &&
                         runner_.cases()[static_cast<std::size_t>(rows_[i].case_index)].not_run;
    if (!not_run) kept.push_back(std::move(benchmarks[i]));
  }
  benchmarks = std::move(kept);

  nlohmann::ordered_json failed_list = nlohmann::ordered_json::array();
  for (const auto& [name, error] : failed())
    failed_list.push_back({{"name", name}, {"error", error}});
  nlohmann::ordered_json flagged_list = nlohmann::ordered_json::array();
  for (const auto& [name, why] : flagged())
    flagged_list.push_back({{"name", name}, {"reason", why}});
  nlohmann::ordered_json placements = nlohmann::ordered_json::array();
  for (const Placement& p : settings.placements) placements.push_back(p.name());
  const Placement& first = settings.placements.front();
  doc["ipcbench"] = {
      {"schema_version", kSchemaVersion},
      {"suite_version", kSuiteVersion},
      {"git_revision", kGitRevision},
      {"complete", complete},
      {"host", control::host_json(host)},
      {"clock",
       {{"source", clock.source()},
        {"ticks_per_ns", clock.ticks_per_ns()},
        {"calibration_spans_ticks_per_ns", clock.span_ticks_per_ns()},
        {"calibration_spread", clock.span_spread()},
        {"note", clock.note().empty() ? nlohmann::ordered_json(nullptr)
                                      : nlohmann::ordered_json(clock.note())}}},
      {"configuration",
       {{"mechanisms", settings.mechanisms},
        {"modes", names(settings.modes)},
        {"patterns", names(settings.patterns)},
        {"sizes", settings.sizes},
        {"min_time_s", settings.min_time},
        {"repetitions", settings.repetitions},
        {"placements", placements},
        {"cpus", first.runner_cpu >= 0
                     ? nlohmann::ordered_json::array({first.runner_cpu, first.peer_cpu})
                     : nlohmann::ordered_json::array()},
        {"calibration", settings.calibration},
        {"timeout_s", static_cast<double>(settings.timeout.count()) / 1000.0},
        {"verify", settings.verify_full ? "full" : "header"},
        {"window", settings.window},
        {"engines", names(settings.engines)},
        {"spin_budget", settings.spin_budget},
        {"in_flight_limit_bytes", settings.in_flight_bytes},
        {"rate", settings.rate > 0 ? nlohmann::ordered_json(settings.rate)
                                   : nlohmann::ordered_json(nullptr)},
        {"benchmark_args", settings.benchmark_args},
        {"command_line", settings.command_line}}},
      {"failed", failed_list},
      {"flagged", flagged_list},
      {"syscalls",
       {{"counted", SyscallCounter::unavailable_reason().empty()},
        {"tracepoint", "raw_syscalls:sys_enter"},
        {"note", SyscallCounter::unavailable_reason().empty()
                     ? nlohmann::ordered_json(nullptr)
                     : nlohmann::ordered_json("system calls not counted: " +
                                              SyscallCounter::unavailable_reason())}}},
  };
  if (across_hosts) {
    nlohmann::ordered_json remote = {{"address", settings.remote},
                                     {"protocol_version", nullptr},
                                     {"host", nullptr},
                                     {"cpus", nlohmann::ordered_json::array()}};
    if (remote_welcome != nullptr && remote_welcome->is_object()) {
      remote["protocol_version"] = remote_welcome->value("version", 0);
      if (remote_welcome->contains("host")) remote["host"] = (*remote_welcome)["host"];
      if (remote_welcome->contains("cpus")) remote["cpus"] = (*remote_welcome)["cpus"];
    }
    doc["ipcbench"]["remote"] = remote;
  }
  if (settings.load_sweep) add_load_sweeps(doc, settings);
  // Figures made with another peer program than this binary's are not the
  // suite's: the file says which.
  if (!settings.peer_executable.empty()) {
    doc["ipcbench"]["configuration"]["substitute_peer"] = settings.peer_executable;
  }
  if (runner_.calibration() != nullptr) {
    doc["ipcbench"]["calibration"] = calibration_json(*runner_.calibration());
  } else {
    doc["ipcbench"]["calibration"] = nullptr;
    doc["ipcbench"]["calibration_note"] = settings.calibration
                                              ? "calibration did not run (the run was interrupted)"
                                              : "skipped: --no-calibration";
  }
  return doc;
}

}  // namespace ipcbench
