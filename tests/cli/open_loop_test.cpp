// Open-loop latency must not hide a stall (no coordinated omission), while
// a closed loop does hide it; and the achieved rate is reported next to the
// requested one. The peer stalls through a test hook in its environment
// (IPCBENCH_TEST_STALL_MS / IPCBENCH_TEST_STALL_EVERY_MS, see peer.cpp).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

namespace fs = std::filesystem;

class OpenLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ipcbench-openloop-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs ipcbench with the stall hook; returns the one benchmark entry.
  nlohmann::json run(const std::string& extra, const char* name) {
    const std::string out = dir_ + "/" + name + ".json";
    const std::string cmd = "IPCBENCH_TEST_STALL_MS=50 IPCBENCH_TEST_STALL_EVERY_MS=300 " +
                            std::string(IPCBENCH_BINARY) +
                            " run --mechanisms uds-stream --modes async --patterns latency "
                            "--sizes 64 --out " +
                            out + " " + extra + " >" + dir_ + "/" + name + ".log 2>&1";
    const int status = std::system(cmd.c_str());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
    std::ifstream in(out);
    const nlohmann::json doc = nlohmann::json::parse(in);
    EXPECT_EQ(doc["benchmarks"].size(), 1u);
    return doc["benchmarks"][0];
  }

  std::string dir_;
};

TEST_F(OpenLoop, StallRaisesTheTailOfAnOpenLoopRunButHidesInAClosedOne) {
  const double stall_ns = 50e6;
  // This machine is shared: a hiccup of its own can lift a closed-loop tail
  // too. The properties must all hold in one attempt; two attempts are
  // allowed so that one foreign stall does not fail the build.
  std::string why;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const nlohmann::json open = run("--min-time 1 --rate 2000", "open");
    const nlohmann::json closed = run("--min-time 1", "closed");
    why.clear();
    // Open loop: every message due during the 50 ms stall waits for it, and
    // its latency counts from when it was due: the p99.9 is about the stall.
    if (!(open["p999_ns"].get<double>() > 0.6 * stall_ns &&
          open["p999_ns"].get<double>() < 3.0 * stall_ns)) {
      why += "open-loop p99.9 is not about the stall: " + open.dump() + "\n";
    }
    if (!(open["oneway_p999_ns"].get<double>() > 0.6 * stall_ns)) {
      why += "open-loop one-way p99.9 does not show the stall: " + open.dump() + "\n";
    }
    // Closed loop: only the window's messages wait; the sender simply
    // pauses, so the stall all but vanishes from the percentiles...
    if (!(closed["p999_ns"].get<double>() < 0.2 * stall_ns)) {
      why += "closed-loop p99.9 shows the stall: " + closed.dump() + "\n";
    }
    // ...though it did happen.
    if (!(closed["max_ns"].get<double>() > 0.6 * stall_ns)) {
      why += "the stall did not happen in the closed-loop run: " + closed.dump() + "\n";
    }
    if (why.empty()) break;
  }
  EXPECT_TRUE(why.empty()) << why;
}

TEST_F(OpenLoop, AchievedRateIsReportedNextToTheRequestedOne) {
  const nlohmann::json open = run("--min-time 0.3 --rate 20000", "rate");
  EXPECT_EQ(open["rate"], 20000);
  ASSERT_TRUE(open.contains("rate_achieved"));
  ASSERT_TRUE(open.contains("rate_kept_up"));
  const double achieved = open["rate_achieved"].get<double>();
  EXPECT_GT(achieved, 0);
  // The flag must agree with the figure it summarises.
  EXPECT_EQ(open["rate_kept_up"].get<bool>(), achieved >= 0.95 * 20000) << open.dump();
  EXPECT_TRUE(open["window"].is_null()) << "the open loop has no window";
  EXPECT_TRUE(open.contains("oneway_p50_ns"));
  EXPECT_TRUE(open.contains("oneway_histogram"));
  // The file, async fields included, is valid against the contract.
  const std::string validate = "/usr/bin/python3 " + std::string(IPCBENCH_SOURCE_DIR) +
                               "/tests/tools/validate_result.py " +
                               std::string(IPCBENCH_SOURCE_DIR) + "/docs/result.schema.json " +
                               dir_ + "/rate.json";
  EXPECT_EQ(std::system(validate.c_str()), 0) << validate;
}

TEST_F(OpenLoop, ClosedLoopHasANullRate) {
  const nlohmann::json closed = run("--min-time 0.05", "null");
  EXPECT_TRUE(closed["rate"].is_null());
  EXPECT_TRUE(closed.contains("rate_achieved"));
}

}  // namespace
