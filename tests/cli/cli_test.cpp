// Behavioural tests of the ipcbench command line, run as a user would run it: the built
// executable (IPCBENCH_BINARY) in a child process with its stdout and stderr captured. They
// check the list output, Google Benchmark flags after --, size units, the interrupted run, and
// that runs leave nothing behind. The command line's other concerns have binaries of their own
// beside this one: the result file (result_test), bad input (bad_input_test), --out
// (out_paths_test), placements and calibration (placement_test), remote runs (remote_test);
// what they share is in tests/support.
//
// Every run uses a tiny --min-time so the whole binary stays well under a minute.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
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

// ---------------------------------------------------------------------------------------------
// list

TEST(Cli, ListPrintsEveryMechanismOnceInRegistryOrder) {
  const RunResult table = run_ipcbench({"list"});
  ASSERT_EQ(table.status, 0) << table;
  EXPECT_EQ(table.err, "");
  const std::vector<std::string> lines = lines_of(table.out);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(words_of(lines[0]),
            (std::vector<std::string>{"NAME", "FAMILY", "BOUNDARIES", "MAX_MESSAGE",
                                      "CROSSES_HOSTS", "POLLABLE", "LOSSY"}));

  const RunResult listed = run_ipcbench({"list", "--json"});
  ASSERT_EQ(listed.status, 0) << listed;
  const json mechanisms = json::parse(listed.out);
  // The table, then one line for each mechanism that cannot run here.
  std::vector<std::string> unavailable;
  for (const json& m : mechanisms) {
    if (!m.value("available", true)) {
      unavailable.push_back(m.value("name", "") +
                            " is unavailable here: " + m.value("unavailable_reason", ""));
    }
  }
  ASSERT_EQ(lines.size(), mechanisms.size() + 1 + unavailable.size()) << table.out;
  EXPECT_EQ(std::vector<std::string>(lines.end() - static_cast<std::ptrdiff_t>(unavailable.size()),
                                     lines.end()),
            unavailable);
  std::vector<std::string> table_names;
  for (std::size_t i = 0; i < mechanisms.size(); ++i) {
    const json& m = mechanisms[i];
    const std::vector<std::string> row = words_of(lines[i + 1]);
    SCOPED_TRACE(lines[i + 1]);
    ASSERT_EQ(row.size(), 7u);
    table_names.push_back(row[0]);
    EXPECT_EQ(row[0], m.value("name", ""));
    EXPECT_EQ(row[1], m.value("family", ""));
    EXPECT_EQ(row[2], m.value("boundaries", ""));
    EXPECT_EQ(row[4], m.value("crosses_hosts", false) ? "yes" : "no");
    EXPECT_EQ(row[5], m.value("pollable", false) ? "yes" : "no");
    EXPECT_EQ(row[6], m.value("lossy", false) ? "yes" : "no");
  }
  for (const std::string& name : kShortRunMechanisms) {
    EXPECT_NE(std::find(table_names.begin(), table_names.end(), name), table_names.end())
        << name << " is missing from:\n"
        << table.out;
  }
  EXPECT_EQ(std::set<std::string>(table_names.begin(), table_names.end()).size(),
            table_names.size())
      << "names are unique";
}

TEST(Cli, ListJsonGivesEveryFieldWithTheRightType) {
  const RunResult r = run_ipcbench({"list", "--json"});
  ASSERT_EQ(r.status, 0) << r;
  EXPECT_EQ(r.err, "");
  json mechanisms;
  ASSERT_NO_THROW(mechanisms = json::parse(r.out)) << r.out;
  ASSERT_TRUE(mechanisms.is_array());
  ASSERT_FALSE(mechanisms.empty());
  for (const json& m : mechanisms) {
    SCOPED_TRACE(m.dump());
    ASSERT_TRUE(m.is_object());
    for (const char* key : {"name", "family", "boundaries"}) {
      ASSERT_TRUE(m.contains(key) && m[key].is_string()) << key;
      EXPECT_FALSE(m[key].get<std::string>().empty()) << key;
    }
    EXPECT_TRUE(m["boundaries"] == "message" || m["boundaries"] == "stream");
    ASSERT_TRUE(m.contains("max_message") && m["max_message"].is_number_unsigned());
    EXPECT_GE(m["max_message"].get<std::uint64_t>(), 16u) << "room for the header at least";
    for (const char* key : {"crosses_hosts", "pollable", "lossy", "available"}) {
      EXPECT_TRUE(m.contains(key) && m[key].is_boolean()) << key;
    }
    // Copies of the payload per message: 0 (a loan), 1 (cross-memory
    // attach), 2 (in and out of the kernel or a ring) or more (ZeroMQ).
    ASSERT_TRUE(m.contains("copies") && m["copies"].is_number_unsigned()) << "copies";
    EXPECT_LE(m["copies"].get<unsigned>(), 4u);
    // The async mode's non-blocking path: cma stages in a slot first; the
    // others pay what their blocking path pays.
    ASSERT_TRUE(m.contains("async_copies") && m["async_copies"].is_number_unsigned());
    if (m["name"] == "cma") {
      EXPECT_EQ(m["copies"], 1);
      EXPECT_EQ(m["async_copies"], 2);
    } else {
      EXPECT_EQ(m["async_copies"], m["copies"]);
    }
    // Only a loan API copies nothing (the conformance suite's
    // LoanedEchoPreservesContentInTheMechanismsOwnMemory checks it lends).
    EXPECT_EQ(m["copies"] == 0, m["name"] == "iceoryx");
    // A reason exactly when it cannot run here.
    if (m.value("available", true)) {
      EXPECT_FALSE(m.contains("unavailable_reason"));
    } else {
      ASSERT_TRUE(m.contains("unavailable_reason") && m["unavailable_reason"].is_string());
      EXPECT_FALSE(m["unavailable_reason"].get<std::string>().empty());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Filters and sizes

TEST(Cli, BenchmarkFilterAfterDoubleDashRunsOnlyTheMatchingCases) {
  TempDir dir;
  const std::string out = dir.file("filtered.json");
  const RunResult r = run_ipcbench({"run", "--mechanisms", "pipe,tcp", "--modes", "sync",
                                    "--patterns", "latency", "--sizes", "64", "--min-time", "0.02",
                                    "--out", out, "--", "--benchmark_filter=tcp"});
  ASSERT_EQ(r.status, 0) << r;
  const auto doc = read_json(out);
  ASSERT_TRUE(doc);
  const json& benchmarks = (*doc)["benchmarks"];
  ASSERT_EQ(benchmarks.size(), 1u) << benchmarks.dump(2);
  EXPECT_EQ(benchmarks[0]["name"], "tcp/sync/latency/64/manual_time");
  EXPECT_EQ(benchmarks[0]["mechanism"], "tcp");
  EXPECT_EQ((*doc)["ipcbench"]["configuration"]["benchmark_args"],
            json({"--benchmark_filter=tcp"}));
  EXPECT_EQ(r.out.find("pipe/"), std::string::npos) << r;
  EXPECT_EQ(r.err.find("pipe/"), std::string::npos) << r;
  // The progress count knows the filter: one case, not two.
  EXPECT_NE(r.err.find("[1/1]"), std::string::npos) << r;
}

TEST(Cli, SizesAcceptBytesKibibytesAndMebibytes) {
  TempDir dir;
  const std::string out = dir.file("sizes.json");
  const RunResult r =
      run_ipcbench({"run", "--mechanisms", "pipe", "--modes", "sync", "--patterns", "latency",
                    "--sizes", "64,4KiB,1MiB", "--min-time", "0.02", "--out", out});
  ASSERT_EQ(r.status, 0) << r;
  const auto doc = read_json(out);
  ASSERT_TRUE(doc);
  std::vector<std::uint64_t> sizes;
  for (const json& b : (*doc)["benchmarks"]) {
    sizes.push_back(b["message_size"].get<std::uint64_t>());
    expect_fields_match_name(b);
  }
  EXPECT_EQ(sizes, (std::vector<std::uint64_t>{64, 4096, 1048576}));
  EXPECT_EQ((*doc)["ipcbench"]["configuration"]["sizes"], json({64, 4096, 1048576}));
}

// ---------------------------------------------------------------------------------------------
// Interrupted runs and leftovers

TEST(Cli, InterruptedRunWritesAnIncompleteResultAndCleansUp) {
  TempDir dir;
  const std::string out = dir.file("interrupted.json");
  const auto before = run_directories();
  // Cases of a second each; SIGINT arrives a moment after Google Benchmark starts.
  const RunResult r =
      run_ipcbench({"run", "--mechanisms", "pipe,uds-stream", "--modes", "sync", "--patterns",
                    "latency", "--sizes", "64", "--min-time", "1", "--out", out},
                   Interrupt{"Running ", std::chrono::milliseconds(300), SIGINT});
  EXPECT_EQ(r.status, 128 + SIGINT) << r;
  EXPECT_NE(r.err.find("incomplete"), std::string::npos) << r;
  const auto doc = read_json(out);
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["ipcbench"]["complete"], false);
  EXPECT_FALSE((*doc)["ipcbench"]["failed"].empty());
  for (const json& b : (*doc)["benchmarks"]) expect_required_fields(b);
  const RunResult v = validate(out);
  EXPECT_EQ(v.status, 0) << v;
  expect_no_leftovers(r, before, dir.path());
}

TEST(Cli, FinishedRunsLeaveNoRunDirectoryTemporaryFileOrPeer) {
  TempDir dir;
  const auto before = run_directories();
  std::vector<RunResult> runs;
  // uds-stream puts its socket in the run directory; a second run writing the same output
  // file replaces it atomically (through a temporary file that must not stay behind).
  runs.push_back(run_ipcbench({"run", "--mechanisms", "pipe,uds-stream,tcp", "--modes", "sync",
                               "--patterns", "latency,throughput", "--sizes", "64", "--min-time",
                               "0.02", "--out", dir.file("one.json")}));
  EXPECT_EQ(runs.back().status, 0) << runs.back();
  runs.push_back(
      run_ipcbench({"run", "--mechanisms", "uds-stream", "--modes", "sync", "--patterns", "latency",
                    "--sizes", "64", "--min-time", "0.02", "--out", dir.file("one.json")}));
  EXPECT_EQ(runs.back().status, 0) << "overwrites the earlier file\n" << runs.back();
  for (const RunResult& r : runs) expect_no_leftovers(r, before, dir.path());
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir.path())) files.insert(e.path().filename());
  EXPECT_EQ(files, (std::set<std::string>{"one.json"}));
  const auto doc = read_json(dir.file("one.json"));
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["benchmarks"].size(), 1u) << "the second run's result replaced the first";
}

}  // namespace
