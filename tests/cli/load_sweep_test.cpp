// run --load-sweep on real processes: a short sweep over shm-spin and pipe
// writes valid JSON with its round trip and the unloaded open loop at the
// rate it sets, whose steps ascend, whose achieved rate tracks the
// offered one below saturation, with the sender's lateness recorded and a
// summary per sweep; a sweep stops past saturation and leaves the steps it
// did not run out; bad sweep arguments are one line and exit 2.
#include "../support/load_sweep.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../support/files.hpp"
#include "../support/ipcbench.hpp"
#include "../support/run.hpp"
#include "../support/text.hpp"

namespace {

using nlohmann::json;
using namespace testproc;

json rows_of(const json& doc, const std::string& mechanism) {
  json out = json::array();
  for (const json& b : doc["benchmarks"]) {
    if (b.value("mechanism", "") == mechanism) out.push_back(b);
  }
  return out;
}

void expect_valid(const std::string& path) {
  const RunResult valid =
      run_command({"/usr/bin/python3", IPCBENCH_SOURCE_DIR "/tests/tools/validate_result.py",
                   IPCBENCH_SOURCE_DIR "/docs/result.schema.json", path});
  EXPECT_EQ(valid.status, 0) << "validate_result.py " << path << "\n" << valid;
}

// `ipcbench run ARGS`, short and uncalibrated, into DIR/load.json: the run,
// and its result (checked against the schema when the run succeeded).
std::pair<RunResult, std::optional<json>> run_sweep(const TempDir& dir, Args args) {
  const std::string out = dir.file("load.json");
  args.insert(args.begin(), "run");
  args.insert(args.end(), {"--min-time", "0.05", "--no-calibration", "--out", out});
  RunResult r = run_ipcbench(args);
  if (r.status == 0) expect_valid(out);
  return {r, read_json(out)};
}

TEST(LoadSweep, ShortSweepOverShmSpinAndPipe) {
  TempDir dir;
  const auto [r, doc] = run_sweep(
      dir, {"--mechanisms", "shm-spin,pipe", "--sizes", "64", "--load-sweep=10%,30%,50%,70%"});
  ASSERT_EQ(r.status, 0) << r;
  ASSERT_TRUE(doc);
  const json& sweeps = (*doc)["ipcbench"]["load_sweeps"];
  ASSERT_EQ(sweeps.size(), 2u) << sweeps.dump(1);
  for (const char* mech : {"shm-spin", "pipe"}) {
    SCOPED_TRACE(mech);
    const json rows = rows_of(*doc, mech);
    std::map<std::string, json> by_role;
    std::vector<json> steps;
    for (const json& b : rows) {
      EXPECT_EQ(b["pattern"], "load");
      // A percentile is reported only when 100 samples lie beyond it.
      const json& listed = b["backed_percentiles"];
      const auto n = b["samples"].get<double>();
      for (const auto& [p, field] : {std::pair<double, const char*>{50, "p50_ns"},
                                     {99, "p99_ns"},
                                     {99.9, "p999_ns"},
                                     {99.99, "p9999_ns"}}) {
        const bool backed = n >= 100 * 100 / (100 - p) - 1e-6;
        EXPECT_EQ(b.contains(field), backed) << field << " " << b.dump();
        EXPECT_EQ(std::find(listed.begin(), listed.end(), p) != listed.end(), backed) << field;
      }
      EXPECT_EQ(b["mode"], "async");
      if (b["load_role"] == "step") {
        steps.push_back(b);
      } else {
        by_role[b["load_role"].get<std::string>()] = b;
      }
    }
    ASSERT_EQ(by_role.count("peak"), 1u);
    ASSERT_EQ(by_role.count("round-trip"), 1u);
    ASSERT_EQ(by_role.count("unloaded"), 1u);
    EXPECT_EQ(by_role["peak"]["window"], 64);
    EXPECT_EQ(by_role["round-trip"]["window"], 1);
    EXPECT_TRUE(by_role["round-trip"]["rate"].is_null());
    // The unloaded figure is the open loop (like the steps) at one message
    // per 4 round trips of the closed loop at window 1.
    const json& unloaded = by_role["unloaded"];
    EXPECT_TRUE(unloaded["window"].is_null()) << unloaded.dump();
    const double round_trip_ns = 1e9 / by_role["round-trip"]["achieved_rate"].get<double>();
    EXPECT_NEAR(unloaded["rate"].get<double>(), 1e9 / (4 * round_trip_ns), 1.0) << unloaded.dump();
    EXPECT_EQ(unloaded["offered_rate"].get<double>(), unloaded["rate"].get<double>());
    EXPECT_EQ(unloaded["saturated"].get<bool>(),
              unloaded["achieved_rate"].get<double>() < 0.99 * unloaded["rate"].get<double>());
    EXPECT_TRUE(unloaded.contains("lateness_p99_ns")) << unloaded.dump();
    const double peak = by_role["peak"]["achieved_rate"].get<double>();
    EXPECT_GT(peak, 0);
    const std::vector<std::string> labels = {"10%", "30%", "50%", "70%"};
    ASSERT_GE(steps.size(), 2u) << "a sweep stops only after two saturated steps";
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const json& s = steps[i];
      EXPECT_EQ(s["name"], std::string(mech) + "/async/load/64/" + labels[i] + "/manual_time");
      const double offered = s["offered_rate"].get<double>();
      // Each step is its share of the peak this sweep measured.
      EXPECT_NEAR(offered, s["load_fraction"].get<double>() * peak, 1.0) << s.dump();
      EXPECT_EQ(s["rate"].get<double>(), offered);
      if (i > 0) {
        EXPECT_GT(offered, steps[i - 1]["offered_rate"].get<double>());
      }
      // The sender's lateness is recorded on every step.
      EXPECT_TRUE(s.contains("lateness_p50_ns") && s.contains("lateness_p99_ns")) << s.dump();
      // Below saturation the achieved rate tracks the offered one (the
      // rule below checks saturated, and that nothing echoes more).
      if (!s["saturated"].get<bool>()) {
        EXPECT_NEAR(s["achieved_rate"].get<double>(), offered, 0.02 * offered) << s.dump();
      }
      EXPECT_GT(s["samples"].get<double>(), 0);
    }
    const json* summary = nullptr;
    for (const json& e : sweeps) {
      if (e["mechanism"] == mech) summary = &e;
    }
    ASSERT_NE(summary, nullptr);
    EXPECT_EQ((*summary)["message_size"], 64);
    EXPECT_DOUBLE_EQ((*summary)["peak_echo_rate"].get<double>(), peak);
    EXPECT_NEAR((*summary)["round_trip_ns"].get<double>(), round_trip_ns, 1e-6 * round_trip_ns);
    EXPECT_EQ((*summary)["unloaded_rate"], unloaded["rate"]);
    // The base is the unloaded p99 when its samples back it and the open
    // loop kept its rate; the default bound is twice it.
    const json& bound_ns = (*summary)["bound"]["ns"];
    if (unloaded.contains("p99_ns") && !unloaded["saturated"].get<bool>()) {
      EXPECT_EQ((*summary)["unloaded_p99_ns"], unloaded["p99_ns"]);
      EXPECT_EQ(bound_ns.get<double>(), 2 * unloaded["p99_ns"].get<double>());
    } else {
      EXPECT_TRUE(bound_ns.is_null()) << summary->dump();
      EXPECT_TRUE((*summary)["capacity_rate"].is_null()) << summary->dump();
      EXPECT_TRUE((*summary)["bound"]["why"].is_string()) << summary->dump();
    }
    if (!bound_ns.is_null()) {
      EXPECT_FALSE((*summary)["bound"].contains("why"));
    }
    expect_sweep_follows_its_rule(steps, labels, *summary);
    // The capacity is one of the offered rates, or none.
    const json& cap = (*summary)["capacity_rate"];
    if (!cap.is_null()) {
      EXPECT_TRUE(std::any_of(steps.begin(), steps.end(), [&](const json& s) {
        return s["offered_rate"].get<double>() == cap.get<double>();
      })) << summary->dump();
    }
  }
  EXPECT_NE(r.out.find("load sweep pipe 64 B: peak echo rate"), std::string::npos) << r;
}

TEST(LoadSweep, StopsPastSaturationAndLeavesTheRestOut) {
  TempDir dir;
  const auto [r, doc] =
      run_sweep(dir, {"--mechanisms", "pipe", "--sizes", "64", "--load-sweep=20%,500%,800%,1000%"});
  ASSERT_EQ(r.status, 0) << "a step not run is no failure\n" << r;
  ASSERT_TRUE(doc);
  std::vector<json> steps;
  for (const json& b : (*doc)["benchmarks"]) {
    if (b.value("load_role", "") == "step") steps.push_back(b);
  }
  const json& sweep = (*doc)["ipcbench"]["load_sweeps"][0];
  expect_sweep_follows_its_rule(steps, {"20%", "500%", "800%", "1000%"}, sweep);
  // Five and eight times the peak echo rate saturate: the sweep stops, and
  // 1000% is never run (nor reported, nor failed).
  EXPECT_TRUE(sweep["stopped"].is_string()) << sweep.dump();
  EXPECT_LT(steps.size(), 4u);
  EXPECT_TRUE((*doc)["ipcbench"]["failed"].empty());
}

TEST(LoadSweep, BadArgumentsAreOneLineAndExitTwo) {
  const std::vector<std::vector<std::string>> bad = {
      {"--load-sweep", "--modes", "sync"},
      {"--load-sweep", "--patterns", "throughput"},
      {"--load-sweep", "--rate", "1000"},
      {"--load-sweep=50%,40%"},
      {"--load-sweep=fast"},
      {"--load-sweep", "--slo", "p98=1us"},
      {"--load-sweep", "--slo", "p99=20us", "--slo-factor", "3"},
      {"--load-sweep", "--slo-factor", "1"},
      {"--slo", "p99=20us"},
  };
  for (const auto& extra : bad) {
    std::vector<std::string> args = {"run", "--mechanisms", "pipe", "--sizes", "64"};
    args.insert(args.end(), extra.begin(), extra.end());
    const RunResult r = run_ipcbench(args);
    EXPECT_EQ(r.status, 2) << r;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
    EXPECT_EQ(r.err.find("Running"), std::string::npos) << "nothing ran\n" << r;
  }
}

}  // namespace
