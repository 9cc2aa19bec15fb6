#include "bench/cli/cli.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <system_error>

#include "bench/cli/bare_command.hpp"
#include "bench/control/control.hpp"
#include "bench/control/remote.hpp"
#include "bench/core/clock.hpp"
#include "bench/core/hgrm.hpp"
#include "bench/core/protocol.hpp"
#include "bench/core/settings.hpp"
#include "bench/core/sysinfo.hpp"
#include "bench/core/units.hpp"
#include "bench/engine/engine.hpp"
#include "bench/measure/bare_loops.hpp"
#include "bench/measure/calibration.hpp"
#include "bench/peer/peer.hpp"
#include "bench/run/output_file.hpp"
#include "bench/run/owners.hpp"
#include "bench/run/reporter.hpp"
#include "bench/run/runner.hpp"
#include "bench/serve/serve.hpp"
#ifdef IPCBENCH_HAVE_ICEORYX
#include "mechanisms/iceoryx/roudi.hpp"
#endif
#include "mechanisms/posix/object_log.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/registry.hpp"
#include "version.hpp"

namespace ipcbench {
namespace {

// A bad argument: what is wrong and the valid choices, on one line.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

// Picks items of a comma list from `valid`, in `valid`'s order; empty text
// means all of them.
std::vector<std::string> choose(const std::string& text, const std::vector<std::string>& valid,
                                const char* what) {
  if (text.empty()) return valid;
  std::set<std::string> chosen;
  for (const std::string& item : split_list(text)) {
    if (std::find(valid.begin(), valid.end(), item) == valid.end()) {
      throw UsageError("unknown " + std::string(what) + " '" + item + "' (valid: " + join(valid) +
                       ")");
    }
    chosen.insert(item);
  }
  std::vector<std::string> out;
  for (const auto& v : valid) {
    if (chosen.count(v)) out.push_back(v);
  }
  return out;
}

struct RunArgs {
  std::string mechanisms, modes, patterns, sizes, cpus, placement, out, verify = "header";
  std::string hgrm;         // --hgrm DIR
  bool load_sweep = false;  // --load-sweep given (with or without steps)
  std::string load_steps;   // --load-sweep=STEPS
  std::string slo;          // --slo pNN=TIME
  std::optional<double> slo_factor;
  std::string remote, token_file;
  std::string engine;  // unset: poll
  int remote_cpu = -1;
  bool no_calibration = false;
  double min_time = 0.2;
  std::optional<long long> window;       // unset: 1 (closed loop only)
  std::optional<long long> rate;         // unset: closed loop
  std::string in_flight_limit;           // unset: kDefaultInFlightBytes
  std::optional<long long> spin_budget;  // unset: 0
  int repetitions = 1;
  double timeout = 10;
  std::vector<std::string> passthrough;
  std::string peer_executable;
};

// The placements to run: `--cpus A,B` (one placement, named by whether A
// equals B) or `--placement` names; by default cross-cpu where two CPUs are
// available, else same-cpu.
std::vector<Placement> choose_placements(const std::string& names, const std::string& cpus_text,
                                         const std::vector<int>& allowed) {
  if (allowed.empty()) throw UsageError("cannot read this process's CPU affinity");
  std::vector<std::string> allowed_text;
  allowed_text.reserve(allowed.size());
  for (int c : allowed) allowed_text.push_back(std::to_string(c));
  if (!cpus_text.empty()) {
    if (!names.empty()) {
      throw UsageError(
          "--cpus and --placement exclude each other: --cpus A,B is a placement "
          "of its own (cross-cpu, or same-cpu when A equals B)");
    }
    std::vector<int> cpus;
    try {
      cpus = parse_cpu_list(cpus_text);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    if (cpus.size() != 2) {
      throw UsageError("--cpus takes two CPUs, runner and peer, like 0,1 (they may be equal)");
    }
    for (int c : cpus) {
      if (std::find(allowed.begin(), allowed.end(), c) == allowed.end()) {
        throw UsageError("CPU " + std::to_string(c) + " does not exist or is not available " +
                         "(available: " + join(allowed_text, ",") + ")");
      }
    }
    return {{cpus[0] == cpus[1] ? PlacementKind::kSameCpu : PlacementKind::kCrossCpu, cpus[0],
             cpus[1]}};
  }
  std::vector<std::string> chosen;
  if (names.empty()) {
    chosen = {allowed.size() > 1 ? "cross-cpu" : "same-cpu"};
  } else {
    chosen = choose(names, kPlacements, "placement");
  }
  std::vector<Placement> out;
  for (const std::string& name : chosen) {
    const PlacementKind kind = *named(kAllPlacements, name);  // choose() checked it
    if (kind == PlacementKind::kCrossCpu) {
      if (allowed.size() < 2) {
        throw UsageError(
            "cross-cpu placement needs two CPUs, but this process may only use "
            "CPU " +
            allowed_text.front() + " (use --placement same-cpu)");
      }
      out.push_back({kind, allowed[0], allowed[1]});
    } else if (kind == PlacementKind::kSameCpu) {
      out.push_back({kind, allowed[0], allowed[0]});
    } else {
      out.push_back({kind, -1, -1});
    }
  }
  return out;
}

// The shared token: --token-file FILE, else the environment's IPCBENCH_TOKEN,
// else none.
std::string read_token(const std::string& token_file) {
  if (!token_file.empty()) {
    try {
      return control::read_token_file(token_file);
    } catch (const std::runtime_error& e) {
      throw UsageError(e.what());
    }
  }
  const char* env = std::getenv("IPCBENCH_TOKEN");
  if (env == nullptr) return {};
  std::string token(env);
  if (token.size() > control::kMaxTokenBytes) {
    throw UsageError("IPCBENCH_TOKEN is longer than " + std::to_string(control::kMaxTokenBytes) +
                     " bytes");
  }
  return token;
}

std::pair<std::string, int> host_port_or_usage(const std::string& text, const char* option) {
  try {
    return control::split_host_port(text);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(option) + ": " + e.what());
  }
}

// `--hgrm DIR`: created when missing (with its parents); otherwise it must
// be a directory (or a link to one) this process can write into.
std::string hgrm_directory(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);  // follows links
  if (!fs::exists(st)) {
    if (fs::is_symlink(fs::symlink_status(dir, ec))) {
      throw UsageError("--hgrm " + dir + " is a link to nothing: give a directory");
    }
    if (!fs::create_directories(dir, ec) && ec) {
      throw UsageError("--hgrm " + dir + ": cannot create the directory: " + ec.message());
    }
  } else if (!fs::is_directory(st)) {
    throw UsageError("--hgrm " + dir +
                     " is not a directory: it takes a directory, for one .hgrm file per "
                     "latency case");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw UsageError("--hgrm " + dir + ": cannot write there: " + std::strerror(errno));
  }
  return dir;
}

// --load-sweep and its bound. The sweep is async latency only: the peak
// echo rate, the round trip, the unloaded open loop, then the open loop at each step.
void validate_load_sweep(const RunArgs& a, Settings& s) {
  if (!a.load_sweep) {
    if (!a.slo.empty() || a.slo_factor) {
      throw UsageError("--slo and --slo-factor set the bound of a load sweep: add --load-sweep");
    }
    return;
  }
  if (!a.modes.empty() || !a.patterns.empty()) {
    throw UsageError(
        "--load-sweep runs async latency only (the open loop at each step): leave out "
        "--modes and --patterns");
  }
  if (a.rate || a.window) {
    throw UsageError("--load-sweep sets each step's rate itself: leave out --rate and --window");
  }
  if (s.engines.size() > 1) {
    throw UsageError("--load-sweep runs on one engine: give --engine a single one");
  }
  s.load_sweep = true;
  s.modes = {Mode::kAsync};
  s.patterns = {Pattern::kLatency};
  try {
    s.ladder = a.load_steps.empty() ? default_ladder() : parse_ladder(a.load_steps);
    if (!a.slo.empty()) s.slo = parse_slo(a.slo);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (a.slo_factor) {
    if (!a.slo.empty()) {
      throw UsageError("--slo gives an absolute bound and --slo-factor a relative one: keep one");
    }
    if (!(*a.slo_factor > 1 && *a.slo_factor <= 1000)) {
      throw UsageError(
          "--slo-factor must be above 1 (a bound above the unloaded figure) and at "
          "most 1000");
    }
    s.slo.factor = *a.slo_factor;
  }
}

Settings validate(const RunArgs& a, int argc, char** argv) {
  Settings s;
  for (int i = 0; i < argc; ++i) s.command_line.emplace_back(argv[i]);
  if (!a.remote.empty()) {
    if (!a.peer_executable.empty()) throw UsageError("--peer-executable applies to local runs");
    // Across hosts only mechanisms that cross hosts; by default all of them.
    std::vector<std::string> crossing;
    for (const auto& m : mechanisms()) {
      if (m->capabilities().crosses_hosts) crossing.emplace_back(m->name());
    }
    if (!a.mechanisms.empty()) {
      for (const std::string& item : split_list(a.mechanisms)) {
        if (find_mechanism(item) != nullptr &&
            std::find(crossing.begin(), crossing.end(), item) == crossing.end()) {
          throw UsageError("mechanism '" + item +
                           "' does not cross hosts (with --remote: " + join(crossing) + ")");
        }
      }
    }
    s.mechanisms = choose(a.mechanisms, crossing, "mechanism");
    host_port_or_usage(a.remote, "--remote");
    s.remote = a.remote;
    s.remote_token = read_token(a.token_file);
    if (a.remote_cpu < -1)
      throw UsageError("--remote-cpu must be a CPU number (or -1: the server's choice)");
    s.remote_cpu = a.remote_cpu;
  } else {
    if (!a.token_file.empty()) throw UsageError("--token-file applies to --remote runs");
    if (!a.peer_executable.empty()) {
      struct stat st {};
      if (::stat(a.peer_executable.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
          ::access(a.peer_executable.c_str(), X_OK) != 0) {
        throw UsageError("--peer-executable: not an executable file: " + a.peer_executable);
      }
      s.peer_executable = a.peer_executable;
    }
    if (a.remote_cpu != -1) throw UsageError("--remote-cpu applies to --remote runs");
    s.mechanisms = choose(a.mechanisms, mechanism_names(), "mechanism");
  }
  for (const std::string& m : choose(a.modes, kModes, "mode"))
    s.modes.push_back(*named(kAllModes, m));
  for (const std::string& p : choose(a.patterns, kPatterns, "pattern")) {
    s.patterns.push_back(*named(kAllPatterns, p));
  }

  if (a.sizes.empty()) {
    s.sizes = kDefaultSizes;
  } else {
    for (const std::string& item : split_list(a.sizes)) {
      std::size_t size = 0;
      try {
        size = parse_size(item);
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
      if (size < kHeaderBytes) {
        throw UsageError("size '" + item + "' is too small: every message carries a " +
                         std::to_string(kHeaderBytes) +
                         "-byte header (smallest size: " + std::to_string(kHeaderBytes) + ")");
      }
      s.sizes.push_back(size);
    }
    std::sort(s.sizes.begin(), s.sizes.end());
    s.sizes.erase(std::unique(s.sizes.begin(), s.sizes.end()), s.sizes.end());
  }
  std::size_t largest_carried = 0;
  for (const auto& name : s.mechanisms) {
    largest_carried = std::max(largest_carried, find_mechanism(name)->capabilities().max_message);
  }
  for (std::size_t size : s.sizes) {
    if (size > largest_carried) {
      throw UsageError("size " + format_size(size) +
                       " is larger than any chosen mechanism can "
                       "carry (largest: " +
                       std::to_string(largest_carried) +
                       " bytes; see "
                       "'ipcbench list')");
    }
  }

  if (!(a.min_time > 0) || !std::isfinite(a.min_time)) {
    throw UsageError("--min-time must be a positive number of seconds");
  }
  s.min_time = a.min_time;
  if (a.repetitions < 1) throw UsageError("--repetitions must be at least 1");
  s.repetitions = a.repetitions;
  if (!(a.timeout > 0) || !std::isfinite(a.timeout) || a.timeout > 86400) {
    throw UsageError("--timeout must be a positive number of seconds");
  }
  s.timeout = std::chrono::milliseconds(static_cast<long>(std::ceil(a.timeout * 1000)));
  if (a.verify != "header" && a.verify != "full") {
    throw UsageError("unknown --verify '" + a.verify + "' (valid: header, full)");
  }
  s.verify_full = a.verify == "full";
  if (a.window && (*a.window < 1 || *a.window > 4096)) {
    throw UsageError("--window must be between 1 and 4096");
  }
  s.window = a.window ? static_cast<std::uint64_t>(*a.window) : 1;
  if (a.rate && (*a.rate < 1 || *a.rate > 100'000'000)) {
    throw UsageError(
        "--rate must be between 1 and 100000000 messages per second (leave it out "
        "for the closed loop)");
  }
  s.rate = a.rate ? static_cast<std::uint64_t>(*a.rate) : 0;
  if (a.rate && a.window) {
    throw UsageError(
        "--window applies to the closed loop; the open loop (--rate) has no window "
        "(messages in flight are bounded by a memory cap): leave one out");
  }
  if (a.spin_budget) {
    if (*a.spin_budget < 0 || *a.spin_budget > 10'000'000) {
      throw UsageError("--spin-budget must be between 0 and 10000000 spins");
    }
    const bool taken = std::any_of(s.mechanisms.begin(), s.mechanisms.end(), [](const auto& m) {
      return find_mechanism(m)->capabilities().spin_budget;
    });
    if (!taken) {
      throw UsageError(
          "--spin-budget applies to shm-eventfd and iceoryx, neither of which is among the chosen "
          "mechanisms");
    }
    s.spin_budget = static_cast<std::uint32_t>(*a.spin_budget);
  }
  if (!a.in_flight_limit.empty()) {
    std::size_t bytes = 0;
    try {
      bytes = parse_size(a.in_flight_limit);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--in-flight-limit: ") + e.what());
    }
    if (bytes < 64 || bytes > (std::size_t{1} << 30)) {
      throw UsageError("--in-flight-limit must be between 64 bytes and 1GiB");
    }
    s.in_flight_bytes = bytes;
  }
  if (s.rate > 0 && std::find(s.modes.begin(), s.modes.end(), Mode::kAsync) == s.modes.end()) {
    throw UsageError("--rate applies to async latency: add async to --modes");
  }
  if (!a.engine.empty()) {
    s.engines.clear();
    for (const std::string& e : choose(a.engine, kEngines, "engine")) {
      s.engines.push_back(*named(kAllEngines, e));
    }
    if (std::find(s.modes.begin(), s.modes.end(), Mode::kAsync) == s.modes.end()) {
      throw UsageError("--engine applies to async cases: add async to --modes");
    }
    const bool pollable = std::any_of(s.mechanisms.begin(), s.mechanisms.end(), [](const auto& m) {
      return find_mechanism(m)->capabilities().pollable;
    });
    if (!pollable) {
      throw UsageError(
          "--engine applies to mechanisms with descriptors to wait on (pollable), and none of "
          "the chosen ones has any");
    }
  }

  s.allowed_cpus = allowed_cpus();
  s.placements = choose_placements(a.placement, a.cpus, s.allowed_cpus);
  s.calibration = !a.no_calibration;

  for (const std::string& p : a.passthrough) {
    if (!p.starts_with("--benchmark_")) {
      throw UsageError("unexpected argument '" + p +
                       "' (only Google Benchmark flags, --benchmark_*, may follow --)");
    }
    // These two would silently override ours and the file would record the
    // wrong configuration.
    if (p.starts_with("--benchmark_repetitions") || p.starts_with("--benchmark_min_time")) {
      throw UsageError("'" + p + "' after -- is not allowed: use --repetitions / --min-time");
    }
  }
  s.benchmark_args = a.passthrough;

  validate_load_sweep(a, s);
  s.out = a.out;  // opened (and checked) by cli_main, once validation passed
  // Last: the only check that changes the machine (it creates the directory).
  if (!a.hgrm.empty()) s.hgrm_dir = hgrm_directory(a.hgrm);
  return s;
}

// Cases Google Benchmark will run under --benchmark_filter (the same
// extended-regex search it does), for the progress count.
std::size_t count_selected(const std::vector<Case>& cases, const std::vector<std::string>& args) {
  std::string filter;
  for (const std::string& a : args) {
    if (a.starts_with("--benchmark_filter=")) filter = a.substr(19);
  }
  if (filter.empty() || filter == "all") return cases.size();
  bool negative = false;
  if (filter.front() == '-') {
    negative = true;
    filter.erase(0, 1);
  }
  std::regex re;
  try {
    re = std::regex(filter, std::regex::extended | std::regex::nosubs);
  } catch (const std::regex_error&) {
    throw UsageError("invalid --benchmark_filter regular expression '" + filter + "'");
  }
  std::size_t n = 0;
  for (const Case& c : cases) {
    if (std::regex_search(c.name + "/manual_time", re) != negative) ++n;
  }
  return n;
}

// The run's private directory (0700) for sockets and FIFOs; its name carries
// our pid so a later cleanup can tell whose it is.
// The run directory, /tmp/ipcbench.<pid>.XXXXXX (mode 0700). Its name is
// chosen first and written to the owner record before mkdir, as every
// object is (mkdtemp would create it before the record could name it).
class RunDir {
 public:
  RunDir() {
    const char* tmp = std::getenv("TMPDIR");
    const std::string base =
        (tmp != nullptr && *tmp != '\0' && std::strlen(tmp) < 40) ? tmp : "/tmp";
    static constexpr char kChars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::random_device random;
    for (int attempt = 0;; ++attempt) {
      std::string suffix(6, 'x');
      for (char& c : suffix) c = kChars[random() % (sizeof kChars - 1)];
      std::string path = base;
      path.append("/").append(objects::name_stem(::getpid())).append(suffix);
      objects::creating(objects::named(objects::Kind::kDirectory, path));
      if (::mkdir(path.c_str(), 0700) == 0) {
        path_ = path;
        return;
      }
      const int err = errno;
      objects::removed(objects::named(objects::Kind::kDirectory, path));
      if (err != EEXIST || attempt == 100) {
        throw std::system_error(err, std::generic_category(),
                                "cannot create run directory " + path);
      }
    }
  }
  ~RunDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    objects::removed(objects::named(objects::Kind::kDirectory, path_));
  }
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void on_stop_signal(int sig) { posix::request_stop(sig); }

// `--hgrm DIR`: each measured latency case's samples (all its repetitions
// merged) as HdrHistogram text, DIR/<case name, '/' as '_'>.hgrm. Failed,
// skipped and flagged cases have none: they are not results. Returns how
// many were written.
std::size_t write_hgrm_files(Runner& runner, const std::string& dir) {
  std::size_t written = 0;
  const std::vector<Case>& cases = runner.cases();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    if (c.pattern != Pattern::kLatency || !c.skip_reason.empty() || !c.error.empty() ||
        !c.measurement_error.empty()) {
      continue;
    }
    std::optional<Histogram> merged;
    for (const auto& [id, trial] : runner.trials()) {
      if (trial.case_index != i || !trial.histogram) continue;
      if (merged) {
        merged->merge(*trial.histogram);
      } else {
        merged = *trial.histogram;
      }
    }
    if (!merged) continue;
    std::string path = dir;
    path.append("/").append(c.name).append(".hgrm");
    std::replace(path.begin() + static_cast<std::ptrdiff_t>(dir.size()) + 1, path.end(), '/', '_');
    OutputFile::open(path).write(hgrm_text(*merged));
    ++written;
  }
  return written;
}

int do_run(Settings& settings, OutputFile* output) {
  // Google Benchmark parses its own flags; anything it does not know is a
  // usage error, reported before anything runs.
  std::vector<std::string> gb_args = {
      "ipcbench", "--benchmark_min_time=" + std::to_string(settings.min_time),
      "--benchmark_repetitions=" + std::to_string(settings.repetitions)};
  gb_args.insert(gb_args.end(), settings.benchmark_args.begin(), settings.benchmark_args.end());
  std::vector<char*> gb_argv;
  gb_argv.reserve(gb_args.size() + 1);
  for (auto& a : gb_args) gb_argv.push_back(a.data());
  gb_argv.push_back(nullptr);
  int gb_argc = static_cast<int>(gb_args.size());
  // Google Benchmark reports a bad flag value on std::cerr itself; capture it
  // so the user gets one line from us.
  std::ostringstream gb_complaint;
  std::streambuf* saved = std::cerr.rdbuf(gb_complaint.rdbuf());
  benchmark::Initialize(&gb_argc, gb_argv.data());
  std::cerr.rdbuf(saved);
  if (gb_argc > 1) {
    std::string detail = gb_complaint.str();
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
    throw UsageError("invalid or unknown Google Benchmark flag '" + std::string(gb_argv[1]) + "'" +
                     (detail.empty() ? "" : ": " + detail));
  }

  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked call returns EINTR and the case stops
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  // Across hosts: reach the server and agree on the protocol before anything
  // runs (a wrong token or version fails here, in a second).
  std::optional<RemoteServer> remote;
  if (!settings.remote.empty()) {
    remote.emplace(RemoteOptions{.address = settings.remote,
                                 .token = settings.remote_token,
                                 .cpu = settings.remote_cpu,
                                 .timeout = settings.timeout});
    remote->greet();
    const nlohmann::json& host = remote->welcome()["host"];
    std::printf("remote: %s (%s, %s)\n", settings.remote.c_str(),
                host.value("cpu_model", std::string("?")).c_str(),
                host.value("kernel", std::string("?")).c_str());
  }

  const Clock clock = Clock::calibrate();
  const HostInfo host = read_host_info();
  // The floors, on the cases' CPUs, before any other thread exists (the
  // calibration forks).
  std::optional<Calibration> calibration;
  if (settings.calibration) {
    try {
      calibration = calibrate(clock, settings.placements, settings.sizes, settings.allowed_cpus);
    } catch (const std::exception&) {
      if (posix::stop_signal() == 0) throw;  // stopped: the cases are skipped below
    }
    if (calibration) {
      for (const std::string& line : describe(*calibration)) std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  }
  set_thread_affinity(settings.allowed_cpus);  // each case pins the runner for its placement
  RunDir run_dir;
  // Starts the watchdog thread (unpinned).
  Runner runner(settings, clock, run_dir.path(), calibration ? &*calibration : nullptr);
  // Last resort, from the watchdog thread: the runner cannot be woken. Leave
  // no result file (nothing partial that looks complete) and no run
  // directory; the peer dies with us (PR_SET_PDEATHSIG).
  runner.watchdog().set_stuck_handler([dir = run_dir.path()](const std::string& reason) {
    std::fprintf(stderr,
                 "ipcbench: error: the runner is stuck in a call that cannot be interrupted "
                 "after: %s; giving up without writing a result file\n",
                 reason.c_str());
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::_Exit(1);
  });
  const std::size_t selected = count_selected(runner.cases(), settings.benchmark_args);
  Progress progress(selected, ::isatty(STDERR_FILENO) != 0);
  runner.set_progress(&progress);
  if (remote) runner.set_remote(&*remote);
  runner.register_benchmarks();
  IpcbenchReporter reporter(runner, progress);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  runner.finish();
  if (remote) remote->bye();

  const int stop = posix::stop_signal();
  const auto failed = reporter.failed();
  bool written = true;
  if (output != nullptr) {
    const bool complete = stop == 0;
    const nlohmann::ordered_json doc =
        reporter.result(settings, host, clock, complete, remote ? &remote->welcome() : nullptr);
    try {
      output->write(doc.dump(2) + "\n");
      std::fprintf(stderr, "ipcbench: wrote %s%s\n", output->name().c_str(),
                   complete ? "" : " (marked incomplete)");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ipcbench: error: %s\n", e.what());
      written = false;
    }
  }
  if (!settings.hgrm_dir.empty()) {
    try {
      const std::size_t n = write_hgrm_files(runner, settings.hgrm_dir);
      std::fprintf(stderr, "ipcbench: wrote %zu .hgrm file(s) to %s\n", n,
                   settings.hgrm_dir.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ipcbench: error: %s\n", e.what());
      written = false;
    }
  }
  if (!failed.empty()) {
    std::fprintf(stderr, "ipcbench: %zu case(s) failed:\n", failed.size());
    for (const auto& [name, error] : failed) {
      std::fprintf(stderr, "  %s: %s\n", name.c_str(), error.c_str());
    }
  }
  const auto flagged = reporter.flagged();
  if (!flagged.empty()) {
    std::fprintf(stderr, "ipcbench: %zu case(s) flagged as measurement errors (not results):\n",
                 flagged.size());
    for (const auto& [name, why] : flagged)
      std::fprintf(stderr, "  %s: %s\n", name.c_str(), why.c_str());
  }
  if (stop != 0) return 128 + stop;
  return written && failed.empty() && flagged.empty() ? kExitOk : kExitCaseFailed;
}

struct ServeArgs {
  std::string listen = "127.0.0.1:" + std::to_string(control::kDefaultPort);
  std::string token_file, cpus;
  bool insecure = false;
  double handshake_timeout = 5, idle_timeout = 60, case_timeout = 3600, peer_timeout = 10;
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

std::chrono::milliseconds seconds_option(double value, const char* option) {
  if (!(value > 0) || !std::isfinite(value) || value > 86400 * 7) {
    throw UsageError(std::string(option) + " must be a positive number of seconds");
  }
  return std::chrono::milliseconds(static_cast<long>(std::ceil(value * 1000)));
}

ServeOptions validate_serve(const ServeArgs& a, const std::string& executable) {
  ServeOptions o;
  const auto [host, port] = host_port_or_usage(a.listen, "--listen");
  (void)port;
  o.listen = a.listen;
  o.token = read_token(a.token_file);
  if (o.token.empty() && !a.insecure && !is_loopback(host)) {
    throw UsageError("serve on " + a.listen +
                     " (not loopback) needs a shared token: "
                     "--token-file FILE (mode 0600) or IPCBENCH_TOKEN, or --insecure to "
                     "accept anyone who can reach it");
  }
  if (!a.cpus.empty()) {
    const std::vector<int> allowed = allowed_cpus();
    try {
      o.cpus = parse_cpu_list(a.cpus);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    for (int c : o.cpus) {
      if (std::find(allowed.begin(), allowed.end(), c) == allowed.end()) {
        throw UsageError("--cpus: CPU " + std::to_string(c) +
                         " does not exist or is not available");
      }
    }
  }
  o.handshake_timeout = seconds_option(a.handshake_timeout, "--handshake-timeout");
  o.idle_timeout = seconds_option(a.idle_timeout, "--idle-timeout");
  o.case_timeout = seconds_option(a.case_timeout, "--case-timeout");
  o.peer_timeout = seconds_option(a.peer_timeout, "--peer-timeout");
  o.executable = executable;
  return o;
}

std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "/proc/self/exe";
}

int do_list(bool json) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : mechanisms()) {
      const Capabilities c = m->capabilities();
      out.push_back({{"name", m->name()},
                     {"family", m->family()},
                     {"boundaries", to_string(c.boundaries)},
                     {"max_message", c.max_message},
                     {"crosses_hosts", c.crosses_hosts},
                     {"pollable", c.pollable},
                     {"lossy", c.lossy},
                     {"waiting", to_string(c.waiting)},
                     {"readiness", to_string(c.readiness)},
                     {"copies", c.copies},
                     {"async_copies", copies_in(c, true)},
                     {"spin_budget", c.spin_budget},
                     {"names", to_string(c.names)},
                     {"engines", names(engine::engines_of(c))}});
      const std::string unavailable = m->unavailable_reason();
      out.back()["available"] = unavailable.empty();
      if (!unavailable.empty()) out.back()["unavailable_reason"] = unavailable;
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("%-16s %-8s %-10s %12s  %-13s %-8s %s\n", "NAME", "FAMILY", "BOUNDARIES",
              "MAX_MESSAGE", "CROSSES_HOSTS", "POLLABLE", "LOSSY");
  for (const auto& m : mechanisms()) {
    const Capabilities c = m->capabilities();
    std::printf("%-16s %-8s %-10s %12s  %-13s %-8s %s\n", std::string(m->name()).c_str(),
                std::string(m->family()).c_str(), std::string(to_string(c.boundaries)).c_str(),
                format_size(c.max_message).c_str(), c.crosses_hosts ? "yes" : "no",
                c.pollable ? "yes" : "no", c.lossy ? "yes" : "no");
  }
  for (const auto& m : mechanisms()) {
    const std::string unavailable = m->unavailable_reason();
    if (!unavailable.empty()) {
      std::printf("%s is unavailable here: %s\n", std::string(m->name()).c_str(),
                  unavailable.c_str());
    }
  }
  return 0;
}

}  // namespace

int cli_main(int argc, char** argv) {
  CLI::App app{"ipcbench: latency and throughput of inter-process communication on Linux"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(kSuiteVersion) + " (" + kGitRevision + ")");

  bool list_json = false;
  CLI::App* list = app.add_subcommand("list", "List the mechanisms and their capabilities");
  list->add_flag("--json", list_json, "Print as JSON");

  RunArgs r;
  CLI::App* run = app.add_subcommand("run", "Run benchmark cases and write a report");
  run->add_option("--mechanisms", r.mechanisms, "Comma list of mechanisms (default: all)");
  run->add_option("--modes", r.modes, "Comma list of modes: " + join(kModes) + " (default: all)");
  run->add_option("--patterns", r.patterns,
                  "Comma list of patterns: " + join(kPatterns) + " (default: all)");
  run->add_option("--sizes", r.sizes,
                  "Comma list of message sizes, e.g. 64,4KiB,1MiB "
                  "(default: 64,1KiB,16KiB,256KiB)");
  run->add_option("--min-time", r.min_time, "Minimum measured seconds per case")
      ->capture_default_str();
  run->add_option("--repetitions", r.repetitions, "Repeat each case N times")
      ->capture_default_str();
  run->add_option("--placement", r.placement,
                  "Comma list: cross-cpu, same-cpu, unpinned; every case runs under each "
                  "(default: cross-cpu, or same-cpu on a one-CPU machine)");
  run->add_option("--cpus", r.cpus,
                  "Runner and peer CPUs, e.g. 0,1 (may be equal; instead of "
                  "--placement)");
  run->add_flag("--no-calibration", r.no_calibration,
                "Skip measuring the physical floors (cases then carry no floor_ratio)");
  run->add_option("--timeout", r.timeout, "Seconds a case may go without progress")
      ->capture_default_str();
  run->add_option("--verify", r.verify,
                  "Payload check: header (every message) or full "
                  "(every byte)")
      ->capture_default_str();
  run->add_option("--window", r.window,
                  "Async latency, closed loop: messages in flight (default 1; more includes "
                  "queueing)");
  run->add_option("--in-flight-limit", r.in_flight_limit,
                  "Async and lossy throughput: flow-control budget in bytes (default 64MiB)");
  run->add_option("--spin-budget", r.spin_budget,
                  "shm-eventfd, iceoryx: spins before a wait sleeps (on an eventfd, a WaitSet; "
                  "default 0: every wait sleeps)");
  run->add_option("--engine", r.engine,
                  "Async cases of pollable mechanisms: comma list of poll, epoll, io_uring; "
                  "each such case runs on each (default: poll)");
  run->add_option("--rate", r.rate,
                  "Async latency: open loop at N messages/s (default: closed "
                  "loop)");
  run->add_option("--out", r.out, "Write the JSON result file here");
  CLI::Option* load_sweep =
      run->add_option("--load-sweep", r.load_steps,
                      "Run only the load sweep: per mechanism and size, the peak echo rate, then "
                      "async latency in the open loop at each step (default ladder, or steps like "
                      "10%,50%,90%,100%,120% of the peak, or rates like 50k)")
          ->expected(0, 1);
  run->add_option("--slo", r.slo,
                  "Load sweep: the capacity's latency bound, e.g. p99=20us (default: p99 within "
                  "--slo-factor times the unloaded p99)");
  run->add_option("--slo-factor", r.slo_factor,
                  "Load sweep: the bound as a multiple of the unloaded figure (default 2)");
  run->add_option("--hgrm", r.hgrm,
                  "Also write each latency case's distribution here, as HdrHistogram .hgrm "
                  "text (one file per case; the directory is created if missing)");
  run->add_option("--remote", r.remote,
                  "Run the peers on another host, where 'ipcbench serve' "
                  "listens: HOST:PORT (host-crossing mechanisms only)");
  run->add_option("--token-file", r.token_file,
                  "With --remote: the shared token (file of mode "
                  "0600; or set IPCBENCH_TOKEN)");
  run->add_option("--remote-cpu", r.remote_cpu,
                  "With --remote: the server's CPU for its peer "
                  "(default: the first of serve's --cpus)");
  run->add_option("benchmark_args", r.passthrough, "Google Benchmark flags, after --");
  // Hidden: a substitute peer program (the fault tests' misbehaving peer).
  run->add_option("--peer-executable", r.peer_executable, "Peer program instead of 'ipcbench peer'")
      ->group("");

  ServeArgs sv;
  CLI::App* serve = app.add_subcommand(
      "serve", "Serve the peer side of runs from other hosts ('ipcbench run --remote')");
  serve->add_option("--listen", sv.listen, "HOST:PORT to listen on")->capture_default_str();
  serve->add_option("--token-file", sv.token_file,
                    "Shared token, required off loopback (file of "
                    "mode 0600; or set IPCBENCH_TOKEN)");
  serve->add_flag("--insecure", sv.insecure, "Listen off loopback without a token");
  serve->add_option("--cpus", sv.cpus, "CPUs for the peers, e.g. 2 or 2-3 (default: unpinned)");
  serve
      ->add_option("--handshake-timeout", sv.handshake_timeout, "Seconds a client has to say hello")
      ->capture_default_str();
  serve
      ->add_option("--idle-timeout", sv.idle_timeout,
                   "Seconds a client may stay idle between cases")
      ->capture_default_str();
  serve->add_option("--case-timeout", sv.case_timeout, "Longest case, in seconds")
      ->capture_default_str();
  serve
      ->add_option("--peer-timeout", sv.peer_timeout,
                   "Seconds a peer waits for the client's data connection")
      ->capture_default_str();

  bool clean_dry_run = false;
  CLI::App* clean = app.add_subcommand(
      "clean", "Remove the IPC objects of ipcbench runs that died (their owner records say which)");
  clean->add_flag("--dry-run", clean_dry_run, "Only list what would be removed");

  PeerOptions peer_options;
  std::string peer_verify = "header";
  int timeout_ms = 10'000;
  CLI::App* peer = app.add_subcommand("peer", "");  // internal: spawned by run
  peer->group("");
  peer->add_option("--mechanism", peer_options.mechanism)->required();
  peer->add_option("--address", peer_options.address);
  peer->add_option("--listen-host", peer_options.listen_host);
  peer->add_option("--allow-from", peer_options.allow_from);
  peer->add_option("--cpu", peer_options.cpu);
  peer->add_option("--max-message", peer_options.max_message)->required();
  peer->add_option("--verify", peer_verify);
  peer->add_option("--parent", peer_options.parent);
  peer->add_option("--timeout-ms", timeout_ms);
  peer->add_flag("--lossy", peer_options.lossy);
  peer->add_flag("--same-cpu", peer_options.same_cpu);
  CLI::App* iceoryx_config = app.add_subcommand("iceoryx-config", "");  // internal: the cross-check
  iceoryx_config->group("");
  add_bare_command(app);

  try {
    app.parse(argc, argv);
    r.load_sweep = load_sweep->count() > 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "ipcbench: error: %s (see 'ipcbench %s--help')\n", e.what(),
                 run->parsed()     ? "run "
                 : serve->parsed() ? "serve "
                                   : "");
    return kExitUsage;
  }

  try {
    if (list->parsed()) return do_list(list_json);
    if (clean->parsed()) return run_clean(clean_dry_run);
    if (iceoryx_config->parsed()) {
#ifdef IPCBENCH_HAVE_ICEORYX
      std::cout << mech::iceoryx::roudi_config();
      return 0;
#else
      std::cerr << "ipcbench: this build has no iceoryx (install iceoryx and libiceoryx-posh-dev, "
                   "then rebuild)\n";
      return 1;
#endif
    }
    if (serve->parsed()) return run_serve(validate_serve(sv, self_path()));
    if (peer->parsed()) {
      peer_options.verify_full = peer_verify == "full";
      peer_options.timeout = std::chrono::milliseconds(timeout_ms);
      return run_peer(peer_options);
    }
    // Before validation: the capability probes it runs create objects too.
    // Sweeps what dead runs left behind, then records what this run creates.
    const std::unique_ptr<OwnerRecord> owner = OwnerRecord::start();
    Settings settings = validate(r, argc, argv);
    std::optional<OutputFile> output;
    if (!settings.out.empty()) {
      try {
        output.emplace(OutputFile::open(settings.out));
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
      // `--out -`: the JSON alone on stdout, everything else on stderr.
      if (output->is_stdout()) redirect_stdout_to_stderr();
    }
    return do_run(settings, output ? &*output : nullptr);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "ipcbench: error: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace ipcbench
