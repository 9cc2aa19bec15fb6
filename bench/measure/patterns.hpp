// The timing loops. The harness owns the clock; mechanisms only move bytes.
//
// Each function runs one trial over an established channel to a peer that
// serves the wire protocol (a peer process, or an EchoServer in a test): it
// times the trial itself, verifies every message, and fills a TrialResult,
// whose iteration_seconds is the manual time the caller reports to Google
// Benchmark (these loops do not know it). On a lost peer or a bad message it
// throws (PeerLost, ProtocolError); the caller turns that into a failed case.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>

#include "bench/core/clock.hpp"
#include "bench/core/histogram.hpp"
#include "bench/core/settings.hpp"
#include "bench/wire/peer_link.hpp"

namespace ipcbench {

struct PatternContext {
  PeerLink& link;  // the channel to the peer, sequence numbers, control requests
  const Clock& clock;
  Histogram& histogram;                  // latency samples (ns); reset per trial
  Histogram& lateness;                   // open loop: send lateness (ns); reset per trial
  std::atomic<std::uint64_t>& progress;  // watchdog's heartbeat
  std::span<std::byte> send_buffer;      // >= message size, pre-faulted
  std::span<std::byte> receive_buffer;
  std::size_t size = 0;  // message size of the case
  bool verify_full = false;
  bool same_cpu = false;          // runner and peer share one CPU (spins yield)
  bool spin_wait = false;         // the mechanism's readiness wait spins (Capabilities)
  Engine engine = Engine::kPoll;  // async: how the trial waits (and, io_uring, moves bytes)
  std::uint64_t window = 1;       // async closed-loop latency: messages in flight
  std::uint64_t rate = 0;         // async latency: messages/s (0 = closed loop)
  std::uint64_t in_flight_bytes = kDefaultInFlightBytes;  // streaming flow-control budget
  std::chrono::nanoseconds min_time{200'000'000};         // timed trials: wall time of the loop
  // Sync trials over a reliable mechanism run for min_time (what the runner
  // asks: each case is one Google Benchmark iteration per trial, so no
  // estimating trials come first), not for a count of messages (tests,
  // the calibration). Async and lossy trials are always timed.
  bool timed = false;
};

// The flow control of a streaming trial whose acknowledgements the harness
// waits for (async throughput, lossy throughput): at most `messages` (and
// about `bytes`) unacknowledged, one acknowledgement asked every
// `ask_every` messages, so several acknowledgements are always under way
// and no acknowledgement round trip stops the stream.
struct FlowLimit {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t ask_every = 0;
  // The limit is what the receiver's socket buffer holds (lossy mechanisms
  // have no backpressure of their own: beyond it datagrams are dropped), so
  // waiting for credit is the mechanism's limit, not the harness's.
  bool receive_buffer = false;
};
// `lossy`: the limit is also held to what a receiving socket buffer takes
// (net.core.rmem_max, doubled by the kernel for its bookkeeping, counted
// with ~1 KiB of overhead per datagram, half of it used), so the harness
// does not overrun the receiver.
FlowLimit stream_flow_limit(std::size_t size, std::uint64_t budget_bytes, bool lossy);

// What one trial measured. CPU figures are deltas over the trial.
struct TrialResult {
  std::uint64_t messages = 0;       // round trips (latency) or delivered messages (throughput)
  std::uint64_t messages_lost = 0;  // lossy mechanisms only
  std::uint64_t late = 0;           // lossy: replies that came after the loss timeout (samples)
  double seconds = 0;               // the timed span (rates divide by it)
  double mean_ns = 0;               // latency: exact mean round trip (real_time)
  std::uint64_t runner_cpu_ns = 0;  // pacing spin excluded (runner_pacing_ns)
  std::uint64_t peer_cpu_ns = 0;
  std::uint64_t runner_context_switches = 0;
  std::uint64_t peer_context_switches = 0;
  // System calls in the span, every measured thread of each side (empty
  // where they cannot be counted; a few per trial are the stats exchange).
  std::optional<std::uint64_t> runner_syscalls;
  std::optional<std::uint64_t> peer_syscalls;
  // ipcbench's own system calls in the span, on each side's measuring
  // thread (posix::count_syscall): counted everywhere.
  std::uint64_t runner_own_syscalls = 0;
  std::uint64_t peer_own_syscalls = 0;
  std::uint64_t runner_pacing_ns = 0;   // open loop: spent spinning to meet the schedule
  double rate_achieved = 0;             // async open loop: messages sent per second
  std::uint64_t max_in_flight = 0;      // async latency: most messages unanswered at once
  std::optional<FlowLimit> flow;        // streaming with acknowledgements
  double flow_stall_fraction = 0;       // share of the span the harness's credits held the sender
  double channel_full_fraction = 0;     // share of the span the channel refused more (async)
  double lost_ack_wait_fraction = 0;    // lossy streaming: waits for lost acks (not in `seconds`)
  std::uint64_t runner_verify_ns = 0;   // --verify full, throughput: filling (inside the span)
  std::uint64_t peer_verify_ns = 0;     // --verify full, throughput: checking (inside the span)
  std::optional<OneWayPayload> oneway;  // async latency: the peer's one-way spectrum
  // The manual time of the trial's iterations, for Google Benchmark's
  // SetIterationTime: real_time is then the mean round trip (latency) or the
  // time per message (throughput).
  double iteration_seconds = 0;
};

// Every function takes `iterations`, the Google Benchmark iterations the
// manual time covers: the messages of a sync trial over a reliable
// mechanism that is not `timed`; 1 for a timed trial, which runs for
// ctx.min_time.

// Ping-pong: send, wait for the echo, record the round trip, `iterations`
// times or (timed) until ctx.min_time has passed; real_time is the mean
// round trip. With --verify full the payload is filled
// and checked outside the timed round trip (one more clock read).
// Lossy mechanisms run their own loop (self-timed: one iteration per trial).
TrialResult run_latency_trial(PatternContext& ctx, std::uint64_t iterations);

// Streaming: send `iterations` messages (timed: until ctx.min_time has
// passed) with blocking sends, the last asking for an acknowledgement; the
// time span ends when it arrives. real_time is the time per message. Lossy mechanisms stream with
// flow control (self-timed).
TrialResult run_throughput_trial(PatternContext& ctx, std::uint64_t iterations);

// Async latency (self-timed: the case registers one iteration per trial,
// the loop runs for ctx.min_time of wall time and the iteration time is the
// mean round trip). Non-blocking sends and receives driven by readiness
// waits; each message carries its send time (CLOCK_MONOTONIC), the echo
// yields the round trip, the peer records the one-way time.
// Closed loop (ctx.rate 0): ctx.window messages in flight (1: the round trip
// of the non-blocking path; more: the figure includes queueing). Open loop:
// message i is due at its scheduled time and both latencies count from that
// intended time (no coordinated omission); the sender waits for a due time
// by sleeping to shortly before it, then spinning (the spin is recorded as
// pacing, not as the runner's CPU), and records how late each send was.
TrialResult run_async_latency_trial(PatternContext& ctx, std::uint64_t iterations);

// Async throughput (self-timed): non-blocking streaming with readiness waits
// under stream_flow_limit(); the span ends at the final acknowledgement.
TrialResult run_async_throughput_trial(PatternContext& ctx, std::uint64_t iterations);

// The one of the four for a case's mode and pattern.
TrialResult run_trial(Mode mode, Pattern pattern, PatternContext& ctx, std::uint64_t iterations);

// Round trips run before the first trial and discarded: they fault in pages,
// warm caches and wake both CPUs. At least `min_round_trips` (enough to cycle
// through every slot of a queue), then more until `budget` or
// `max_round_trips`.
void warm_up(PatternContext& ctx, std::chrono::milliseconds budget, int min_round_trips,
             int max_round_trips);

}  // namespace ipcbench
