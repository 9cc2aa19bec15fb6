// Where the two sides of a case run and what the run measures around the cases: placements
// (cross-cpu, same-cpu, unpinned, --cpus), the calibration with each case's floor, and the
// stability figure (cv) of repetitions, as the result file records them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "../support/files.hpp"
#include "../support/ipcbench.hpp"
#include "../support/results.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace testproc;

// ---------------------------------------------------------------------------------------------
// Placement, calibration, floors and stability

// Runs a small suite and returns its result document (the run must exit 0).
json run_small(TempDir& dir, const std::string& name, const Args& extra, RunResult* out = nullptr) {
  const std::string file = dir.file(name + ".json");
  Args args = {"run", "--modes",    "sync", "--patterns", "latency", "--sizes",
               "64",  "--min-time", "0.02", "--out",      file};
  args.insert(args.end(), extra.begin(), extra.end());
  const RunResult r = run_ipcbench(args);
  if (out != nullptr) *out = r;
  EXPECT_EQ(r.status, 0) << r;
  const auto doc = read_json(file);
  EXPECT_TRUE(doc) << "no result file\n" << r;
  const RunResult v = validate(file);
  EXPECT_EQ(v.status, 0) << v;
  return doc ? *doc : json::object();
}

TEST(Placement, CrossAndSameCpuRunEveryCaseUnderEachOnTheCpusAskedFor) {
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) GTEST_SKIP() << "one CPU available: cross-cpu placement needs two";
  TempDir dir;
  const json doc = run_small(
      dir, "both", {"--mechanisms", "pipe,shm-spin", "--placement", "cross-cpu,same-cpu"});
  ASSERT_TRUE(doc.contains("benchmarks"));
  std::map<std::string, json> by_name;
  for (const json& b : doc["benchmarks"]) by_name[b["name"]] = b;
  ASSERT_EQ(by_name.size(), 4u) << "2 mechanisms x 2 placements";
  for (const char* mech : {"pipe", "shm-spin"}) {
    const json& cross = by_name[std::string(mech) + "/sync/latency/64/cross-cpu/manual_time"];
    const json& same = by_name[std::string(mech) + "/sync/latency/64/same-cpu/manual_time"];
    ASSERT_TRUE(cross.is_object() && same.is_object()) << mech;
    EXPECT_EQ(cross["placement"], "cross-cpu");
    EXPECT_EQ(cross["cpus"], json({cpus[0], cpus[1]})) << "read back after pinning";
    EXPECT_EQ(same["placement"], "same-cpu");
    EXPECT_EQ(same["cpus"], json({cpus[0], cpus[0]}));
  }
  const json& cal = doc["ipcbench"]["calibration"];
  ASSERT_TRUE(cal.is_object());
  EXPECT_EQ(cal["placements"]["cross-cpu"]["cpus"], json({cpus[0], cpus[1]}));
  EXPECT_EQ(cal["placements"]["same-cpu"]["cpus"], json({cpus[0], cpus[0]}));
  EXPECT_TRUE(cal["placements"]["same-cpu"]["cache_line_rtt_ns"].is_null())
      << "two spinners on one CPU measure the scheduler";
  EXPECT_GT(cal["placements"]["cross-cpu"]["cache_line_rtt_ns"].get<double>(), 0);
  EXPECT_EQ(doc["ipcbench"]["configuration"]["placements"], json({"cross-cpu", "same-cpu"}));
  // A spinner on one CPU has no floor, and says why; on two it has one.
  const json& spin_same = by_name["shm-spin/sync/latency/64/same-cpu/manual_time"];
  EXPECT_TRUE(spin_same["floor"].is_null());
  EXPECT_NE(spin_same.value("floor_note", "").find("cross-cpu"), std::string::npos);
  const json& spin_cross = by_name["shm-spin/sync/latency/64/cross-cpu/manual_time"];
  EXPECT_EQ(spin_cross["floor"], "payload_rtt");
  EXPECT_EQ(spin_cross["floor_source"], "adjacent");
  EXPECT_GT(spin_cross["floor_ratio"].get<double>(), 0);
  EXPECT_EQ(by_name["pipe/sync/latency/64/cross-cpu/manual_time"]["floor"], "futex_rtt")
      << "a pipe's reader sleeps in the kernel";
}

TEST(Placement, EqualCpusAreTheSameCpuAndOneCpuNeedsNoSuffix) {
  const std::vector<int> cpus = allowed_cpus();
  const int c = cpus.back();
  TempDir dir;
  const json doc = run_small(
      dir, "one", {"--mechanisms", "pipe", "--cpus", std::to_string(c) + "," + std::to_string(c)});
  ASSERT_EQ(doc["benchmarks"].size(), 1u);
  const json& b = doc["benchmarks"][0];
  EXPECT_EQ(b["name"], "pipe/sync/latency/64/manual_time") << "one placement: no suffix";
  EXPECT_EQ(b["placement"], "same-cpu");
  EXPECT_EQ(b["cpus"], json({c, c}));
}

TEST(Placement, UnpinnedRecordsTheCpusBothSidesRanOn) {
  TempDir dir;
  const json doc = run_small(dir, "free", {"--mechanisms", "pipe", "--placement", "unpinned"});
  ASSERT_EQ(doc["benchmarks"].size(), 1u);
  const json& b = doc["benchmarks"][0];
  EXPECT_EQ(b["placement"], "unpinned");
  ASSERT_EQ(b["cpus"].size(), 2u);
  const std::vector<int> cpus = allowed_cpus();
  for (const json& cpu : b["cpus"]) {
    EXPECT_NE(std::find(cpus.begin(), cpus.end(), cpu.get<int>()), cpus.end()) << cpu;
  }
  // The scheduler may put both sides on one CPU, where a spinner waits out
  // the other's time slice: no spinning floor, so no false sanity flag.
  const json& cal = doc["ipcbench"]["calibration"]["placements"]["unpinned"];
  EXPECT_TRUE(cal["cache_line_rtt_ns"].is_null());
  EXPECT_TRUE(cal["payload_rtt_ns"].is_null());
  EXPECT_FALSE(b.contains("measurement_error"));
}

TEST(Calibration, IsPrintedFirstAndRecordedWithTheHarnessCostAndEachCasesFloor) {
  TempDir dir;
  RunResult r;
  const json doc = run_small(dir, "cal", {"--mechanisms", "pipe,shm-spin"}, &r);
  const std::size_t printed = r.out.find("calibration (");
  ASSERT_NE(printed, std::string::npos) << r;
  EXPECT_NE(r.out.find("harness"), std::string::npos) << r;
  EXPECT_LT(printed, r.out.find("pipe/sync")) << "calibration comes before the cases";
  const json& cal = doc["ipcbench"]["calibration"];
  ASSERT_TRUE(cal.is_object());
  EXPECT_GT(cal["harness_ns"].get<double>(), 0);
  EXPECT_GT(cal["clock_read_ns"].get<double>(), 0);
  for (const json& b : doc["benchmarks"]) {
    SCOPED_TRACE(entry_label(b));
    ASSERT_TRUE(b.contains("floor"));
    if (b["floor"].is_null()) {
      EXPECT_TRUE(b["floor_note"].is_string());
    } else {
      EXPECT_GT(b["floor_value"].get<double>(), 0);
      EXPECT_NEAR(b["floor_ratio"].get<double>(),
                  b["p50_ns"].get<double>() / b["floor_value"].get<double>(), 1e-6);
    }
    EXPECT_FALSE(b.contains("measurement_error")) << "a plain pipe or ring is no error";
  }
  EXPECT_TRUE(doc["ipcbench"]["flagged"].empty());
}

TEST(Calibration, NoCalibrationSkipsItAndEveryCaseSaysWhyItHasNoFloor) {
  TempDir dir;
  RunResult r;
  const json doc = run_small(dir, "nocal", {"--mechanisms", "pipe", "--no-calibration"}, &r);
  EXPECT_EQ(r.out.find("calibration ("), std::string::npos) << r;
  EXPECT_TRUE(doc["ipcbench"]["calibration"].is_null());
  EXPECT_NE(doc["ipcbench"].value("calibration_note", "").find("--no-calibration"),
            std::string::npos);
  for (const json& b : doc["benchmarks"]) {
    EXPECT_TRUE(b["floor_ratio"].is_null());
    EXPECT_NE(b.value("floor_note", "").find("--no-calibration"), std::string::npos);
  }
}

TEST(Stability, RepetitionsGiveEveryRowOfACaseItsCvAndTheUnstableFlagFollowsIt) {
  TempDir dir;
  const json doc =
      run_small(dir, "reps", {"--mechanisms", "pipe", "--no-calibration", "--repetitions", "3"});
  ASSERT_GE(doc["benchmarks"].size(), 3u);
  std::set<double> cvs;
  for (const json& b : doc["benchmarks"]) {
    SCOPED_TRACE(entry_label(b));
    ASSERT_TRUE(b.contains("cv") && b["cv"].is_number());
    EXPECT_EQ(b["cv_metric"], "p50_ns");
    EXPECT_GE(b["cv"].get<double>(), 0);
    EXPECT_EQ(b["unstable"].get<bool>(), b["cv"].get<double>() > 0.05);
    cvs.insert(b["cv"].get<double>());
  }
  EXPECT_EQ(cvs.size(), 1u) << "one figure per case, on every row";
  // The cv is that of the repetitions' p50s.
  std::vector<double> p50s;
  for (const json& b : doc["benchmarks"]) {
    if (b["run_type"] == "iteration") p50s.push_back(b["p50_ns"].get<double>());
  }
  ASSERT_EQ(p50s.size(), 3u);
  double mean = 0;
  for (double v : p50s) mean += v / 3;
  double ss = 0;
  for (double v : p50s) ss += (v - mean) * (v - mean);
  EXPECT_NEAR(*cvs.begin(), std::sqrt(ss / 2) / mean, 1e-9);
}

}  // namespace
