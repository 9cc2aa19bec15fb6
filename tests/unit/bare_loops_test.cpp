// Bare reference loops: every family answers latency and stream blocks, the
// peer process and every descriptor are gone after the pair, and a peer
// killed mid-use makes the next block fail promptly instead of hanging.
#include "bench/measure/bare_loops.hpp"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <ostream>
#include <string>
#include <system_error>
#include <vector>

#include "bench/cli/bare_command.hpp"
#include "bench/core/sysinfo.hpp"

namespace ipcbench {
namespace {

const Clock& clock() {
  static const Clock c = Clock::calibrate();
  return c;
}

int open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

}  // namespace

// Test names and messages say "tcp", not "4-byte object <02-00 00-00>".
void PrintTo(BareFamily family, std::ostream* os) { *os << bare_family_name(family); }

namespace {

// True once `pid` is no child of ours any more (reaped).
bool reaped(pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) == -1 && errno == ECHILD; }

class BareLoops : public testing::TestWithParam<BareFamily> {
 protected:
  void SetUp() override {
    allowed_ = allowed_cpus();
    ASSERT_FALSE(allowed_.empty());
    runner_ = allowed_[0];
    peer_ = allowed_.size() > 1 ? allowed_[1] : allowed_[0];
    pin_current_thread(runner_);
    fds_before_ = open_fds();
  }
  void TearDown() override {
    set_thread_affinity(allowed_);
    EXPECT_EQ(open_fds(), fds_before_) << "a descriptor leaked";
  }

  std::vector<int> allowed_;
  int runner_ = -1;
  int peer_ = -1;
  int fds_before_ = 0;
};

TEST_P(BareLoops, LatencyBlockAnswersEveryRoundTrip) {
  BarePair pair(GetParam(), 64, runner_, peer_, clock());
  const BareLatency r = pair.run_latency_block(1000);
  if (GetParam() == BareFamily::kUdp) {
    EXPECT_EQ(r.round_trips + r.lost, 1000u);
    EXPECT_GT(r.round_trips, 0u);
  } else {
    EXPECT_EQ(r.round_trips, 1000u);
    EXPECT_EQ(r.lost, 0u);
  }
  EXPECT_GT(r.p50_ns, 0);
  EXPECT_LE(r.min_ns, r.p50_ns);
  EXPECT_LE(r.p50_ns, r.mean_ns * 10);
  EXPECT_GT(r.seconds, 0);
  // A second block on the same pair and peer.
  EXPECT_GT(pair.run_latency_block(100).round_trips, 0u);
}

TEST_P(BareLoops, StreamBlocksDeliverSmallAndLargeMessages) {
  const bool udp = GetParam() == BareFamily::kUdp;
  const std::size_t large = udp ? 16 * 1024 : 64 * 1024;  // udp carries 65507 at most
  for (const auto& [size, count] : {std::pair<std::size_t, std::uint64_t>{64, 10000},
                                    std::pair<std::size_t, std::uint64_t>{large, 100}}) {
    SCOPED_TRACE(std::to_string(size) + " B");
    BarePair pair(GetParam(), size, runner_, peer_, clock());
    const BareStream r = pair.run_stream_block(count);
    EXPECT_EQ(r.sent, count);
    if (udp) {
      EXPECT_GT(r.messages, 0u);
      EXPECT_LE(r.messages, count);
    } else {
      EXPECT_EQ(r.messages, count);
    }
    EXPECT_GT(r.seconds, 0);
    EXPECT_GT(r.bytes_per_second, 0);
    EXPECT_NEAR(r.bytes_per_second, r.messages_per_second * static_cast<double>(size),
                r.bytes_per_second * 1e-9);
  }
}

TEST_P(BareLoops, TimedRunsLastAtLeastTheDuration) {
  // Only lower bounds: on a busy VM even the first 64 round trips may take 50 ms.
  BarePair pair(GetParam(), 256, runner_, peer_, clock());
  const BareLatency l = pair.run_latency_for(std::chrono::milliseconds(50));
  EXPECT_GE(l.seconds, 0.05);
  EXPECT_GE(l.round_trips + l.lost, 64u);
  const BareStream s = pair.run_stream_for(std::chrono::milliseconds(50));
  EXPECT_GE(s.sent, 64u);
  EXPECT_GT(s.bytes_per_second, 0);
}

TEST_P(BareLoops, ThePeerAndItsDescriptorsAreGoneAfterThePair) {
  pid_t pid = -1;
  {
    BarePair pair(GetParam(), 64, runner_, peer_, clock());
    pid = pair.peer_pid();
    ASSERT_GT(pid, 0);
    EXPECT_EQ(::kill(pid, 0), 0) << "the peer lives as long as the pair";
    pair.run_latency_block(10);
    EXPECT_GT(open_fds(), fds_before_);
  }
  EXPECT_TRUE(reaped(pid)) << "the peer was not reaped";
  EXPECT_EQ(open_fds(), fds_before_);
}

TEST_P(BareLoops, APeerKilledMidUseFailsTheNextBlockPromptly) {
  for (const bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream block" : "latency block");
    pid_t pid = -1;
    {
      BarePair pair(GetParam(), 1024, runner_, peer_, clock());
      pid = pair.peer_pid();
      pair.run_latency_block(100);
      ASSERT_EQ(::kill(pid, SIGKILL), 0);
      const auto t0 = std::chrono::steady_clock::now();
      std::string what;
      try {
        if (stream) {
          pair.run_stream_block(100000);
        } else {
          pair.run_latency_block(100000);
        }
      } catch (const std::system_error& e) {
        what = e.what();
      }
      const auto took = std::chrono::steady_clock::now() - t0;
      EXPECT_NE(what, "") << "the block did not fail";
      EXPECT_NE(what.find(std::string("bare ") + bare_family_name(GetParam()) + " loop: "),
                std::string::npos)
          << what;
      EXPECT_LT(took, std::chrono::seconds(3)) << what;
      // Unusable from now on, at once.
      EXPECT_THROW(pair.run_latency_block(1), std::system_error);
    }
    EXPECT_TRUE(reaped(pid));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, BareLoops,
                         testing::Values(BareFamily::kPipe, BareFamily::kUnixStream,
                                         BareFamily::kTcp, BareFamily::kUdp),
                         [](const testing::TestParamInfo<BareFamily>& family_info) {
                           std::string name = bare_family_name(family_info.param);
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(BareFamilies, MechanismsMapToTheirKernelObjects) {
  EXPECT_EQ(bare_family_for("pipe"), BareFamily::kPipe);
  EXPECT_EQ(bare_family_for("fifo"), BareFamily::kPipe);
  EXPECT_EQ(bare_family_for("uds-stream"), BareFamily::kUnixStream);
  EXPECT_EQ(bare_family_for("tcp"), BareFamily::kTcp);
  EXPECT_EQ(bare_family_for("udp"), BareFamily::kUdp);
  for (const char* other : {"uds-dgram", "shm-spin", "zmq-tcp", "", "TCP"}) {
    EXPECT_EQ(bare_family_for(other), std::nullopt) << other;
  }
  for (BareFamily f :
       {BareFamily::kPipe, BareFamily::kUnixStream, BareFamily::kTcp, BareFamily::kUdp}) {
    EXPECT_EQ(parse_bare_family(bare_family_name(f)), f);
  }
  EXPECT_STREQ(bare_family_name(BareFamily::kUnixStream), "unix-stream");
}

TEST(BarePairSetup, RefusesBadArgumentsBeforeStartingAnything) {
  const int before = open_fds();
  EXPECT_THROW(BarePair(BareFamily::kTcp, 0, -1, -1, clock()), std::invalid_argument);
  EXPECT_THROW(BarePair(BareFamily::kUdp, 65508, -1, -1, clock()), std::invalid_argument);
  EXPECT_THROW(BarePair(BareFamily::kPipe, 64, -1, -2, clock()), std::invalid_argument);
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() > 1) {
    // The caller pins its thread; an unpinned thread under a runner CPU is refused.
    EXPECT_THROW(BarePair(BareFamily::kPipe, 64, cpus[0], cpus[1], clock()), std::invalid_argument);
  }
  EXPECT_EQ(open_fds(), before);
}

TEST(BarePairSetup, UnpinnedPairsWork) {
  BarePair pair(BareFamily::kUnixStream, 64, -1, -1, clock());
  EXPECT_EQ(pair.run_latency_block(100).round_trips, 100u);
}

// `ipcbench bare` through its subcommand alone (bench/cli/bare_command.cpp;
// cli.cpp wires it into the binary).
int parse_bare(std::vector<std::string> args) {
  CLI::App app{"test"};
  app.require_subcommand(1);
  add_bare_command(app);
  args.insert(args.begin(), {"ipcbench", "bare"});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::dup2(2, 1);  // the JSON line too, where the death test can match it
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "parse error: %s\n", e.what());
    std::exit(app.exit(e) == 0 ? 0 : 2);
  }
  return 99;  // the callback ends the process; reaching here is a failure
}

TEST(BareCommand, PrintsOneJsonLine) {
  EXPECT_EXIT(parse_bare({"--family", "tcp", "--pattern", "latency", "--seconds", "0.05"}),
              testing::ExitedWithCode(0),
              R"(\{"family":"tcp".*"p50_ns":[0-9.e+]+.*"round_trips":[0-9]+)");
  EXPECT_EXIT(parse_bare({"--family", "unix-stream", "--pattern", "throughput", "--size", "4KiB",
                          "--seconds", "0.05"}),
              testing::ExitedWithCode(0),
              R"(\{"bytes_per_second":[0-9.e+]+,"family":"unix-stream".*"size":4096)");
}

TEST(BareCommand, BadInputIsOneLineAndExitTwo) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--family", "sctp", "--pattern", "latency"}, "unknown --family 'sctp'"},
      {{"--family", "tcp", "--pattern", "burst"}, "unknown --pattern 'burst'"},
      {{"--family", "udp", "--pattern", "latency", "--size", "64KiB"}, "larger than udp carries"},
      {{"--family", "tcp", "--pattern", "latency", "--size", "0"}, "--size"},
      {{"--family", "tcp", "--pattern", "latency", "--cpus", "0"}, "two CPUs"},
      {{"--family", "tcp", "--pattern", "latency", "--cpus", "0,4095"}, "CPU 4095"},
      {{"--family", "tcp", "--pattern", "latency", "--seconds", "0"}, "--seconds"},
      {{"--pattern", "latency"}, "--family"},
  };
  for (const auto& [args, text] : cases) {
    EXPECT_EXIT(parse_bare(args), testing::ExitedWithCode(2), text) << text;
  }
}

}  // namespace
}  // namespace ipcbench
