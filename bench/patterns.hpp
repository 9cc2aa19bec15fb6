// The timing loops. The harness owns the clock; mechanisms only move bytes.
//
// Each function runs one Google Benchmark trial over an established session:
// it times the trial itself (UseManualTime), verifies every message, and fills
// a TrialResult. On a lost peer or a bad message it throws (PeerLost,
// ProtocolError); the caller turns that into a failed case.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
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
  std::uint64_t window = 16;          // async: messages in flight at most
  std::uint64_t rate = 0;             // async latency: messages/s (0 = closed loop)
};

// What one trial measured. CPU figures are deltas over the trial.
struct TrialResult {
  std::uint64_t messages = 0;       // round trips (latency) or messages (throughput)
  std::uint64_t messages_lost = 0;  // lossy mechanisms only
  double seconds = 0;               // the timed span (rates divide by it)
  std::uint64_t runner_cpu_ns = 0;
  std::uint64_t peer_cpu_ns = 0;
  std::uint64_t runner_context_switches = 0;
  std::uint64_t peer_context_switches = 0;
  double rate_achieved = 0;         // async open loop: messages sent per second
  std::optional<OneWayPayload> oneway;  // async latency: the peer's one-way spectrum
};

// Ping-pong: send, wait for the echo, record the round trip. One benchmark
// iteration is one round trip.
TrialResult run_latency_trial(benchmark::State& state, PatternContext& ctx);

// Streaming: send state.max_iterations messages with blocking sends, the last
// asking for an acknowledgement; the time span ends when it arrives. One
// benchmark iteration is one message.
TrialResult run_throughput_trial(benchmark::State& state, PatternContext& ctx);

// Async latency: up to ctx.window messages in flight, non-blocking sends and
// receives driven by readiness waits. Each message carries its send time
// (CLOCK_MONOTONIC); the echo yields a round trip, the peer records the
// one-way time. With ctx.rate > 0 the loop is open: message i is sent at
// its scheduled time and both latencies count from that intended time, so
// a stall shows in the percentiles (no coordinated omission). The manual
// time is the wall span (so real_time is the time per message, and
// --min-time is wall time); the latency is in the histogram.
TrialResult run_async_latency_trial(benchmark::State& state, PatternContext& ctx);

// Async throughput: non-blocking streaming with readiness waits and credits
// (the peer acknowledges every ctx.window messages; at most two windows
// unacknowledged). The span ends at the final acknowledgement.
TrialResult run_async_throughput_trial(benchmark::State& state, PatternContext& ctx);

// Round trips run before the first trial and discarded: they fault in pages,
// warm caches and wake both CPUs. At least `min_round_trips` (enough to cycle
// through every slot of a queue), then more until `budget` or
// `max_round_trips`.
void warm_up(PatternContext& ctx, std::chrono::milliseconds budget, int min_round_trips,
             int max_round_trips);

}  // namespace ipcbench
