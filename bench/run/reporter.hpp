// The suite's reporter: Google Benchmark's console table and JSON, plus what
// the suite adds (case metadata, percentile spectra, skipped cases, the
// top-level "ipcbench" object), written atomically.
#pragma once

#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bench/core/clock.hpp"
#include "bench/core/settings.hpp"
#include "bench/core/sysinfo.hpp"
#include "bench/run/progress.hpp"
#include "bench/run/runner.hpp"

namespace ipcbench {

// 2: real_time is the mean round trip on every latency row (sync, async,
// open loop) and ns per delivered message on every throughput row; async
// throughput has its own flow control; --window is closed-loop latency only.
inline constexpr int kSchemaVersion = 2;

class IpcbenchReporter : public benchmark::BenchmarkReporter {
 public:
  IpcbenchReporter(Runner& runner, Progress& progress);

  bool ReportContext(const Context& context) override;
  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override;

  // The complete result document. `complete`: every case ran (measured,
  // skipped or failed) and the run was not interrupted.
  // `remote_welcome`: the server's welcome in a run across hosts, or null.
  nlohmann::ordered_json result(const Settings& settings, const HostInfo& host, const Clock& clock,
                                bool complete,
                                const nlohmann::json* remote_welcome = nullptr) const;

  // Names and errors of failed cases.
  std::vector<std::pair<std::string, std::string>> failed() const;
  // Names and reasons of cases the sanity gate flagged as measurement errors.
  std::vector<std::pair<std::string, std::string>> flagged() const;
  // --load-sweep: the run's sweeps (ipcbench.load_sweeps) and their settings.
  void add_load_sweeps(nlohmann::ordered_json& doc, const Settings& settings) const;

 private:
  // Where each JSON row came from, in the order JSONReporter wrote them.
  struct Row {
    int case_index = -1;
    std::int64_t trial = -1;           // iteration rows
    std::vector<std::int64_t> merged;  // aggregate rows: the trials of the case
    bool aggregate = false;
  };

  void print_console(const std::vector<Run>& runs, int case_index);
  // The case's floor, sanity-gate verdict and stability across repetitions.
  void assess(Case& c, const std::vector<Run>& runs, const std::vector<std::int64_t>& trials);

  Runner& runner_;
  Progress& progress_;
  benchmark::ConsoleReporter console_;
  benchmark::JSONReporter json_;
  std::ostringstream json_text_;
  std::vector<Row> rows_;
  std::set<int> finished_;  // cases whose progress line was printed
};

// Adds the case's floor, floor_ratio, measurement_error and cv fields to
// one of its JSON rows (nothing for skipped or failed cases).
void annotate(nlohmann::ordered_json& row, const Case& c);

// stddev / mean (sample standard deviation); nullopt for fewer than two
// values or a mean of zero.
std::optional<double> coefficient_of_variation(const std::vector<double>& values);

}  // namespace ipcbench
