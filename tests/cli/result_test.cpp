// The result file's contract, read from the files ipcbench writes: a short run's entries (in
// C++ with tests/support/results.hpp, and against docs/result.schema.json with
// tests/tools/validate_result.py, which must also reject files that break a rule), repetitions
// and their aggregates, and that Google Benchmark's compare.py reads the files.
//
// ShortRun's tests share one run of ipcbench (SetUpTestSuite); ctest runs them in one process
// (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "../support/files.hpp"
#include "../support/ipcbench.hpp"
#include "../support/leftovers.hpp"
#include "../support/results.hpp"
#include "../support/text.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace testproc;

constexpr const char* kCompareScript = "/usr/share/benchmark/compare.py";

// ---------------------------------------------------------------------------------------------
// The short run shared by several tests: 3 mechanisms x 2 patterns x 2 sizes, run once per
// test process.

class ShortRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    out_ = dir_->file("result.json");
    before_ = new std::set<std::string>(run_directories());
    args_ = {"run",
             "--mechanisms",
             "pipe,uds-stream,tcp",
             "--modes",
             "sync",
             "--patterns",
             "latency,throughput",
             "--sizes",
             "64,4096",
             "--min-time",
             "0.05",
             "--out",
             out_};
    const auto t0 = std::chrono::steady_clock::now();
    result_ = new RunResult(run_ipcbench(args_));
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (fs::exists(out_)) {
      try {
        doc_ = new json(json::parse(read_file(out_)));
      } catch (const std::exception&) {
        doc_ = nullptr;
      }
    }
  }
  static void TearDownTestSuite() {
    delete doc_;
    delete result_;
    delete before_;
    delete dir_;
    doc_ = nullptr;
    result_ = nullptr;
    before_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(result_->status, 0) << *result_;
    ASSERT_NE(doc_, nullptr) << "no parseable result file " << out_ << "\n" << *result_;
    ASSERT_TRUE(doc_->contains("benchmarks") && (*doc_)["benchmarks"].is_array());
  }

  static const json& doc() { return *doc_; }
  static const json& benchmarks() { return (*doc_)["benchmarks"]; }

  static TempDir* dir_;
  static std::string out_;
  static Args args_;
  static std::set<std::string>* before_;
  static RunResult* result_;
  static json* doc_;
  static double seconds_;
};

TempDir* ShortRun::dir_ = nullptr;
std::string ShortRun::out_;
Args ShortRun::args_;
std::set<std::string>* ShortRun::before_ = nullptr;
RunResult* ShortRun::result_ = nullptr;
json* ShortRun::doc_ = nullptr;
double ShortRun::seconds_ = 0;

// ---------------------------------------------------------------------------------------------
// The short run and the result file

TEST_F(ShortRun, ExitsZeroAndWritesTwelveEntriesOfACompleteRun) {
  EXPECT_TRUE(mentions(result_->err, out_)) << "stderr says where the result went\n" << *result_;
  EXPECT_EQ(result_->err.find("failed"), std::string::npos) << *result_;
  ASSERT_EQ(benchmarks().size(), 12u) << "3 mechanisms x 2 patterns x 2 sizes";
  std::set<std::string> names;
  for (const json& b : benchmarks()) names.insert(b.value("name", ""));
  std::set<std::string> expected;
  for (const std::string& m : kShortRunMechanisms) {
    for (const char* p : {"latency", "throughput"}) {
      for (const char* s : {"64", "4096"}) {
        expected.insert(m + "/sync/" + p + "/" + s + "/manual_time");
      }
    }
  }
  EXPECT_EQ(names, expected);

  ASSERT_TRUE(doc().contains("context") && doc()["context"].is_object());
  ASSERT_TRUE(doc().contains("ipcbench") && doc()["ipcbench"].is_object());
  const json& ib = doc()["ipcbench"];
  EXPECT_EQ(ib.value("schema_version", 0), 2);
  EXPECT_EQ(ib.value("complete", false), true);
  ASSERT_TRUE(ib.contains("failed") && ib["failed"].is_array());
  EXPECT_TRUE(ib["failed"].empty()) << ib["failed"].dump(2);
  std::cout << "[          ] the short run took " << seconds_ << " s\n";
}

TEST_F(ShortRun, RecordsTheConfigurationItRanWith) {
  const json& c = doc()["ipcbench"]["configuration"];
  EXPECT_EQ(c["mechanisms"], json(kShortRunMechanisms));
  EXPECT_EQ(c["modes"], json({"sync"}));
  EXPECT_EQ(c["patterns"], json({"latency", "throughput"}));
  EXPECT_EQ(c["sizes"], json({64, 4096}));
  EXPECT_DOUBLE_EQ(c.value("min_time_s", 0.0), 0.05);
  EXPECT_EQ(c.value("repetitions", 0), 1);
  ASSERT_TRUE(c["cpus"].is_array());
  EXPECT_EQ(c["cpus"].size(), 2u);
  EXPECT_EQ(c["benchmark_args"], json::array());
  Args expected_command_line = {kBinary};
  expected_command_line.insert(expected_command_line.end(), args_.begin(), args_.end());
  EXPECT_EQ(c["command_line"], json(expected_command_line));
  const json& host = doc()["ipcbench"]["host"];
  EXPECT_TRUE(host["cpus_allowed"].is_array());
  for (const json& cpu : c["cpus"]) {
    EXPECT_NE(std::find(host["cpus_allowed"].begin(), host["cpus_allowed"].end(), cpu),
              host["cpus_allowed"].end())
        << "CPU " << cpu << " is one the run may use";
  }
}

TEST_F(ShortRun, EveryEntryHasEveryRequiredFieldWithTheRightType) {
  for (const json& b : benchmarks()) {
    expect_required_fields(b);
    EXPECT_EQ(b.value("run_type", ""), "iteration") << entry_label(b);
    EXPECT_TRUE(is_measured_iteration(b)) << b.dump(2);
  }
}

TEST_F(ShortRun, EntryFieldsAgreeWithTheBenchmarkName) {
  const json& requested_cpus = doc()["ipcbench"]["configuration"]["cpus"];
  for (const json& b : benchmarks()) {
    expect_fields_match_name(b);
    expect_placement(b, requested_cpus);
  }
}

TEST_F(ShortRun, MeasurementsAreConsistent) {
  std::map<std::string, bool> lossy;
  for (const MechanismInfo& m : listed_mechanisms()) lossy[m.name] = m.lossy;
  for (const json& b : benchmarks()) {
    if (!is_measured_iteration(b)) continue;
    expect_consistent_counters(b, lossy[b.value("mechanism", "")]);
    if (b["pattern"] == "latency") expect_consistent_latency(b);
  }
}

TEST_F(ShortRun, SchemaValidatorAcceptsTheResult) {
  const RunResult v = validate(out_);
  EXPECT_EQ(v.status, 0) << v;
}

TEST_F(ShortRun, SchemaValidatorRejectsALatencyEntryWithoutP50) {
  json copy = doc();
  bool dropped = false;
  for (json& b : copy["benchmarks"]) {
    if (b["pattern"] == "latency" && b.contains("p50_ns")) {
      b.erase("p50_ns");
      dropped = true;
      break;
    }
  }
  ASSERT_TRUE(dropped);
  const std::string path = dir_->file("no-p50.json");
  write_json(path, copy);
  const RunResult v = validate(path);
  EXPECT_EQ(v.status, 1) << v;
  EXPECT_NE(v.err.find("p50_ns"), std::string::npos) << "the error names the field\n" << v;
}

// Each change below breaks one rule of the contract, so the validator must reject it; the
// last ones keep to it, so it must accept them (the rules are conditional, not blanket).
TEST_F(ShortRun, SchemaValidatorEnforcesTheConditionalRules) {
  const json& original = doc();
  auto first = [](json& d, const char* pattern) -> json& {
    for (json& b : d["benchmarks"]) {
      if (b["pattern"] == pattern) return b;
    }
    throw std::runtime_error(std::string("no ") + pattern + " entry");
  };
  auto strip_measurements = [](json& b) {
    for (const char* key : kCounterFields) b.erase(key);
    for (const char* key : kLatencyFields) b.erase(key);
    b.erase("histogram");
  };
  struct Mutation {
    const char* what;
    bool valid;
    std::function<void(json&)> apply;
  };
  const std::vector<Mutation> mutations = {
      {"latency entry without histogram", false,
       [&](json& d) { first(d, "latency").erase("histogram"); }},
      {"histogram with one point", false,
       [&](json& d) {
         json& h = first(d, "latency")["histogram"];
         h.erase(h.begin() + 1, h.end());
       }},
      {"throughput entry without messages", false,
       [&](json& d) { first(d, "throughput").erase("messages"); }},
      {"time unit us", false, [&](json& d) { first(d, "throughput")["time_unit"] = "us"; }},
      {"message size 8", false, [&](json& d) { first(d, "throughput")["message_size"] = 8; }},
      {"skipped without skip_message", false,
       [&](json& d) { first(d, "throughput")["skipped"] = true; }},
      {"skipped and error_occurred", false,
       [&](json& d) {
         json& b = first(d, "throughput");
         b["skipped"] = true;
         b["skip_message"] = "too large";
         b["error_occurred"] = true;
         b["error_message"] = "boom";
       }},
      {"error_occurred without error_message", false,
       [&](json& d) { first(d, "latency")["error_occurred"] = true; }},
      {"schema_version 3", false, [](json& d) { d["ipcbench"]["schema_version"] = 3; }},
      {"failed entry without error", false,
       [](json& d) {
         d["ipcbench"]["failed"].push_back({{"name", "x"}});
       }},
      {"skipped entry without measurements", true,
       [&](json& d) {
         json& b = first(d, "latency");
         strip_measurements(b);
         b["skipped"] = true;
         b["skip_message"] = "message size exceeds the mechanism's limit";
       }},
      {"failed entry without measurements", true,
       [&](json& d) {
         json& b = first(d, "latency");
         strip_measurements(b);
         b["error_occurred"] = true;
         b["error_message"] = "peer died";
         b["iterations"] = 0;
       }},
      {"throughput entry without latency fields, plus an unknown key", true,
       [&](json& d) { first(d, "throughput")["some_future_key"] = 1; }},
  };
  for (std::size_t i = 0; i < mutations.size(); ++i) {
    const Mutation& m = mutations[i];
    SCOPED_TRACE(m.what);
    json copy = original;
    ASSERT_NO_THROW(m.apply(copy));
    const std::string path = dir_->file("mutation-" + std::to_string(i) + ".json");
    write_json(path, copy);
    const RunResult v = validate(path);
    EXPECT_EQ(v.status, m.valid ? 0 : 1) << v;
  }
}

TEST_F(ShortRun, LeavesNoRunDirectoryTemporaryFileOrPeerBehind) {
  expect_no_leftovers(*result_, *before_, dir_->path());
  // Only the result file is in the output directory (the other tests add their own files).
  EXPECT_TRUE(fs::is_regular_file(out_));
}

// ---------------------------------------------------------------------------------------------
// Repetitions and their aggregates

TEST(Cli, RepetitionsGiveIterationRowsThenAggregatesWithAMergedHistogram) {
  TempDir dir;
  const std::string out = dir.file("reps.json");
  const auto before = run_directories();
  const RunResult r = run_ipcbench({"run", "--mechanisms", "pipe", "--modes", "sync", "--patterns",
                                    "latency,throughput", "--sizes", "64", "--min-time", "0.02",
                                    "--repetitions", "3", "--out", out});
  ASSERT_EQ(r.status, 0) << r;
  const auto doc = read_json(out);
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["ipcbench"]["configuration"]["repetitions"], 3);

  std::map<std::string, std::vector<json>> by_case;
  for (const json& b : (*doc)["benchmarks"]) {
    expect_required_fields(b);
    expect_fields_match_name(b);
    by_case[b["run_name"]].push_back(b);
  }
  ASSERT_EQ(by_case.size(), 2u);
  for (const auto& [name, rows] : by_case) {
    SCOPED_TRACE(name);
    std::vector<int> repetition_indexes;
    std::multiset<std::string> aggregates;
    double samples = 0;
    for (const json& b : rows) {
      EXPECT_EQ(b.value("repetitions", 0), 3);
      if (b["run_type"] == "iteration") {
        repetition_indexes.push_back(b.value("repetition_index", -1));
        samples += number(b, "samples");
      } else {
        aggregates.insert(b.value("aggregate_name", ""));
      }
    }
    EXPECT_EQ(repetition_indexes, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(aggregates, (std::multiset<std::string>{"mean", "median", "stddev", "cv"}));
    // The iteration rows come first, then the aggregates.
    ASSERT_EQ(rows.size(), 7u);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i]["run_type"], i < 3 ? "iteration" : "aggregate") << "row " << i;
    }
    const bool latency = rows.front()["pattern"] == "latency";
    for (const json& b : rows) {
      if (b["run_type"] != "aggregate") continue;
      SCOPED_TRACE(entry_label(b));
      if (!latency) {
        EXPECT_FALSE(b.contains("histogram"));
        continue;
      }
      ASSERT_TRUE(b.contains("histogram") && b["histogram"].is_array());
      EXPECT_GE(b["histogram"].size(), 2u);
      expect_ordered_histogram(b["histogram"]);
      // The merged histogram holds every repetition's samples.
      EXPECT_EQ(number(b, "histogram_samples"), samples);
    }
  }
  const RunResult v = validate(out);
  EXPECT_EQ(v.status, 0) << v;
  expect_no_leftovers(r, before, dir.path());
}

// With only aggregates reported, the aggregates' histogram merges the repetitions' trials
// only, not Google Benchmark's iteration-estimation trials.
TEST(Cli, AggregatesOnlyReportMergesJustTheRepetitions) {
  TempDir dir;
  const std::string out = dir.file("aggregates.json");
  const RunResult r = run_ipcbench({"run", "--mechanisms", "pipe", "--patterns", "latency",
                                    "--sizes", "64", "--min-time", "0.02", "--repetitions", "3",
                                    "--out", out, "--", "--benchmark_report_aggregates_only=true"});
  ASSERT_EQ(r.status, 0) << r;
  const auto doc = read_json(out);
  ASSERT_TRUE(doc);
  for (const json& b : (*doc)["benchmarks"]) {
    SCOPED_TRACE(entry_label(b));
    ASSERT_EQ(b["run_type"], "aggregate");
    if (b["aggregate_name"] != "mean") continue;
    // The mean of samples times 3 is the repetitions' total. Self-timed (async) repetitions
    // run for the wall time and take different numbers of samples, so the mean is a fraction
    // and the product is exact only to the rounding of a double.
    EXPECT_NEAR(number(b, "histogram_samples"), 3 * number(b, "samples"),
                1e-9 * number(b, "histogram_samples"));
  }
}

// ---------------------------------------------------------------------------------------------
// Google Benchmark's tools read the result

TEST(Cli, GoogleBenchmarkCompareScriptReadsTwoResultFiles) {
  ASSERT_TRUE(fs::exists(kCompareScript))
      << kCompareScript << " is missing: install libbenchmark-tools (scripts/deps)";
  TempDir dir;
  const Args run = {"run",        "--mechanisms",       "pipe",    "--modes", "sync",
                    "--patterns", "latency,throughput", "--sizes", "64",      "--min-time",
                    "0.02"};
  for (const char* name : {"a.json", "b.json"}) {
    Args args = run;
    args.push_back("--out");
    args.push_back(dir.file(name));
    const RunResult r = run_ipcbench(args);
    ASSERT_EQ(r.status, 0) << r;
  }
  const RunResult c =
      run_command({kPython, kCompareScript, "benchmarks", dir.file("a.json"), dir.file("b.json")});
  ASSERT_EQ(c.status, 0) << c;
  for (const char* name :
       {"pipe/sync/latency/64/manual_time", "pipe/sync/throughput/64/manual_time"}) {
    EXPECT_NE(c.out.find(name), std::string::npos) << name << "\n" << c;
  }
}

}  // namespace
