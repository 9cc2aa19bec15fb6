// The run's configuration, parsed and validated by the CLI before anything
// runs (cli.cpp), consumed by the runner and written into the result file.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ipcbench {

inline const std::vector<std::string> kModes = {"sync", "async"};
inline const std::vector<std::string> kPatterns = {"latency", "throughput"};
inline const std::vector<std::string> kPlacements = {"cross-cpu", "same-cpu", "unpinned"};
inline const std::vector<std::size_t> kDefaultSizes = {64, 1024, 16 * 1024, 256 * 1024};

// Async streaming and lossy streaming: the flow-control budget (bytes in
// flight) when --in-flight-limit is not given. Chosen so that it does not
// set the rate (README, "What limits each figure").
inline constexpr std::uint64_t kDefaultInFlightBytes = 64u << 20;

// Where the runner and the peer run. CPUs are -1 for "unpinned".
struct Placement {
  std::string name;  // "cross-cpu", "same-cpu" or "unpinned"
  int runner_cpu = -1;
  int peer_cpu = -1;
  // Spinning floors need the two sides on two CPUs for sure: under
  // same-cpu, and under unpinned when the scheduler puts both on one CPU,
  // a spinner waits out the other's time slice (milliseconds).
  bool spinning_applies() const noexcept { return name == "cross-cpu"; }
};

struct Settings {
  std::vector<std::string> mechanisms;  // registry names, in registry order
  std::vector<std::string> modes;
  std::vector<std::string> patterns;
  std::vector<std::size_t> sizes;       // bytes, ascending
  double min_time = 0.5;                // seconds per case (Google Benchmark's min time)
  int repetitions = 1;
  std::vector<Placement> placements;    // each case runs under each, in this order
  std::vector<int> allowed_cpus;        // what "unpinned" lets both sides use
  bool calibration = true;              // measure the floors first (--no-calibration: off)
  std::chrono::milliseconds timeout{10'000};
  bool verify_full = false;
  std::uint64_t window = 1;             // async closed-loop latency: messages in flight
  std::uint64_t rate = 0;               // async latency: messages/s; 0 = closed loop
  std::uint64_t in_flight_bytes = kDefaultInFlightBytes;  // streaming flow control
  std::string out;                      // result file; empty: none
  // Across hosts (`--remote HOST:PORT`): the peer runs under `ipcbench
  // serve` there; placements then place the runner only.
  std::string remote;
  std::string remote_token;             // from --token-file or IPCBENCH_TOKEN
  int remote_cpu = -1;                  // the server's CPU for its peer; -1: its choice
  std::vector<std::string> benchmark_args;  // passed to Google Benchmark
  std::vector<std::string> command_line;    // as given, for the record
  // Hidden `--peer-executable`: the peer program, instead of this binary's
  // `peer` (the fault tests substitute a misbehaving one); the result says so.
  std::string peer_executable;
};

}  // namespace ipcbench
