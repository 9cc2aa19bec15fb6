// What the async, open-loop and lossy rows measure (issue 15): the figures
// are the mechanism's, not the harness's. Each test runs the real binary and
// checks properties of its JSON rows that the earlier harness did not have:
// real_time is the mean round trip on every latency row (it was the wall time
// per message on async rows); async throughput has its own flow control
// (it used --window as its credit window) and says when that flow control,
// not the mechanism, set the pace; lossy streaming is limited by the
// receiver's socket buffer (it was two credit windows of ~32 KiB); the open
// loop spins to its due times (it slept to them and overshot) and records
// its lateness; the closed loop keeps one message in flight unless told
// otherwise (it kept 16); queues without readiness descriptors spin in async
// (they slept 50 us); --verify full costs are timed in throughput.
//
// Nothing here is a speed target: every bound is a ratio, a count, or a
// margin of orders of magnitude, so a shared, noisy machine passes.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/available.hpp"
#include "../support/files.hpp"
#include "../support/ipcbench.hpp"
#include "../support/proc.hpp"
#include "../support/run.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using testproc::read_file;

// A number field of a row; a failure (and NaN, which fails every
// comparison) when it is missing or not a number.
double num(const json& row, const char* key) {
  if (!row.contains(key) || !row[key].is_number()) {
    ADD_FAILURE() << "no number " << key << " in " << row.value("name", "?") << ": " << row.dump();
    return std::numeric_limits<double>::quiet_NaN();
  }
  return row[key].get<double>();
}

std::string str(const json& row, const char* key) {
  if (!row.contains(key) || !row[key].is_string()) {
    ADD_FAILURE() << "no string " << key << " in " << row.value("name", "?") << ": " << row.dump();
    return "";
  }
  return row[key].get<std::string>();
}

class Measurement : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ipcbench-measurement-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string out_path(const std::string& name) const { return dir_ + "/" + name + ".json"; }
  std::string log_path(const std::string& name) const { return dir_ + "/" + name + ".log"; }

  // Runs `ipcbench run ARGS --no-calibration --out DIR/NAME.json` (ARGS
  // split at spaces) within a deadline, its stdout and then its stderr to
  // DIR/NAME.log; returns the exit status (-1 if it did not exit).
  int run_raw(const std::string& args, const std::string& name) {
    testproc::Args argv = {IPCBENCH_BINARY, "run"};
    std::istringstream words(args);
    for (std::string w; words >> w;) argv.push_back(w);
    argv.insert(argv.end(), {"--no-calibration", "--out", out_path(name)});
    const testproc::RunResult r =
        testproc::run_command(argv, std::nullopt, std::chrono::seconds(140));
    std::ofstream(log_path(name)) << r.out << r.err;
    return r.status >= 0 && r.status < 128 ? r.status : -1;
  }

  // A run that must succeed: exit 0, a result file valid against the
  // contract, no failed case. Returns the file.
  json run(const std::string& args, const std::string& name) {
    const int code = run_raw(args, name);
    EXPECT_EQ(code, 0) << "ipcbench run " << args << "\n" << read_file(log_path(name));
    const std::optional<json> parsed = testproc::read_json(out_path(name));
    if (!parsed) return json::object();
    const json& doc = *parsed;
    const testproc::RunResult valid = testproc::run_command(
        {"/usr/bin/python3", IPCBENCH_SOURCE_DIR "/tests/tools/validate_result.py",
         IPCBENCH_SOURCE_DIR "/docs/result.schema.json", out_path(name)});
    EXPECT_EQ(valid.status, 0) << "validate_result.py " << out_path(name) << "\n" << valid;
    for (const json& b : doc.value("benchmarks", json::array())) {
      EXPECT_FALSE(b.value("error_occurred", false))
          << b.value("name", "?") << " failed: " << b.value("error_message", "");
    }
    return doc;
  }

  std::string dir_;
};

// The measured row of case `stem` ("mech/mode/pattern/size"); null if absent.
json row(const json& doc, const std::string& stem) {
  for (const json& b : doc.value("benchmarks", json::array())) {
    const std::string name = b.value("name", "");
    if (b.value("run_type", "iteration") != "iteration") continue;
    if (name == stem || name.rfind(stem + "/", 0) == 0) return b;
  }
  ADD_FAILURE() << "no row " << stem << " in " << doc.dump().substr(0, 4000);
  return json::object();
}

std::vector<json> rows_of(const json& doc, const std::string& pattern) {
  std::vector<json> out;
  for (const json& b : doc.value("benchmarks", json::array())) {
    if (b.value("run_type", "iteration") != "iteration") continue;
    if (b.value("pattern", "") == pattern) out.push_back(b);
  }
  return out;
}

void expect_real_time_is_mean(const json& b) {
  const double real = num(b, "real_time"), mean = num(b, "mean_ns");
  EXPECT_GT(mean, 0) << b.dump();
  EXPECT_LE(std::abs(real - mean), 0.01 * mean) << b.value("name", "?") << ": real_time " << real
                                                << " is not the mean round trip " << mean << "\n"
                                                << b.dump();
}

TEST_F(Measurement, RealTimeIsTheMeanRoundTripOnEveryLatencyRow) {
  const json closed =
      run("--mechanisms uds-stream,udp --modes sync,async --patterns latency --sizes 64 "
          "--min-time 0.1",
          "closed");
  const std::vector<json> closed_rows = rows_of(closed, "latency");
  EXPECT_EQ(closed_rows.size(), 4u);
  for (const json& b : closed_rows) expect_real_time_is_mean(b);

  // The open loop: real_time was the wall time per message, ~1e9/rate.
  const json open =
      run("--mechanisms uds-stream,udp --modes async --patterns latency --sizes 64 --min-time 0.2 "
          "--rate 2000",
          "open");
  const std::vector<json> open_rows = rows_of(open, "latency");
  EXPECT_EQ(open_rows.size(), 2u);
  for (const json& b : open_rows) expect_real_time_is_mean(b);

  // Throughput: real_time is ns per delivered message, 1e9 / items_per_second.
  const json tp = run(
      "--mechanisms uds-stream --modes sync,async --patterns throughput --sizes 64 --min-time 0.1",
      "throughput");
  const std::vector<json> tp_rows = rows_of(tp, "throughput");
  EXPECT_EQ(tp_rows.size(), 2u);
  for (const json& b : tp_rows) {
    const double product = num(b, "real_time") * num(b, "items_per_second");
    EXPECT_LE(std::abs(product - 1e9), 1e-3 * 1e9)
        << b.value("name", "?") << ": real_time * items_per_second = " << product << "\n"
        << b.dump();
  }
}

TEST_F(Measurement, AsyncThroughputIgnoresTheWindow) {
  // The window was the async throughput's credit window; now it applies to
  // the closed-loop latency only.
  for (const char* window : {"1", "4096"}) {
    SCOPED_TRACE(std::string("--window ") + window);
    const json doc = run(std::string("--mechanisms pipe --modes async --patterns throughput "
                                     "--sizes 64 --min-time 0.1 --window ") +
                             window,
                         std::string("window") + window);
    const json b = row(doc, "pipe/async/throughput/64");
    ASSERT_TRUE(b.contains("window")) << b.dump();
    EXPECT_TRUE(b["window"].is_null()) << b.dump();
    // The default 64 MiB budget over 64-byte messages, clamped to 65536.
    EXPECT_EQ(num(b, "in_flight_limit_messages"), 65536) << b.dump();
    EXPECT_EQ(num(b, "in_flight_limit_bytes"), 65536.0 * 64) << b.dump();
    EXPECT_EQ(str(b, "in_flight_limit_source"), "harness") << b.dump();
  }
}

TEST_F(Measurement, ATinyFlowLimitShowsAsStallAndTheDefaultDoesNot) {
  // --in-flight-limit 64: 4 messages of 64 bytes (the floor), an
  // acknowledgement per message: the harness's credits set the pace, and
  // the row must say so. Two attempts for the stall share (a run starved of
  // CPU by a neighbour spends its time elsewhere); the bound is the same.
  double stall = 0;
  json tiny;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const json doc =
        run("--mechanisms pipe --modes async --patterns throughput --sizes 64 --min-time 0.1 "
            "--in-flight-limit 64",
            "tiny" + std::to_string(attempt));
    tiny = row(doc, "pipe/async/throughput/64");
    EXPECT_EQ(num(tiny, "in_flight_limit_messages"), 4) << tiny.dump();
    EXPECT_EQ(num(tiny, "in_flight_limit_bytes"), 256) << tiny.dump();
    EXPECT_EQ(str(tiny, "in_flight_limit_source"), "harness") << tiny.dump();
    stall = num(tiny, "flow_stall_fraction");
    if (stall > 0.2) break;
  }
  EXPECT_GT(stall, 0.2) << "a 4-message limit does not show as a flow stall: " << tiny.dump();
  EXPECT_LE(stall, 1.0) << tiny.dump();

  // The default (65536 messages): the pipe's 64 KiB buffer fills long
  // before, so the mechanism, not the harness, sets the pace.
  const json doc = run(
      "--mechanisms pipe --modes async --patterns throughput --sizes 64 --min-time 0.1", "default");
  const json b = row(doc, "pipe/async/throughput/64");
  EXPECT_EQ(num(b, "in_flight_limit_messages"), 65536) << b.dump();
  EXPECT_LT(num(b, "flow_stall_fraction"), 0.05) << b.dump();
  const double full = num(b, "channel_full_fraction");
  EXPECT_GE(full, 0) << b.dump();
  EXPECT_LE(full, 1) << b.dump();
}

TEST_F(Measurement, LossyStreamingIsLimitedByTheReceiveBuffer) {
  const json doc =
      run("--mechanisms udp --modes sync,async --patterns throughput --sizes 16KiB --min-time 0.1",
          "udp");
  for (const char* stem : {"udp/sync/throughput/16384", "udp/async/throughput/16384"}) {
    SCOPED_TRACE(stem);
    const json b = row(doc, stem);
    EXPECT_EQ(str(b, "in_flight_limit_source"), "receive_buffer") << b.dump();
    // Credits that stand for the receiver's buffer are the mechanism's
    // limit: waiting for them is channel_full_fraction, never a flow stall.
    EXPECT_EQ(num(b, "flow_stall_fraction"), 0) << b.dump();
    // The old credit window: two windows of ~32 KiB, 2 messages of 16 KiB.
    EXPECT_GT(num(b, "in_flight_limit_messages"), 8) << b.dump();
    EXPECT_EQ(num(b, "in_flight_limit_bytes"), num(b, "in_flight_limit_messages") * 16384)
        << b.dump();
    const double lost_wait = num(b, "lost_ack_wait_fraction");
    EXPECT_GE(lost_wait, 0) << b.dump();
    EXPECT_LE(lost_wait, 1) << b.dump();
    const double full = num(b, "channel_full_fraction");
    EXPECT_GE(full, 0) << b.dump();
    EXPECT_LE(full, 1) << b.dump();
    EXPECT_GT(num(b, "messages"), 0) << b.dump();
  }
}

TEST_F(Measurement, OpenLoopRecordsLatenessAndHasNoWindow) {
  constexpr double kRate = 1000, kMinTime = 0.3;
  // The lateness and the sample count depend on the runner having its CPU:
  // a neighbour's process on the runner's CPU deschedules a spinning sender
  // for milliseconds (seen here: lateness p50 3 ms with the runner on its
  // CPU 27% of the trial). Two attempts for those two, with the same bounds;
  // everything else must hold in every attempt.
  std::string why;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const json doc =
        run("--mechanisms shm-spin,pipe --modes async --patterns latency --sizes 64 --rate 1000 "
            "--min-time 0.3",
            "open" + std::to_string(attempt));
    why.clear();
    for (const char* stem : {"shm-spin/async/latency/64", "pipe/async/latency/64"}) {
      SCOPED_TRACE(stem);
      const json b = row(doc, stem);
      ASSERT_TRUE(b.contains("window")) << b.dump();
      EXPECT_TRUE(b["window"].is_null()) << "the open loop has no window: " << b.dump();
      EXPECT_EQ(num(b, "rate"), kRate) << b.dump();
      EXPECT_FALSE(b.contains("includes_queueing")) << b.dump();
      const double p50 = num(b, "lateness_p50_ns"), p99 = num(b, "lateness_p99_ns"),
                   max = num(b, "lateness_max_ns");
      EXPECT_LE(p50, p99) << b.dump();
      EXPECT_LE(p99, max) << b.dump();
      const double achieved = num(b, "rate_achieved");
      ASSERT_TRUE(b.contains("rate_kept_up") && b["rate_kept_up"].is_boolean()) << b.dump();
      ASSERT_TRUE(b.contains("sender_behind") && b["sender_behind"].is_boolean()) << b.dump();
      const bool kept_up = b["rate_kept_up"].get<bool>();
      EXPECT_EQ(kept_up, achieved >= 0.95 * kRate) << b.dump();
      EXPECT_EQ(b["sender_behind"].get<bool>(), !kept_up || p99 > 1e9 / kRate) << b.dump();
      EXPECT_GE(num(b, "runner_pacing_ns_per_msg"), 0) << b.dump();
      EXPECT_GE(num(b, "max_in_flight"), 1) << b.dump();
      // The sender spins to its due time (measured: ~50 ns late). Sleeping
      // to it overshot by 25-80 us on these machines, and that oversleep
      // counted as the mechanism's latency. 20 us is a 1000x margin, not a
      // speed target.
      if (!(p50 < 20000)) {
        why += std::string(stem) + ": the sender is late (lateness_p50_ns " + std::to_string(p50) +
               " >= 20000; runner CPU " + std::to_string(num(b, "cpu_time") * 1e-9 / kMinTime) +
               " of the trial): " + b.dump() + "\n";
      }
      // One message per period over --min-time (the trial is its own timer).
      if (!(num(b, "samples") >= 0.9 * kRate * kMinTime)) {
        why +=
            std::string(stem) + ": fewer than 90% of rate * min_time samples: " + b.dump() + "\n";
      }
    }
    if (why.empty()) break;
  }
  EXPECT_TRUE(why.empty()) << why;
}

TEST_F(Measurement, ClosedLoopDefaultsToOneInFlight) {
  const json one =
      run("--mechanisms pipe --modes async --patterns latency --sizes 64 --min-time 0.1", "one");
  const json b1 = row(one, "pipe/async/latency/64");
  EXPECT_EQ(num(b1, "window"), 1) << b1.dump();
  ASSERT_TRUE(b1.contains("includes_queueing") && b1["includes_queueing"].is_boolean())
      << b1.dump();
  EXPECT_FALSE(b1["includes_queueing"].get<bool>()) << b1.dump();
  EXPECT_EQ(num(b1, "max_in_flight"), 1) << b1.dump();
  EXPECT_TRUE(b1.contains("rate") && b1["rate"].is_null()) << b1.dump();

  const json eight =
      run("--mechanisms pipe --modes async --patterns latency --sizes 64 --min-time 0.1 --window 8",
          "eight");
  const json b8 = row(eight, "pipe/async/latency/64");
  EXPECT_EQ(num(b8, "window"), 8) << b8.dump();
  ASSERT_TRUE(b8.contains("includes_queueing") && b8["includes_queueing"].is_boolean())
      << b8.dump();
  EXPECT_TRUE(b8["includes_queueing"].get<bool>()) << b8.dump();
  const double in_flight = num(b8, "max_in_flight");
  EXPECT_GE(in_flight, 1) << b8.dump();
  EXPECT_LE(in_flight, 8) << b8.dump();
}

TEST_F(Measurement, WindowAndRateExcludeEachOther) {
  const int code = run_raw(
      "--mechanisms pipe --modes async --patterns latency --sizes 64 --min-time 0.05 "
      "--window 4 --rate 1000",
      "both");
  const std::string output = read_file(log_path("both"));
  EXPECT_EQ(code, 2) << output;
  std::vector<std::string> lines;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 1u) << "expected one line:\n" << output;
  EXPECT_NE(lines[0].find("--window"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("--rate"), std::string::npos) << lines[0];
  EXPECT_FALSE(fs::exists(out_path("both"))) << "a usage error wrote the --out file";
}

TEST_F(Measurement, QueuesWithoutReadinessSpinInAsync) {
  const json doc =
      run("--mechanisms sysv-mq,boost-mq,pipe --modes sync,async --patterns latency --sizes 64 "
          "--min-time 0.05",
          "wait");
  for (const char* mech : {"sysv-mq", "boost-mq"}) {
    const json sync = row(doc, std::string(mech) + "/sync/latency/64");
    const json async = row(doc, std::string(mech) + "/async/latency/64");
    EXPECT_EQ(str(sync, "wait"), "block") << sync.dump();
    // No descriptor to poll: the async readiness wait spins (it slept in
    // 50 us slices, which the round trips then carried).
    EXPECT_EQ(str(async, "wait"), "spin") << async.dump();
  }
  const json pipe_sync = row(doc, "pipe/sync/latency/64");
  const json pipe_async = row(doc, "pipe/async/latency/64");
  EXPECT_EQ(str(pipe_sync, "wait"), "block") << pipe_sync.dump();
  EXPECT_EQ(str(pipe_async, "wait"), "poll") << pipe_async.dump();
  for (const json& b : rows_of(doc, "latency")) {
    EXPECT_EQ(str(b, "verify"), "header") << b.dump();
    EXPECT_EQ(b.value("copies", -1), 2) << "in and out of the kernel: " << b.dump();
  }
}

// iceoryx's rows go through its loan API (Channel::loan, receive_view):
// they say they copy nothing, and with --verify full every payload byte,
// written into the loaned chunk and echoed into the peer's, still arrives
// intact in every pattern (a wrong byte fails the case; no row may).
TEST_F(Measurement, IceoryxRowsCopyNothingAndFullVerificationHolds) {
  IPCBENCH_SKIP_IF_UNAVAILABLE("iceoryx");
  const json doc =
      run("--mechanisms iceoryx --modes sync,async --patterns latency,throughput --sizes 64,64KiB "
          "--min-time 0.05 --verify full",
          "iceoryx-loans");
  for (const char* stem :
       {"iceoryx/sync/latency/64", "iceoryx/sync/latency/65536", "iceoryx/sync/throughput/65536",
        "iceoryx/async/latency/65536", "iceoryx/async/throughput/65536"}) {
    const json b = row(doc, stem);
    EXPECT_EQ(b.value("copies", -1), 0) << b.dump();
    EXPECT_EQ(str(b, "verify"), "full") << b.dump();
    EXPECT_FALSE(b.contains("error_message")) << b.dump();
    EXPECT_GT(num(b, "messages"), 0.0) << b.dump();
  }
}

// The checks the spin-budget tests share: `spun` is a row run with
// --spin-budget 1000000, `slept` one run without; both record the budget
// and the wait it gave.
void expect_spin_budget_rows(const json& spun, const json& slept) {
  EXPECT_EQ(spun.value("spin_budget", -1), 1000000) << spun.dump();
  EXPECT_EQ(str(spun, "wait"), "spin-then-block") << spun.dump();
  EXPECT_EQ(slept.value("spin_budget", -1), 0) << slept.dump();
  EXPECT_EQ(str(slept, "wait"), "block") << slept.dump();
}

// shm-eventfd's spin budget reaches both sides (the peer's through the
// address) and its rows. With a budget far above a round trip a side finds
// the reply while spinning and makes almost no system call of its own;
// without one every wait is an eventfd poll, so at least one call per
// message on each side.
TEST_F(Measurement, ShmEventfdSpinBudgetReachesBothSidesAndItsRows) {
  if (testproc::allowed_cpus().size() < 2) GTEST_SKIP() << "needs two CPUs (no spin on one)";
  const json spun =
      run("--mechanisms shm-eventfd,shm-futex --modes sync --patterns latency --sizes 64 "
          "--min-time 0.05 --spin-budget 1000000",
          "spin");
  const json b = row(spun, "shm-eventfd/sync/latency/64");
  EXPECT_LT(num(b, "runner_own_syscalls_per_msg"), 1.0) << b.dump();
  EXPECT_LT(num(b, "peer_own_syscalls_per_msg"), 1.0) << b.dump();
  EXPECT_FALSE(row(spun, "shm-futex/sync/latency/64").contains("spin_budget"));
  EXPECT_EQ(spun["ipcbench"]["configuration"].value("spin_budget", -1), 1000000);

  const json slept =
      run("--mechanisms shm-eventfd --modes sync --patterns latency --sizes 64 --min-time 0.05",
          "no-spin");
  const json c = row(slept, "shm-eventfd/sync/latency/64");
  expect_spin_budget_rows(b, c);
  EXPECT_GE(num(c, "runner_own_syscalls_per_msg"), 1.0) << c.dump();
  EXPECT_GE(num(c, "peer_own_syscalls_per_msg"), 1.0) << c.dump();
}

// iceoryx's spin budget reaches both sides (the peer's in the listener's
// hello) and its rows, as shm-eventfd's does: with a budget far above a
// round trip a side finds the reply while spinning and makes almost no
// system call of its own; without one nearly every message is waited for
// in the WaitSet (a futex wait), unless the reply was queued before the
// wait began (seen: 689 waits for 690 messages).
TEST_F(Measurement, IceoryxSpinBudgetReachesBothSidesAndItsRows) {
  if (testproc::allowed_cpus().size() < 2) GTEST_SKIP() << "needs two CPUs (no spin on one)";
  IPCBENCH_SKIP_IF_UNAVAILABLE("iceoryx");
  const json spun =
      run("--mechanisms iceoryx --modes sync --patterns latency --sizes 64 --min-time 0.05 "
          "--spin-budget 1000000",
          "iceoryx-spin");
  const json b = row(spun, "iceoryx/sync/latency/64");
  EXPECT_LT(num(b, "runner_own_syscalls_per_msg"), 0.1) << b.dump();
  EXPECT_LT(num(b, "peer_own_syscalls_per_msg"), 0.1) << b.dump();

  const json slept =
      run("--mechanisms iceoryx --modes sync --patterns latency --sizes 64 --min-time 0.05",
          "iceoryx-no-spin");
  const json c = row(slept, "iceoryx/sync/latency/64");
  expect_spin_budget_rows(b, c);
  EXPECT_GT(num(c, "runner_own_syscalls_per_msg"), 0.9) << c.dump();
  EXPECT_GT(num(c, "peer_own_syscalls_per_msg"), 0.9) << c.dump();
}

// Each async case of a pollable mechanism runs on every engine asked for,
// its name and row saying which; sync cases, and the async ones of a
// channel that waits its own way (shm-futex), run once and name none.
TEST_F(Measurement, EnginesMultiplyPollableAsyncCasesAndTheirRowsSayWhich) {
  const json doc =
      run("--mechanisms pipe,uds-dgram,shm-futex --modes sync,async --patterns latency,throughput "
          "--sizes 64 --min-time 0.05 --engine poll,epoll,io_uring",
          "engines");
  const bool uring = doc.dump().find("io_uring is unavailable here") == std::string::npos;
  for (const char* mech : {"pipe", "uds-dgram"}) {
    for (const char* pattern : {"latency", "throughput"}) {
      for (const char* eng : {"poll", "epoll", "io_uring"}) {
        if (std::string(eng) == "io_uring" && !uring) continue;
        const std::string name = std::string(mech) + "/async/" + pattern + "/64/" + eng;
        const json b = row(doc, name);
        EXPECT_EQ(b.value("name", ""), name + "/manual_time");
        EXPECT_EQ(str(b, "engine"), eng) << b.dump();
        EXPECT_GT(num(b, pattern == std::string("latency") ? "p50_ns" : "items_per_second"), 0)
            << b.dump();
      }
    }
    const json sync = row(doc, std::string(mech) + "/sync/latency/64");
    EXPECT_EQ(sync.value("name", ""), std::string(mech) + "/sync/latency/64/manual_time");
    EXPECT_FALSE(sync.contains("engine")) << sync.dump();
  }
  const json futex = row(doc, "shm-futex/async/latency/64");
  EXPECT_EQ(futex.value("name", ""), "shm-futex/async/latency/64/manual_time");
  EXPECT_FALSE(futex.contains("engine")) << futex.dump();
  EXPECT_EQ(doc["ipcbench"]["configuration"].value("engines", json::array()),
            json::array({"poll", "epoll", "io_uring"}));
}

// An engine a mechanism cannot use skips its cases with the reason:
// pipe-splice's sends are vmsplices, so an io_uring writing its bytes would
// measure plain pipe writes.
TEST_F(Measurement, AnEngineAMechanismCannotUseSkipsItsCasesWithTheReason) {
  ASSERT_EQ(run_raw("--mechanisms pipe-splice --modes async --patterns latency --sizes 64 "
                    "--min-time 0.05 --engine poll,io_uring",
                    "splice"),
            0)
      << read_file(log_path("splice"));
  const std::optional<json> doc = testproc::read_json(out_path("splice"));
  ASSERT_TRUE(doc.has_value());
  const json skipped = row(*doc, "pipe-splice/async/latency/64/io_uring");
  EXPECT_NE(str(skipped, "skip_message").find("cannot run on io_uring"), std::string::npos)
      << skipped.dump();
  const json polled = row(*doc, "pipe-splice/async/latency/64/poll");
  EXPECT_GT(num(polled, "p50_ns"), 0) << polled.dump();
}

TEST_F(Measurement, VerifyFullCostIsRecordedInThroughput) {
  const json full =
      run("--mechanisms pipe --modes sync --patterns throughput --sizes 4KiB --min-time 0.1 "
          "--verify full",
          "full");
  const json f = row(full, "pipe/sync/throughput/4096");
  EXPECT_EQ(str(f, "verify"), "full") << f.dump();
  EXPECT_GT(num(f, "runner_verify_ns_per_msg"), 0) << f.dump();
  EXPECT_GT(num(f, "peer_verify_ns_per_msg"), 0) << f.dump();

  const json header = run(
      "--mechanisms pipe --modes sync --patterns throughput --sizes 4KiB --min-time 0.1", "header");
  const json h = row(header, "pipe/sync/throughput/4096");
  EXPECT_EQ(str(h, "verify"), "header") << h.dump();
  EXPECT_FALSE(h.contains("runner_verify_ns_per_msg")) << h.dump();
  EXPECT_FALSE(h.contains("peer_verify_ns_per_msg")) << h.dump();
}

TEST_F(Measurement, SyncCasesOfBareFamiliesCarryTheAdapterRatio) {
  const json doc =
      run("--mechanisms pipe,fifo,tcp,shm-spin --modes sync,async --patterns latency,throughput "
          "--sizes 64 --min-time 0.1",
          "adapter");
  const auto family = [](const std::string& mech) -> std::string {
    return mech == "tcp" ? "tcp" : "pipe";  // a FIFO is a pipe in the kernel
  };
  // Every row names its mechanism's family, as 'list --json' does: the
  // report groups a family's mechanisms in one panel.
  for (const auto& [mech, fam] : {std::pair<std::string, std::string>{"pipe", "pipe"},
                                  {"fifo", "pipe"},
                                  {"tcp", "socket"},
                                  {"shm-spin", "shm"}}) {
    EXPECT_EQ(str(row(doc, mech + "/async/latency/64"), "family"), fam);
  }
  for (const char* mech : {"pipe", "fifo", "tcp"}) {
    for (const char* pattern : {"latency", "throughput"}) {
      const json b = row(doc, std::string(mech) + "/sync/" + pattern + "/64");
      ASSERT_TRUE(b.contains("adapter_ratio")) << b.dump();
      EXPECT_GT(num(b, "adapter_ratio"), 0) << b.dump();
      EXPECT_EQ(str(b, "bare_family"), family(mech)) << b.dump();
      // Oriented like floor_ratio: the case's figure against the bare loop's.
      if (std::string(pattern) == "latency") {
        EXPECT_NEAR(num(b, "adapter_ratio"), num(b, "p50_ns") / num(b, "bare_p50_ns"),
                    1e-6 * num(b, "adapter_ratio"))
            << b.dump();
      } else {
        EXPECT_NEAR(num(b, "adapter_ratio"),
                    num(b, "bare_bytes_per_second") / num(b, "bytes_per_second"),
                    1e-6 * num(b, "adapter_ratio"))
            << b.dump();
      }
    }
    // The bare loop is the reference for the blocking calls: async rows
    // have none.
    const json a = row(doc, std::string(mech) + "/async/latency/64");
    EXPECT_FALSE(a.contains("adapter_ratio")) << a.dump();
  }
  // Shared memory has no kernel object to compare with.
  const json shm = row(doc, "shm-spin/sync/latency/64");
  EXPECT_FALSE(shm.contains("adapter_ratio")) << shm.dump();
  EXPECT_FALSE(shm.contains("adapter_note")) << shm.dump();
}

}  // namespace

// System calls per message, counted with the raw_syscalls tracepoint where
// allowed (root in CI): a sync pipe round trip is one write and one read on
// each side, shared memory none; where counting is not allowed, the file
// says why and the rows carry no figure.
TEST_F(Measurement, SyscallsPerMessageAreCountedOnEveryRow) {
  const json doc =
      run("--mechanisms pipe,shm-spin --modes sync --patterns latency --sizes 64 --min-time 0.05",
          "syscalls");
  const json meta = doc["ipcbench"]["syscalls"];
  ASSERT_TRUE(meta.is_object()) << doc["ipcbench"].dump();
  if (!meta.value("counted", false)) {
    EXPECT_TRUE(meta["note"].is_string()) << meta.dump();
    for (const json& b : rows_of(doc, "latency")) {
      EXPECT_FALSE(b.contains("runner_syscalls_per_msg")) << b.dump();
    }
    GTEST_SKIP() << meta["note"].get<std::string>();
  }
  EXPECT_TRUE(meta["note"].is_null()) << meta.dump();
  const json pipe = row(doc, "pipe/sync/latency/64");
  // A few calls per trial are the stats exchange, spread over hundreds of
  // round trips.
  for (const char* side : {"runner_syscalls_per_msg", "peer_syscalls_per_msg"}) {
    EXPECT_GE(num(pipe, side), 2.0) << pipe.dump();
    EXPECT_LT(num(pipe, side), 2.2) << pipe.dump();
  }
  const json shm = row(doc, "shm-spin/sync/latency/64");
  EXPECT_LT(num(shm, "runner_syscalls_per_msg"), 0.05) << shm.dump();
  EXPECT_LT(num(shm, "peer_syscalls_per_msg"), 0.05) << shm.dump();
}

// ipcbench's own system calls, counted where it makes them, are on every
// row whatever the tracepoint allows: a sync pipe round trip is one writev
// and one read on each side (the peer's span also holds its stats reply and
// the next stats request), the spinning ring none at all.
TEST_F(Measurement, IpcbenchsOwnSyscallsAreCountedEverywhere) {
  const json doc =
      run("--mechanisms pipe,shm-spin --modes sync --patterns latency --sizes 64 --min-time 0.05",
          "own-syscalls");
  const json pipe = row(doc, "pipe/sync/latency/64");
  EXPECT_DOUBLE_EQ(num(pipe, "runner_own_syscalls_per_msg"), 2.0) << pipe.dump();
  const double messages = num(pipe, "messages");
  ASSERT_GT(messages, 0) << pipe.dump();
  EXPECT_DOUBLE_EQ(num(pipe, "peer_own_syscalls_per_msg"), (2 * messages + 2) / messages)
      << pipe.dump();
  const json shm = row(doc, "shm-spin/sync/latency/64");
  EXPECT_DOUBLE_EQ(num(shm, "runner_own_syscalls_per_msg"), 0.0) << shm.dump();
  EXPECT_DOUBLE_EQ(num(shm, "peer_own_syscalls_per_msg"), 0.0) << shm.dump();
}

// The bare reference loop's peer is a fork of the runner (its command line
// is the runner's), the case's peer an exec of "ipcbench peer": the running
// children of `runner` that are not peers. Between its fork and its exec the
// case's peer has the runner's command line too, so none is returned until
// the case's peer has exec'd (it has said hello before the bare pair is
// made).
static std::vector<pid_t> bare_peers_of(pid_t runner) {
  using namespace testproc;
  std::vector<pid_t> out;
  bool case_peer = false;
  for (const auto& [pid, st] : live_children(runner)) {
    if (is_peer_cmdline(proc_cmdline(pid))) {
      case_peer = true;
    } else {
      out.push_back(pid);
    }
  }
  return case_peer ? out : std::vector<pid_t>{};
}

// A bare reference loop whose peer stops answering (stopped by SIGSTOP)
// is ended by the watchdog after --timeout: the case keeps its figures and
// says why it has no adapter_ratio; the run does not hang.
TEST_F(Measurement, AStalledBareLoopEndsWithANoteNotAHang) {
  const std::string out = out_path("stalled");
  // In the background (testproc::spawn): the test stops its bare peer while it runs.
  const pid_t runner = testproc::spawn(
      {IPCBENCH_BINARY, "run", "--mechanisms", "pipe", "--modes", "sync", "--patterns", "latency",
       "--sizes", "64", "--min-time", "0.5", "--timeout", "2", "--no-calibration", "--out", out},
      {.out_path = log_path("stalled"), .err_path = log_path("stalled")});
  ASSERT_GT(runner, 0);
  // The bare peer exists from the case's start, before its first block.
  std::vector<pid_t> bare;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int status = 0;
  bool exited = false;
  while (bare.empty() && std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(runner, &status, WNOHANG) == runner) {
      exited = true;
      break;
    }
    bare = bare_peers_of(runner);
    if (bare.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_FALSE(exited) << "the run ended before its bare peer was seen\n"
                       << read_file(log_path("stalled"));
  ASSERT_EQ(bare.size(), 1u) << "expected one bare peer of the runner";
  ASSERT_EQ(::kill(bare[0], SIGSTOP), 0);
  // The run must end by itself: the trial, then the bare block stalls for
  // --timeout (2 s) and is killed. 60 s is far beyond that.
  const auto end_by = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!exited && std::chrono::steady_clock::now() < end_by) {
    if (::waitpid(runner, &status, WNOHANG) == runner) {
      exited = true;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (!exited) {
    ::kill(runner, SIGKILL);
    ::kill(bare[0], SIGKILL);
    ::waitpid(runner, &status, 0);
    FAIL() << "the run hung on a stopped bare peer\n" << read_file(log_path("stalled"));
  }
  ASSERT_TRUE(WIFEXITED(status)) << read_file(log_path("stalled"));
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_file(log_path("stalled"));
  const json doc = json::parse(read_file(out));
  const json r = row(doc, "pipe/sync/latency/64");
  EXPECT_FALSE(r.value("error_occurred", false)) << r.dump();
  EXPECT_GT(num(r, "p50_ns"), 0) << r.dump();
  EXPECT_FALSE(r.contains("adapter_ratio")) << r.dump();
  // Stopped during a block ("failed") or while it started ("could not start").
  EXPECT_NE(str(r, "adapter_note").find("the bare reference loop"), std::string::npos) << r.dump();
  EXPECT_NE(::kill(bare[0], 0), 0) << "the stopped bare peer was left behind";
}
