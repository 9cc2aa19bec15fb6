// Behavioural tests of the ipcbench command line, run as a user would run it: the built
// executable (IPCBENCH_BINARY) in a child process with its stdout and stderr captured. They
// check the list output, the result file's contract (in C++ and against docs/result.schema.json
// with tests/tools/validate_result.py), repetitions and aggregates, Google Benchmark flags after
// --, size units, every kind of bad input (exit 2, one error line, no output file), that Google
// Benchmark's compare.py reads the result files, the interrupted run, and that runs leave
// nothing behind.
//
// Every run uses a tiny --min-time so the whole binary stays well under a minute.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "../support/run.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Args = testproc::Args;
using testproc::describe;
using testproc::Interrupt;
using testproc::run_command;
using testproc::RunResult;

constexpr const char* kBinary = IPCBENCH_BINARY;
constexpr const char* kSourceDir = IPCBENCH_SOURCE_DIR;
constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-jsonschema
constexpr const char* kCompareScript = "/usr/share/benchmark/compare.py";
constexpr const char* kErrorPrefix = "ipcbench: error: ";

std::string schema_path() { return std::string(kSourceDir) + "/docs/result.schema.json"; }
std::string validator_path() { return std::string(kSourceDir) + "/tests/tools/validate_result.py"; }

// ---------------------------------------------------------------------------------------------
// Running a program: testproc::run_command (tests/support/run.hpp)

RunResult run_ipcbench(const Args& args, const std::optional<Interrupt>& interrupt = std::nullopt) {
  Args argv = {kBinary};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, interrupt);
}

// Runs the schema validator script on a result file.
RunResult validate(const std::string& result_file) {
  return run_command({kPython, validator_path(), schema_path(), result_file});
}

// ---------------------------------------------------------------------------------------------
// Files and directories

// The base directory ipcbench puts its run directories in (same rule as bench/cli/cli.cpp).
std::string run_dir_base() {
  const char* tmp = std::getenv("TMPDIR");
  return (tmp != nullptr && *tmp != '\0' && std::strlen(tmp) < 40) ? tmp : "/tmp";
}

// A private directory for one test's files, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string templ = run_dir_base() + "/cli_test.XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
      templ = "/nonexistent-cli-test-dir";
    }
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::optional<json> read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path;
    return std::nullopt;
  }
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << " is not JSON: " << e.what();
    return std::nullopt;
  }
}

void write_json(const std::string& path, const json& doc) {
  std::ofstream out(path);
  out << doc.dump(2) << "\n";
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// Entries named ipcbench.* in the run directory base (and /tmp): ipcbench's run directories,
// "ipcbench.<pid>.XXXXXX".
std::set<std::string> run_directories() {
  std::set<std::string> out;
  for (const std::string& base : {run_dir_base(), std::string("/tmp")}) {
    std::error_code ec;
    for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.starts_with("ipcbench.")) out.insert(it->path().string());
    }
  }
  return out;
}

// The pid in ".../ipcbench.<pid>.XXXXXX", or -1.
pid_t owner_of_run_directory(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  const std::size_t dot = name.find('.', 9);
  if (dot == std::string::npos) return -1;
  try {
    return static_cast<pid_t>(std::stol(name.substr(9, dot - 9)));
  } catch (const std::exception&) {
    return -1;
  }
}

// Pids of running "ipcbench peer ... --parent <parent>" processes.
std::vector<pid_t> peers_of(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::ifstream in(it->path() / "cmdline", std::ios::binary);
    std::vector<std::string> args;
    for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
    if (args.size() < 2 || args[1] != "peer") continue;
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "--parent" && args[i + 1] == std::to_string(parent)) {
        out.push_back(static_cast<pid_t>(std::stol(name)));
      }
    }
  }
  return out;
}

// Checks that the finished run `r` left nothing behind: no run directory of its own (the set of
// ipcbench.* entries is compared with `before`; only the entries named after r's pid are its
// own, others belong to runs outside this test), no temporary or probe file beside its output
// in `out_dir`, and no peer process.
void expect_no_leftovers(const RunResult& r, const std::set<std::string>& before,
                         const std::string& out_dir) {
  ASSERT_GT(r.pid, 0);
  for (const std::string& entry : run_directories()) {
    if (before.count(entry) == 0 && owner_of_run_directory(entry) == r.pid) {
      ADD_FAILURE() << "the finished run (pid " << r.pid << ") left its run directory " << entry;
    }
  }
  std::error_code ec;
  for (fs::directory_iterator it(out_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << "temporary file left: " << it->path();
    EXPECT_FALSE(name.starts_with(".ipcbench-probe-")) << "probe file left: " << it->path();
  }
  // A peer is killed when its runner dies; give an exiting one a moment to go.
  std::vector<pid_t> peers = peers_of(r.pid);
  for (int i = 0; i < 50 && !peers.empty(); ++i) {
    ::usleep(20'000);
    peers = peers_of(r.pid);
  }
  EXPECT_TRUE(peers.empty()) << peers.size() << " peer process(es) of run " << r.pid
                             << " still running, e.g. pid " << peers.front();
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& line : split(text, '\n')) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

std::vector<std::string> words_of(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Whether `value` occurs in `text` as a whole token: not run into letters or digits on either
// side (so "8" is found in "size '8' is too small" but not in "16-byte").
bool mentions(const std::string& text, const std::string& value) {
  for (std::size_t at = text.find(value); at != std::string::npos; at = text.find(value, at + 1)) {
    const bool left_ok = at == 0 || !std::isalnum(static_cast<unsigned char>(text[at - 1]));
    const std::size_t end = at + value.size();
    const bool right_ok =
        end == text.size() || !std::isalnum(static_cast<unsigned char>(text[end]));
    if (left_ok && right_ok) return true;
  }
  return false;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) out.push_back(c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The mechanism list (from 'ipcbench list --json')

struct MechanismInfo {
  std::string name;
  bool lossy = false;
  bool crosses_hosts = false;
};

std::vector<MechanismInfo> listed_mechanisms() {
  const RunResult r = run_ipcbench({"list", "--json"});
  EXPECT_EQ(r.status, 0) << r;
  std::vector<MechanismInfo> out;
  try {
    for (const json& m : json::parse(r.out)) {
      out.push_back({m.at("name").get<std::string>(), m.at("lossy").get<bool>(),
                     m.at("crosses_hosts").get<bool>()});
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "list --json: " << e.what() << "\n" << r;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checks of the result file's entries

std::string entry_label(const json& b) {
  return b.contains("name") && b["name"].is_string() ? b["name"].get<std::string>() : b.dump();
}

double number(const json& b, const char* key) {
  return b.contains(key) && b[key].is_number() ? b[key].get<double>() : std::nan("");
}

bool is_measured_iteration(const json& b) {
  return b.value("run_type", "") == "iteration" && !b.value("skipped", false) &&
         !b.value("error_occurred", false);
}

const char* const kCounterFields[] = {"messages",
                                      "messages_lost",
                                      "bytes_per_second",
                                      "items_per_second",
                                      "runner_cpu_ns_per_msg",
                                      "peer_cpu_ns_per_msg",
                                      "runner_ctx_switches_per_msg",
                                      "peer_ctx_switches_per_msg"};
const char* const kLatencyFields[] = {"samples", "min_ns",   "p50_ns", "p90_ns",  "p99_ns",
                                      "p999_ns", "p9999_ns", "max_ns", "mean_ns", "stddev_ns"};

// Every field the contract requires of an entry, with its type: the C++ twin of the schema's
// rules for benchmark entries.
void expect_required_fields(const json& b) {
  SCOPED_TRACE(entry_label(b));
  ASSERT_TRUE(b.is_object());
  for (const char* key : {"name", "run_name", "mechanism", "mode", "pattern"}) {
    ASSERT_TRUE(b.contains(key) && b[key].is_string()) << key;
    EXPECT_FALSE(b[key].get<std::string>().empty()) << key;
  }
  ASSERT_TRUE(b.contains("run_type") && b["run_type"].is_string());
  EXPECT_TRUE(b["run_type"] == "iteration" || b["run_type"] == "aggregate") << b["run_type"];
  ASSERT_TRUE(b.contains("iterations") && b["iterations"].is_number_integer());
  EXPECT_GE(b["iterations"].get<std::int64_t>(), 0);
  for (const char* key : {"real_time", "cpu_time"}) {
    EXPECT_TRUE(b.contains(key) && b[key].is_number()) << key;
  }
  EXPECT_EQ(b.value("time_unit", ""), "ns");
  ASSERT_TRUE(b.contains("message_size") && b["message_size"].is_number_integer());
  EXPECT_GE(b["message_size"].get<std::int64_t>(), 16);
  ASSERT_TRUE(b.contains("placement") && b["placement"].is_string());
  const std::string placement = b["placement"];
  EXPECT_TRUE(placement == "cross-cpu" || placement == "same-cpu" || placement == "unpinned")
      << placement;
  ASSERT_TRUE(b.contains("cpus") && b["cpus"].is_array());
  for (const json& c : b["cpus"]) EXPECT_TRUE(c.is_number_integer() && c.get<int>() >= 0) << c;

  if (b.value("skipped", false)) {
    EXPECT_TRUE(b.contains("skip_message") && b["skip_message"].is_string());
    EXPECT_FALSE(b.contains("error_occurred"));
  }
  if (b.value("error_occurred", false)) {
    EXPECT_TRUE(b.contains("error_message") && b["error_message"].is_string());
  }
  if (!is_measured_iteration(b)) return;
  for (const char* key : kCounterFields) {
    ASSERT_TRUE(b.contains(key) && b[key].is_number()) << key;
    EXPECT_GE(b[key].get<double>(), 0) << key;
  }
  if (b["pattern"] != "latency") return;
  for (const char* key : kLatencyFields) {
    ASSERT_TRUE(b.contains(key) && b[key].is_number()) << key;
    EXPECT_GE(b[key].get<double>(), 0) << key;
  }
  ASSERT_TRUE(b.contains("histogram") && b["histogram"].is_array());
  ASSERT_GE(b["histogram"].size(), 2u);
  for (const json& point : b["histogram"]) {
    ASSERT_TRUE(point.is_object());
    ASSERT_TRUE(point.contains("percentile") && point["percentile"].is_number());
    ASSERT_TRUE(point.contains("value_ns") && point["value_ns"].is_number());
    EXPECT_GE(point["percentile"].get<double>(), 0);
    EXPECT_LE(point["percentile"].get<double>(), 100);
    EXPECT_GE(point["value_ns"].get<double>(), 0);
  }
}

// The spectrum is ordered: percentiles rise, values never fall.
void expect_ordered_histogram(const json& histogram) {
  for (std::size_t i = 1; i < histogram.size(); ++i) {
    EXPECT_LT(histogram[i - 1]["percentile"].get<double>(),
              histogram[i]["percentile"].get<double>())
        << "at point " << i;
    EXPECT_LE(histogram[i - 1]["value_ns"].get<double>(), histogram[i]["value_ns"].get<double>())
        << "at point " << i;
  }
}

// The histogram's value at exactly `percentile`, if it has that point.
std::optional<double> spectrum_at(const json& histogram, double percentile) {
  for (const json& point : histogram) {
    if (point["percentile"].get<double>() == percentile) return point["value_ns"].get<double>();
  }
  return std::nullopt;
}

// Checks one measured latency iteration entry's statistics against each other.
void expect_consistent_latency(const json& b) {
  SCOPED_TRACE(entry_label(b));
  const double min = number(b, "min_ns"), p50 = number(b, "p50_ns"), p90 = number(b, "p90_ns"),
               p99 = number(b, "p99_ns"), p999 = number(b, "p999_ns"),
               p9999 = number(b, "p9999_ns"), max = number(b, "max_ns");
  EXPECT_LE(min, p50);
  EXPECT_LE(p50, p90);
  EXPECT_LE(p90, p99);
  EXPECT_LE(p99, p999);
  EXPECT_LE(p999, p9999);
  EXPECT_LE(p9999, max);
  EXPECT_GT(min, 0) << "a round trip through the kernel takes time";
  EXPECT_EQ(number(b, "samples"), number(b, "messages"));
  EXPECT_LE(min, number(b, "mean_ns"));
  EXPECT_LE(number(b, "mean_ns"), max);
  // real_time is the timed span per round trip, i.e. the mean round-trip time; the histogram's
  // mean is within a bucket's width (< 1%) of it.
  EXPECT_NEAR(number(b, "mean_ns"), number(b, "real_time"), 0.02 * number(b, "real_time"));

  const json& h = b["histogram"];
  expect_ordered_histogram(h);
  EXPECT_EQ(h.front()["value_ns"].get<double>(), min) << "percentile 0 is the minimum";
  EXPECT_EQ(h.back()["value_ns"].get<double>(), max) << "percentile 100 is the maximum";
  EXPECT_EQ(h.front()["percentile"].get<double>(), 0);
  EXPECT_EQ(h.back()["percentile"].get<double>(), 100);
  for (const auto& [percentile, key] : {std::pair{50.0, "p50_ns"}, std::pair{90.0, "p90_ns"},
                                        std::pair{99.0, "p99_ns"}, std::pair{99.9, "p999_ns"}}) {
    const std::optional<double> v = spectrum_at(h, percentile);
    if (v) {
      EXPECT_EQ(*v, number(b, key)) << "histogram at " << percentile << " vs " << key;
    }
  }
}

// Counts and rates of one measured iteration entry agree with each other and with its size.
void expect_consistent_counters(const json& b, bool lossy) {
  SCOPED_TRACE(entry_label(b));
  const double messages = number(b, "messages");
  EXPECT_GT(messages, 0);
  EXPECT_TRUE(b["messages"].is_number_integer()) << "a count is a whole number";
  EXPECT_EQ(messages, b["iterations"].get<double>()) << "one iteration is one message";
  if (!lossy) {
    EXPECT_EQ(number(b, "messages_lost"), 0);
  }
  const double size = b["message_size"].get<double>();
  const double per_message = b["pattern"] == "latency" ? 2 * size : size;
  const double items = number(b, "items_per_second");
  EXPECT_NEAR(number(b, "bytes_per_second"), items * per_message, 1e-6 * items * per_message);
  // real_time (ns per message) and items_per_second come from the same timed span.
  EXPECT_NEAR(items * number(b, "real_time"), 1e9, 1e3);
}

// Splits "<mechanism>/<mode>/<pattern>/<size>/manual_time" and checks the entry's fields
// against it.
void expect_fields_match_name(const json& b) {
  SCOPED_TRACE(entry_label(b));
  const std::string run_name = b["run_name"];
  const std::vector<std::string> parts = split(run_name, '/');
  ASSERT_EQ(parts.size(), 5u) << run_name;
  EXPECT_EQ(b["mechanism"], parts[0]);
  EXPECT_EQ(b["mode"], parts[1]);
  EXPECT_EQ(b["pattern"], parts[2]);
  EXPECT_EQ(std::to_string(b["message_size"].get<std::uint64_t>()), parts[3]);
  EXPECT_EQ(parts[4], "manual_time");
  if (b["run_type"] == "iteration") {
    EXPECT_EQ(b["name"], run_name);
  } else {
    EXPECT_EQ(b["name"], run_name + "_" + b.value("aggregate_name", "?"));
  }
}

// The entry's CPUs: two of them, and the placement says whether they are one or two.
void expect_placement(const json& b, const json& requested_cpus) {
  SCOPED_TRACE(entry_label(b));
  ASSERT_EQ(b["cpus"].size(), 2u);
  EXPECT_EQ(b["cpus"], requested_cpus) << "each side runs on the CPU it was pinned to";
  EXPECT_EQ(b["placement"], b["cpus"][0] == b["cpus"][1] ? "same-cpu" : "cross-cpu");
}

// ---------------------------------------------------------------------------------------------
// The short run shared by several tests: 3 mechanisms x 2 patterns x 2 sizes, run once per
// test process.

const Args kShortRunMechanisms = {"pipe", "uds-stream", "tcp"};

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
      std::ifstream in(out_);
      try {
        doc_ = new json(json::parse(in));
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
  ASSERT_EQ(lines.size(), mechanisms.size() + 1) << table.out;
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
    for (const char* key : {"crosses_hosts", "pollable", "lossy"}) {
      EXPECT_TRUE(m.contains(key) && m[key].is_boolean()) << key;
    }
  }
}

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
// Repetitions, filters, sizes

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

// ---------------------------------------------------------------------------------------------
// --out and what is at its path: never replace a device node, a FIFO or a symlink

// The smallest real run, writing its result to `out`.
RunResult run_small(const std::string& out) {
  return run_ipcbench({"run", "--mechanisms", "pipe", "--modes", "sync", "--patterns", "latency",
                       "--sizes", "64", "--min-time", "0.02", "--no-calibration", "--out", out});
}

// The file type of `path` itself (a symlink is not followed).
fs::file_type type_of(const std::string& path) { return fs::symlink_status(path).type(); }

// Checks that `text` is a whole, complete result.
void expect_complete_result(const std::string& text, const std::string& where) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << where << " is not JSON (" << e.what() << "):\n" << text;
    return;
  }
  EXPECT_EQ(doc["ipcbench"]["complete"], true) << where;
  EXPECT_EQ(doc["benchmarks"].size(), 1u) << where;
}

// Makes a character device node in the test's directory, or says why not.
std::string make_char_device(const TempDir& dir, const std::string& name, unsigned minor) {
  const std::string path = dir.file(name);
  if (::mknod(path.c_str(), S_IFCHR | 0666, ::makedev(1, minor)) != 0) return {};
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {  // e.g. a nodev mount
    ::unlink(path.c_str());
    return {};
  }
  ::close(fd);
  return path;
}

TEST(OutPaths, DashWritesTheResultAloneToStdout) {
  const RunResult r = run_small("-");
  EXPECT_EQ(r.status, 0) << r;
  expect_complete_result(r.out, "stdout");
  EXPECT_NE(r.err.find("pipe/sync/latency/64"), std::string::npos)
      << "the console output goes to stderr\n"
      << r;
}

TEST(OutPaths, DevStdoutIsWrittenThroughTheDescriptor) {
  const RunResult r = run_small("/dev/stdout");
  EXPECT_EQ(r.status, 0) << r;
  expect_complete_result(r.out, "stdout");
}

TEST(OutPaths, FifoWithAReaderGetsTheResultAndStaysAFifo) {
  TempDir dir;
  const std::string fifo = dir.file("result.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  // The reader is open before the run starts (the handshake ipcbench needs):
  // a non-blocking open for reading succeeds without a writer.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0) << std::strerror(errno);
  std::atomic<bool> run_over{false};
  std::string received;
  std::thread drain([&] {  // drains while the run writes (the JSON may exceed the pipe buffer)
    char buf[65536];
    for (;;) {
      const bool over = run_over.load();
      const ssize_t n = ::read(reader, buf, sizeof buf);
      if (n > 0) {
        received.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (over) break;  // the writer is gone and everything was read
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  const RunResult r = run_small(fifo);
  run_over.store(true);
  drain.join();
  ::close(reader);
  EXPECT_EQ(r.status, 0) << r;
  expect_complete_result(received, "the FIFO's reader");
  EXPECT_EQ(type_of(fifo), fs::file_type::fifo) << "the FIFO was replaced";
}

TEST(OutPaths, FifoWithoutAReaderIsRefusedBeforeAnythingRuns) {
  TempDir dir;
  const std::string fifo = dir.file("nobody.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const auto before = run_directories();
  const RunResult r = run_small(fifo);
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line\n" << r;
  EXPECT_TRUE(r.err.starts_with(kErrorPrefix)) << r;
  EXPECT_TRUE(mentions(r.err, fifo)) << r;
  EXPECT_NE(r.err.find("no reader"), std::string::npos) << r;
  EXPECT_EQ(r.err.find("Running"), std::string::npos) << "nothing ran\n" << r;
  EXPECT_EQ(type_of(fifo), fs::file_type::fifo);
  expect_no_leftovers(r, before, dir.path());
}

TEST(OutPaths, SymlinkStaysALinkAndItsTargetIsReplaced) {
  TempDir dir;
  fs::create_directory(dir.file("real"));
  const std::string target = dir.file("real/result.json");
  write_json(target, json{{"old", true}});
  const std::string link = dir.file("latest.json");
  fs::create_symlink("real/result.json", link);  // relative, as people make them
  const RunResult r = run_small(link);
  EXPECT_EQ(r.status, 0) << r;
  EXPECT_EQ(type_of(link), fs::file_type::symlink) << "the link was replaced by a file";
  EXPECT_EQ(fs::read_symlink(link), "real/result.json");
  std::ifstream in(target);
  std::stringstream text;
  text << in.rdbuf();
  expect_complete_result(text.str(), target);
  // No temporary file left beside the link or the target.
  std::set<std::string> top, real;
  for (const auto& e : fs::directory_iterator(dir.path())) top.insert(e.path().filename());
  for (const auto& e : fs::directory_iterator(dir.file("real"))) real.insert(e.path().filename());
  EXPECT_EQ(top, (std::set<std::string>{"latest.json", "real"}));
  EXPECT_EQ(real, (std::set<std::string>{"result.json"}));
}

TEST(OutPaths, DanglingSymlinkGetsItsTargetCreated) {
  TempDir dir;
  const std::string link = dir.file("latest.json");
  fs::create_symlink(dir.file("new.json"), link);
  const RunResult r = run_small(link);
  EXPECT_EQ(r.status, 0) << r;
  EXPECT_EQ(type_of(link), fs::file_type::symlink);
  const auto doc = read_json(dir.file("new.json"));
  ASSERT_TRUE(doc) << r;
  EXPECT_EQ((*doc)["ipcbench"]["complete"], true);
}

TEST(OutPaths, CharacterDeviceIsWrittenThroughNotReplaced) {
  TempDir dir;
  const std::string null = make_char_device(dir, "null", 3);
  if (null.empty()) GTEST_SKIP() << "cannot make a usable device node here (needs root, no nodev)";
  const RunResult r = run_small(null);
  EXPECT_EQ(r.status, 0) << r;
  EXPECT_EQ(type_of(null), fs::file_type::character) << "the device node was replaced";
  struct stat st {};
  ASSERT_EQ(::stat(null.c_str(), &st), 0);
  EXPECT_EQ(st.st_rdev, ::makedev(1, 3));
}

TEST(OutPaths, WriteThatFailsAtTheEndExitsOneWithOneLine) {
  TempDir dir;
  const std::string full = make_char_device(dir, "full", 7);  // like /dev/full: ENOSPC
  if (full.empty()) GTEST_SKIP() << "cannot make a usable device node here (needs root, no nodev)";
  const RunResult r = run_small(full);
  EXPECT_EQ(r.status, 1) << r;
  const std::string line =
      std::string(kErrorPrefix) + "cannot write " + full + ": " + std::strerror(ENOSPC) + "\n";
  EXPECT_NE(r.err.find(line), std::string::npos) << "expected: " << line << r;
  EXPECT_EQ(r.err.find("wrote"), std::string::npos) << r;
  EXPECT_EQ(type_of(full), fs::file_type::character);
}

TEST(OutPaths, BlockDeviceIsRefusedBeforeAnythingRuns) {
  TempDir dir;
  const std::string disk = dir.file("disk");
  if (::mknod(disk.c_str(), S_IFBLK | 0600, ::makedev(7, 0)) != 0) {
    GTEST_SKIP() << "cannot make a device node here: " << std::strerror(errno);
  }
  const RunResult r = run_small(disk);
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_TRUE(mentions(r.err, disk)) << r;
  EXPECT_NE(r.err.find("block device"), std::string::npos) << r;
  EXPECT_EQ(type_of(disk), fs::file_type::block);
}

}  // namespace

namespace {

std::string slurp_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return "\n--- " + path + " ---\n" + ss.str();
}

// A free TCP port on loopback (bound once, then released).
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// `ipcbench serve` in the background, stopped with SIGTERM at the end.
class ServeProcess {
 public:
  explicit ServeProcess(const Args& args, const std::string& log) {
    std::vector<std::string> storage = {kBinary, "serve"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(log_fd, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
  }
  ~ServeProcess() { stop(); }
  // SIGTERM; returns the exit status (-1 if it had to be killed).
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      int ws = 0;
      if (::waitpid(pid_, &ws, WNOHANG) == pid_) {
        status_ = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        pid_ = -1;
        return status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    status_ = -1;
    return status_;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// Waits until `port` on loopback accepts connections (serve is up).
bool wait_listening(int port) {
  for (int i = 0; i < 500; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

// Across hosts on one host: serve on loopback, run --remote against it (the
// namespace tests in tests/remote/ do it over a real link, as root).
TEST(Remote, LoopbackServeMeasuresEveryHostCrossingMechanism) {
  TempDir dir;
  const int port = free_loopback_port();
  ASSERT_GT(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  ServeProcess serve({"--listen", address}, dir.file("serve.log"));
  ASSERT_TRUE(wait_listening(port)) << slurp_file(dir.file("serve.log"));
  const std::string out = dir.file("cross.json");
  const RunResult r =
      run_ipcbench({"run", "--remote", address, "--modes", "sync,async", "--sizes", "64",
                    "--min-time", "0.02", "--verify", "full", "--no-calibration", "--out", out});
  ASSERT_EQ(r.status, 0) << r << slurp_file(dir.file("serve.log"));
  const auto doc = read_json(out);
  ASSERT_TRUE(doc);
  ASSERT_TRUE((*doc)["ipcbench"].contains("remote"));
  EXPECT_EQ((*doc)["ipcbench"]["remote"]["address"], address);
  EXPECT_TRUE((*doc)["ipcbench"]["remote"]["host"].contains("kernel"));
  std::set<std::string> measured;
  for (const json& b : (*doc)["benchmarks"]) {
    SCOPED_TRACE(entry_label(b));
    EXPECT_EQ(b.value("across_hosts", false), true);
    EXPECT_TRUE(b["floor_ratio"].is_null());
    EXPECT_FALSE(b.contains("oneway_p50_ns"));
    if (is_measured_iteration(b)) measured.insert(b["mechanism"].get<std::string>());
  }
  std::set<std::string> crossing;
  for (const MechanismInfo& m : listed_mechanisms()) {
    if (m.crosses_hosts) crossing.insert(m.name);
  }
  EXPECT_EQ(measured, crossing);
  const RunResult v = validate(out);
  EXPECT_EQ(v.status, 0) << "the schema accepts a remote run\n" << v;
  EXPECT_EQ(serve.stop(), 0) << slurp_file(dir.file("serve.log"));
}

TEST(Remote, ServeOffLoopbackWithoutTokenIsRefused) {
  const RunResult r = run_ipcbench({"serve", "--listen", "0.0.0.0:7070"});
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_TRUE(r.err.starts_with(kErrorPrefix)) << r;
  EXPECT_TRUE(mentions(r.err, "--insecure")) << r;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
}

TEST(Remote, TokenFileReadableByOthersIsRefused) {
  TempDir dir;
  const std::string token = dir.file("token");
  { std::ofstream(token) << "secret\n"; }
  ::chmod(token.c_str(), 0644);
  const RunResult r = run_ipcbench({"serve", "--listen", "0.0.0.0:7070", "--token-file", token});
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_TRUE(mentions(r.err, "chmod 600")) << r;
  ::chmod(token.c_str(), 0600);
  const RunResult client = run_ipcbench({"run", "--remote", "127.0.0.1:1", "--mechanisms", "tcp",
                                         "--token-file", token + "-missing"});
  EXPECT_EQ(client.status, 2) << client;
}

TEST(Remote, WrongTokenFailsTheRunBeforeAnyCase) {
  TempDir dir;
  const int port = free_loopback_port();
  ASSERT_GT(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const std::string token = dir.file("token"), wrong = dir.file("wrong");
  std::ofstream(token) << "right-token\n";
  std::ofstream(wrong) << "wrong-token\n";
  ::chmod(token.c_str(), 0600);
  ::chmod(wrong.c_str(), 0600);
  ServeProcess serve({"--listen", address, "--token-file", token}, dir.file("serve.log"));
  ASSERT_TRUE(wait_listening(port));
  const std::string out = dir.file("r.json");
  const RunResult r =
      run_ipcbench({"run", "--remote", address, "--mechanisms", "tcp", "--sizes", "64",
                    "--min-time", "0.02", "--token-file", wrong, "--out", out});
  EXPECT_EQ(r.status, 1) << r;
  EXPECT_TRUE(mentions(r.err, "wrong token")) << r;
  EXPECT_EQ(r.err.find("Running"), std::string::npos) << "no case ran\n" << r;
  EXPECT_FALSE(fs::exists(out));
  // The same server still serves a client with the right token.
  const RunResult good =
      run_ipcbench({"run", "--remote", address, "--mechanisms", "tcp", "--modes", "sync",
                    "--patterns", "latency", "--sizes", "64", "--min-time", "0.02",
                    "--no-calibration", "--token-file", token, "--out", out});
  EXPECT_EQ(good.status, 0) << good << slurp_file(dir.file("serve.log"));
  EXPECT_EQ(serve.stop(), 0);
}
