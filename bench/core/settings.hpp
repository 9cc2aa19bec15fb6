// The run's configuration, parsed and validated by the CLI before anything
// runs (cli.cpp), consumed by the runner and written into the result file.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/core/load_sweep.hpp"

namespace ipcbench {

enum class Mode { kSync, kAsync };
enum class Pattern { kLatency, kThroughput };
enum class PlacementKind { kCrossCpu, kSameCpu, kUnpinned };
// How the async trials wait for a pollable channel: poll(2) on its
// descriptors, an epoll set, or an io_uring that also moves the bytes of
// the mechanisms that read and write plain descriptors (bench/engine/).
enum class Engine { kPoll, kEpoll, kIoUring };

// Their names, which only the CLI reads and the result file writes.
constexpr std::string_view name_of(Mode m) { return m == Mode::kSync ? "sync" : "async"; }
constexpr std::string_view name_of(Pattern p) {
  return p == Pattern::kLatency ? "latency" : "throughput";
}
constexpr std::string_view name_of(Engine e) {
  switch (e) {
    case Engine::kPoll:
      return "poll";
    case Engine::kEpoll:
      return "epoll";
    case Engine::kIoUring:
      return "io_uring";
  }
  return "?";
}
constexpr std::string_view name_of(PlacementKind k) {
  switch (k) {
    case PlacementKind::kCrossCpu:
      return "cross-cpu";
    case PlacementKind::kSameCpu:
      return "same-cpu";
    case PlacementKind::kUnpinned:
      break;
  }
  return "unpinned";
}
inline constexpr std::array kAllModes{Mode::kSync, Mode::kAsync};
inline constexpr std::array kAllPatterns{Pattern::kLatency, Pattern::kThroughput};
inline constexpr std::array kAllEngines{Engine::kPoll, Engine::kEpoll, Engine::kIoUring};
inline constexpr std::array kAllPlacements{PlacementKind::kCrossCpu, PlacementKind::kSameCpu,
                                           PlacementKind::kUnpinned};

// The value named `name` among `all`; nullopt for an unknown name.
template <typename E, std::size_t N>
std::optional<E> named(const std::array<E, N>& all, std::string_view name) {
  for (E e : all) {
    if (name_of(e) == name) return e;
  }
  return std::nullopt;
}

// The names of `values`, in order: the CLI's valid choices, or the chosen
// ones for the result file.
template <typename Values>
std::vector<std::string> names(const Values& values) {
  std::vector<std::string> out;
  out.reserve(std::size(values));
  for (const auto e : values) out.emplace_back(name_of(e));
  return out;
}

inline const std::vector<std::string> kModes = names(kAllModes);
inline const std::vector<std::string> kPatterns = names(kAllPatterns);
inline const std::vector<std::string> kPlacements = names(kAllPlacements);
inline const std::vector<std::string> kEngines = names(kAllEngines);
inline const std::vector<std::size_t> kDefaultSizes = {64, 1024, 16 * 1024, 256 * 1024};

// Async streaming and lossy streaming: the flow-control budget (bytes in
// flight) when --in-flight-limit is not given. Chosen so that it does not
// set the rate (README, "What limits each figure").
inline constexpr std::uint64_t kDefaultInFlightBytes = 64u << 20;

// Where the runner and the peer run. CPUs are -1 for "unpinned".
struct Placement {
  PlacementKind kind = PlacementKind::kUnpinned;
  int runner_cpu = -1;
  int peer_cpu = -1;
  std::string name() const { return std::string(name_of(kind)); }
  // Spinning floors need the two sides on two CPUs for sure: under
  // same-cpu, and under unpinned when the scheduler puts both on one CPU,
  // a spinner waits out the other's time slice (milliseconds).
  bool spinning_applies() const noexcept { return kind == PlacementKind::kCrossCpu; }
};

struct Settings {
  std::vector<std::string> mechanisms;  // registry names, in registry order
  std::vector<Mode> modes;
  std::vector<Pattern> patterns;
  std::vector<std::size_t> sizes;  // bytes, ascending
  double min_time = 0.5;           // seconds per case (Google Benchmark's min time)
  int repetitions = 1;
  std::vector<Placement> placements;  // each case runs under each, in this order
  // Each async case of a pollable mechanism runs on each that it can use.
  std::vector<Engine> engines = {Engine::kPoll};
  std::vector<int> allowed_cpus;  // what "unpinned" lets both sides use
  bool calibration = true;        // measure the floors first (--no-calibration: off)
  std::chrono::milliseconds timeout{10'000};
  bool verify_full = false;
  std::uint64_t window = 1;  // async closed-loop latency: messages in flight
  std::uint64_t rate = 0;    // async latency: messages/s; 0 = closed loop
  std::uint64_t in_flight_bytes = kDefaultInFlightBytes;  // streaming flow control
  std::uint32_t spin_budget = 0;  // spins before a wait, where a mechanism takes a budget
  std::string out;                // result file; empty: none
  std::string hgrm_dir;           // --hgrm: a .hgrm file per latency case here; empty: none
  // --load-sweep: only the sweep runs (async latency: the peak echo rate,
  // the round trip, the unloaded open loop, then the open loop at each step).
  bool load_sweep = false;
  std::vector<LoadStep> ladder;  // the steps, default_ladder() unless given
  Slo slo;                       // --slo / --slo-factor
  // Across hosts (`--remote HOST:PORT`): the peer runs under `ipcbench
  // serve` there; placements then place the runner only.
  std::string remote;
  std::string remote_token;                 // from --token-file or IPCBENCH_TOKEN
  int remote_cpu = -1;                      // the server's CPU for its peer; -1: its choice
  std::vector<std::string> benchmark_args;  // passed to Google Benchmark
  std::vector<std::string> command_line;    // as given, for the record
  // Hidden `--peer-executable`: the peer program, instead of this binary's
  // `peer` (the fault tests substitute a misbehaving one); the result says so.
  std::string peer_executable;
};

}  // namespace ipcbench
