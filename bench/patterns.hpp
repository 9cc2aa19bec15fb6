// The timing loops. The harness owns the clock; mechanisms only move bytes.
//
// Each function runs one Google Benchmark trial over an established session:
// it times the trial itself (UseManualTime), verifies every message, and fills
// a TrialResult. On a lost peer or a bad message it throws (PeerLost,
// ProtocolError); the caller turns that into a failed case.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <span>

#include "clock.hpp"
#include "histogram.hpp"
#include "session.hpp"

namespace ipcbench {

struct PatternContext {
  PeerSession& session;
  const Clock& clock;
  Histogram& histogram;               // latency samples (ns); reset per trial
  std::atomic<std::uint64_t>& progress;  // watchdog's heartbeat
  std::span<std::byte> send_buffer;   // >= message size, pre-faulted
  std::span<std::byte> receive_buffer;
  std::size_t size = 0;               // message size of the case
  bool verify_full = false;
};

// What one trial measured. CPU figures are deltas over the trial.
struct TrialResult {
  std::uint64_t messages = 0;       // round trips (latency) or messages (throughput)
  std::uint64_t messages_lost = 0;  // lossy mechanisms only
  double seconds = 0;               // the timed span
  std::uint64_t runner_cpu_ns = 0;
  std::uint64_t peer_cpu_ns = 0;
  std::uint64_t runner_context_switches = 0;
  std::uint64_t peer_context_switches = 0;
};

// Ping-pong: send, wait for the echo, record the round trip. One benchmark
// iteration is one round trip.
TrialResult run_latency_trial(benchmark::State& state, PatternContext& ctx);

// Streaming: send state.max_iterations messages with blocking sends, the last
// asking for an acknowledgement; the time span ends when it arrives. One
// benchmark iteration is one message.
TrialResult run_throughput_trial(benchmark::State& state, PatternContext& ctx);

// Round trips run before the first trial and discarded: they fault in pages,
// warm caches and wake both CPUs. At least `min_round_trips` (enough to cycle
// through every slot of a queue), then more until `budget` or
// `max_round_trips`.
void warm_up(PatternContext& ctx, std::chrono::milliseconds budget, int min_round_trips,
             int max_round_trips);

}  // namespace ipcbench
