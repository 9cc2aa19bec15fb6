// Bad input to `ipcbench run`: every kind (an unknown name, a malformed size, an impossible
// placement, a bad Google Benchmark flag after --, ...) exits 2 with one error line on stderr
// that names the offending value, before anything runs, and writes nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "../support/files.hpp"
#include "../support/ipcbench.hpp"
#include "../support/leftovers.hpp"
#include "../support/text.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace testproc;

// ---------------------------------------------------------------------------------------------
// Bad input: exit 2, one line on stderr naming the problem, nothing run, no output file

struct BadInput {
  const char* name;
  std::map<std::string, std::string> options;  // replace or add run options
  Args trailing;                               // appended after the options
  std::string offending;                       // must appear in the error line
};

std::ostream& operator<<(std::ostream& os, const BadInput& b) { return os << b.name; }

class BadInputTest : public ::testing::TestWithParam<BadInput> {};

// "@DIR@" stands for the test's temporary directory, "@CPU@" for a CPU the test may use.
std::string expand(std::string text, const TempDir& dir, int cpu) {
  for (const auto& [key, value] :
       {std::pair<std::string, std::string>{"@DIR@", dir.path()}, {"@CPU@", std::to_string(cpu)}}) {
    for (std::size_t at = text.find(key); at != std::string::npos; at = text.find(key)) {
      text.replace(at, key.size(), value);
    }
  }
  return text;
}

TEST_P(BadInputTest, ExitsTwoWithOneErrorLineNamingItAndWritesNothing) {
  const BadInput& param = GetParam();
  TempDir dir;
  fs::create_directory(dir.file("outdir"));
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());

  std::map<std::string, std::string> options = {
      {"--mechanisms", "pipe"}, {"--modes", "sync"},    {"--patterns", "latency"},
      {"--sizes", "64"},        {"--min-time", "0.02"}, {"--out", "@DIR@/out.json"}};
  for (const auto& [key, value] : param.options) options[key] = value;
  Args args = {"run"};
  for (const auto& [key, value] : options) {
    args.push_back(key);
    args.push_back(expand(value, dir, cpus.front()));
  }
  for (const std::string& a : param.trailing) args.push_back(expand(a, dir, cpus.front()));
  const std::string out = expand(options["--out"], dir, cpus.front());
  const std::string offending = expand(param.offending, dir, cpus.front());

  const auto before = run_directories();
  const RunResult r = run_ipcbench(args);
  SCOPED_TRACE(describe(args));
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_EQ(r.out, "") << "nothing ran, so nothing is reported\n" << r;
  EXPECT_EQ(r.err.find("Running"), std::string::npos) << "Google Benchmark did not start\n" << r;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line\n" << r;
  EXPECT_TRUE(r.err.starts_with(kErrorPrefix)) << r;
  EXPECT_TRUE(mentions(r.err, offending)) << "the error names '" << offending << "'\n" << r;

  if (fs::is_directory(out)) {
    EXPECT_TRUE(fs::is_empty(out)) << "nothing written into " << out;
  } else {
    EXPECT_FALSE(fs::exists(out)) << out;
  }
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    if (e.path().filename() != "outdir") left.push_back(e.path().filename());
  }
  EXPECT_TRUE(left.empty()) << "left in the output directory: " << describe(left);
  expect_no_leftovers(r, before, dir.path());
}

INSTANTIATE_TEST_SUITE_P(
    Cli, BadInputTest,
    ::testing::Values(
        BadInput{
            "UnknownMechanism", {{"--mechanisms", "pipe,carrier-pigeon"}}, {}, "carrier-pigeon"},
        BadInput{"UnknownPattern", {{"--patterns", "sideways"}}, {}, "sideways"},
        BadInput{"UnknownMode", {{"--modes", "telepathic"}}, {}, "telepathic"},
        BadInput{"MalformedSizeWithoutDigits", {{"--sizes", "64,abc"}}, {}, "abc"},
        BadInput{"MalformedSizeUnit", {{"--sizes", "12XB"}}, {}, "12XB"},
        BadInput{"SizeSmallerThanTheHeader", {{"--sizes", "8"}}, {}, "8"},
        BadInput{"ZeroSize", {{"--sizes", "0"}}, {}, "0"},
        BadInput{"SizeNoChosenMechanismCanCarry", {{"--sizes", "1GiB"}}, {}, "1GiB"},
        BadInput{"UnknownFlag", {}, {"--frobnicate"}, "--frobnicate"},
        BadInput{"CpuThatDoesNotExist", {{"--cpus", "@CPU@,999"}}, {}, "999"},
        BadInput{"OneCpuInsteadOfTwo", {{"--cpus", "@CPU@"}}, {}, "--cpus"},
        BadInput{"OutputInAMissingDirectory",
                 {{"--out", "/nonexistent-dir/r.json"}},
                 {},
                 "/nonexistent-dir/r.json"},
        BadInput{"OutputIsADirectory", {{"--out", "@DIR@/outdir"}}, {}, "@DIR@/outdir"},
        BadInput{"UnknownGoogleBenchmarkFlag",
                 {},
                 {"--", "--benchmark_nonsense=1"},
                 "--benchmark_nonsense=1"},
        BadInput{"NonBenchmarkArgumentAfterDoubleDash", {}, {"--", "--frobnicate"}, "--frobnicate"},
        BadInput{"UnknownVerify", {{"--verify", "sometimes"}}, {}, "sometimes"},
        BadInput{"ZeroMinTime", {{"--min-time", "0"}}, {}, "--min-time"},
        BadInput{"ZeroRepetitions", {{"--repetitions", "0"}}, {}, "--repetitions"},
        BadInput{"ZeroRate", {{"--rate", "0"}, {"--modes", "async"}}, {}, "--rate"},
        BadInput{"NegativeRate", {{"--rate", "-1"}, {"--modes", "async"}}, {}, "--rate"},
        BadInput{"SpinBudgetWithoutAMechanismThatTakesOne",
                 {{"--mechanisms", "pipe,shm-futex"}, {"--spin-budget", "100"}},
                 {},
                 "--spin-budget"},
        BadInput{"NegativeSpinBudget",
                 {{"--mechanisms", "shm-eventfd"}, {"--spin-budget", "-1"}},
                 {},
                 "--spin-budget"},
        BadInput{"SpinBudgetTooLarge",
                 {{"--mechanisms", "shm-eventfd"}, {"--spin-budget", "10000001"}},
                 {},
                 "--spin-budget"},
        BadInput{
            "UnknownEngine", {{"--engine", "poll,kqueue"}, {"--modes", "async"}}, {}, "kqueue"},
        BadInput{
            "EngineWithoutAsync", {{"--engine", "epoll"}, {"--modes", "sync"}}, {}, "--engine"},
        BadInput{"EngineWithoutAPollableMechanism",
                 {{"--engine", "io_uring"}, {"--modes", "async"}, {"--mechanisms", "shm-futex"}},
                 {},
                 "--engine"},
        BadInput{"UnknownPlacement", {{"--placement", "cross-cpu,sideways"}}, {}, "sideways"},
        BadInput{"CpusAndPlacementTogether",
                 {{"--cpus", "@CPU@,@CPU@"}, {"--placement", "same-cpu"}},
                 {},
                 "--placement"},
        BadInput{"RemoteWithAMechanismThatStaysOnOneHost",
                 {{"--remote", "127.0.0.1:7070"}, {"--mechanisms", "tcp,pipe"}},
                 {},
                 "pipe"},
        BadInput{"RemoteWithoutPort",
                 {{"--remote", "somehost"}, {"--mechanisms", "tcp"}},
                 {},
                 "somehost"},
        BadInput{"RemotePortOutOfRange",
                 {{"--remote", "127.0.0.1:99999"}, {"--mechanisms", "tcp"}},
                 {},
                 "99999"},
        BadInput{"TokenFileWithoutRemote", {{"--token-file", "@DIR@/token"}}, {}, "--token-file"},
        BadInput{"PeerExecutableThatIsNotAFile",
                 {{"--peer-executable", "@DIR@"}},
                 {},
                 "--peer-executable"},
        BadInput{"PeerExecutableWithRemote",
                 {{"--remote", "127.0.0.1:7070"},
                  {"--mechanisms", "tcp"},
                  {"--peer-executable", "/bin/true"}},
                 {},
                 "local runs"},
        BadInput{"RemoteTokenFileMissing",
                 {{"--remote", "127.0.0.1:7070"},
                  {"--mechanisms", "tcp"},
                  {"--token-file", "@DIR@/no-such-token"}},
                 {},
                 "@DIR@/no-such-token"}),
    [](const ::testing::TestParamInfo<BadInput>& p) { return std::string(p.param.name); });

TEST(Cli, UnknownMechanismExitsTwoAndNamesValidChoices) {
  TempDir dir;
  const std::string out = dir.file("out.json");
  const RunResult r =
      run_ipcbench({"run", "--mechanisms", "carrier-pigeon", "--min-time", "0.02", "--out", out});
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_TRUE(r.err.starts_with(kErrorPrefix)) << r;
  EXPECT_TRUE(mentions(r.err, "carrier-pigeon")) << r;
  const std::vector<MechanismInfo> mechanisms = listed_mechanisms();
  ASSERT_FALSE(mechanisms.empty());
  for (const MechanismInfo& m : mechanisms) {
    EXPECT_TRUE(mentions(r.err, m.name)) << "the error lists '" << m.name << "'\n" << r;
  }
  EXPECT_FALSE(fs::exists(out));
}

// Google Benchmark prints its own line to stderr for a known flag with a bad value ("The value
// of flag --benchmark_min_time is expected to be a double, ..."): the run must still end with
// ipcbench's one error line.
TEST(Cli, BadValueOfAGoogleBenchmarkFlagGivesOneErrorLine) {
  TempDir dir;
  const std::string out = dir.file("out.json");
  const RunResult r =
      run_ipcbench({"run", "--mechanisms", "pipe", "--patterns", "latency", "--sizes", "64",
                    "--min-time", "0.02", "--out", out, "--", "--benchmark_min_time=abc"});
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
  EXPECT_TRUE(r.err.starts_with(kErrorPrefix)) << r;
  EXPECT_TRUE(mentions(r.err, "--benchmark_min_time=abc")) << r;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
