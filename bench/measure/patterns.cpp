// The sync patterns (ping-pong, blocking streaming), the warm-up and the
// dispatch; streaming with acknowledgements is in stream_trial.cpp, async
// latency in async_latency.cpp, the steps they share in trial.hpp.
#include "bench/measure/patterns.hpp"

#include <string>

#include "bench/measure/ping_pong.hpp"
#include "bench/measure/trial.hpp"
#include "mechanisms/posix/errors.hpp"

namespace ipcbench {

using trial::EchoCheck;
using trial::kLossTimeout;
using trial::LateReplies;

namespace {

void fail_echo(std::span<const std::byte> buf, std::size_t n, std::uint32_t seq, std::size_t size,
               bool full) {
  trial::fail_message(buf, n, seq, size, Kind::kEcho, full);
}

// Ping-pong over a mechanism that may drop messages (self-timed). A reply
// that does not come within kLossTimeout is given up: the next message
// goes, and the given-up one counts as lost unless its reply still arrives
// during the trial, when it is a sample like any other (counted `late`).
// Stale control replies are skipped. The watchdog sees no progress while
// messages are being lost, so a peer that stopped answering still fails
// the case after --timeout.
class LossyPingPong {
 public:
  explicit LossyPingPong(PatternContext& ctx)
      : ctx_(ctx),
        out_(ctx.link.channel(), ctx.send_buffer, ctx.size, ctx.verify_full, ctx.clock),
        check_(ctx.size, Kind::kEcho, ctx.verify_full),
        late_(ctx.size, Kind::kEcho),
        beats_(ctx.progress.load(std::memory_order_relaxed)) {}

  TrialResult run(std::uint64_t iterations) {
    const Clock& clock = ctx_.clock;
    ctx_.histogram.reset();
    TrialResult r;
    trial::TrialUsage usage(ctx_.link);
    std::uint32_t seq = ctx_.link.next_seq;
    const std::uint64_t start = Clock::monotonic_ns();
    const std::uint64_t end = start + trial::ns_of(ctx_.min_time);
    while (Clock::monotonic_ns() < end) {
      const std::span<const std::byte> message = out_.prepare(seq, Kind::kEcho);
      const std::uint64_t t0 = clock.now();
      out_.send(message);
      await_echo(seq, t0, r);
      ++seq;
    }
    const std::uint64_t stop = Clock::monotonic_ns();
    ctx_.link.next_seq = seq;
    trial::finish_trial(r, usage,
                        {.messages = ctx_.histogram.count(),
                         .seconds = static_cast<double>(stop - start) * 1e-9,
                         .round_trip_sum_ns = static_cast<double>(clock.to_ns(sum_ticks_)),
                         .iterations = iterations});
    return r;
  }

 private:
  // Waits for the echo of `seq` (sent at t0): a sample, or lost after
  // kLossTimeout. Late echoes of given-up messages that come meanwhile are
  // samples too; stale replies are skipped.
  void await_echo(std::uint32_t seq, std::uint64_t t0, TrialResult& r) {
    Channel& ch = ctx_.link.channel();
    const std::span<std::byte> buf = ctx_.receive_buffer;
    for (;;) {
      const auto n = ch.receive_for(buf, kLossTimeout);
      const std::uint64_t t1 = ctx_.clock.now();
      if (!n) {
        ++r.messages_lost;
        given_up_.add(seq, t0);
        return;
      }
      const MessageHeader h = read_header(buf.data());
      if (h.seq != seq && check_.shaped(h, *n)) {
        if (const auto sent_at = given_up_.take(h.seq)) {
          check_(buf, *n, h.seq);
          --r.messages_lost;
          ++r.late;
          record(h.seq, t1 - *sent_at);
          continue;
        }
      }
      if (late_.skip(buf, *n, seq)) continue;
      check_(buf, *n, seq);
      record(seq, t1 - t0);
      ctx_.progress.store(++beats_, std::memory_order_relaxed);
      return;
    }
  }
  void record(std::uint32_t seq, std::uint64_t ticks) {
    late_.seen(seq);
    sum_ticks_ += ticks;
    ctx_.histogram.record(ctx_.clock.to_ns(ticks));
  }

  PatternContext& ctx_;
  trial::Outgoing out_;
  EchoCheck check_;
  LateReplies late_;
  trial::GivenUp given_up_;
  std::uint64_t sum_ticks_ = 0;
  std::uint64_t beats_;
};

}  // namespace

void warm_up(PatternContext& ctx, std::chrono::milliseconds budget, int min_round_trips,
             int max_round_trips) {
  Channel& ch = ctx.link.channel();
  trial::Outgoing out(ch, ctx.send_buffer, ctx.size, ctx.verify_full, ctx.clock);
  const EchoCheck check(ctx.size, Kind::kEcho, ctx.verify_full);
  const std::uint64_t end =
      Clock::monotonic_ns() + static_cast<std::uint64_t>(budget.count()) * 1'000'000u;
  LateReplies late(ctx.size, Kind::kEcho);
  for (int i = 0; i < max_round_trips && (i < min_round_trips || Clock::monotonic_ns() < end);
       ++i) {
    const std::uint32_t seq = ctx.link.next_seq++;
    out.send(out.prepare(seq, Kind::kEcho));
    std::size_t n = 0;
    if (ctx.link.lossy()) {
      // A lost echo is no error here; a late one is skipped.
      std::optional<std::size_t> got;
      do {
        got = ch.receive_for(ctx.receive_buffer, kLossTimeout);
      } while (got && late.skip(ctx.receive_buffer, *got, seq));
      if (!got) continue;
      n = *got;
      late.seen(seq);
    } else {
      n = ch.receive(ctx.receive_buffer);
    }
    check(ctx.receive_buffer, n, seq);
    ctx.progress.store(ctx.progress.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

TrialResult run_latency_trial(PatternContext& ctx, std::uint64_t iterations) {
  if (ctx.link.lossy()) return LossyPingPong(ctx).run(iterations);
  ctx.histogram.reset();
  TrialResult r;
  trial::TrialUsage usage(ctx.link);
  Countdown countdown(ctx.timed ? ~std::uint64_t{0} : iterations);
  const std::uint64_t until =
      ctx.timed ? ctx.clock.now() + trial::ticks_of(ctx.clock, ctx.min_time) : ~std::uint64_t{0};
  const PingPongResult pp = ping_pong(
      countdown, ctx.link.channel(), ctx.clock, ctx.histogram, ctx.send_buffer, ctx.receive_buffer,
      ctx.size, ctx.verify_full, ctx.link.next_seq, ctx.progress, fail_echo, until);
  ctx.link.next_seq = pp.next_seq;
  const double sum_ns = static_cast<double>(ctx.clock.to_ns(pp.ticks));
  trial::finish_trial(r, usage,
                      {.messages = ctx.histogram.count(),
                       .seconds = sum_ns * 1e-9,
                       .round_trip_sum_ns = sum_ns,
                       .iterations = iterations});
  return r;
}

TrialResult run_throughput_trial(PatternContext& ctx, std::uint64_t iterations) {
  if (ctx.link.lossy()) return trial::run_stream_trial(ctx, iterations, /*blocking=*/true);
  Channel& ch = ctx.link.channel();
  const Clock& clock = ctx.clock;
  trial::Outgoing out(ch, ctx.send_buffer, ctx.size, ctx.verify_full, clock);
  std::uint64_t beats = ctx.progress.load(std::memory_order_relaxed);

  TrialResult r;
  trial::TrialUsage usage(ctx.link);
  std::uint32_t seq = ctx.link.next_seq;
  const std::uint64_t t0 = clock.now();
  // Timed: the clock is read every kClockEvery messages (a read costs a few
  // ns against the >= 100 ns of a send), and the message after the end is
  // the last, asking for the acknowledgement.
  constexpr std::uint64_t kClockEvery = 16;
  const std::uint64_t until = ctx.timed ? t0 + trial::ticks_of(clock, ctx.min_time) : 0;
  std::uint64_t last = ctx.timed ? ~std::uint64_t{0} : iterations;
  std::uint64_t sent = 0;
  while (sent < last) {
    ++sent;
    if (ctx.timed && sent % kClockEvery == 0 && clock.now() >= until) last = sent;
    out.fill(seq);
    out.send(out.header(seq, sent == last ? Kind::kSinkAck : Kind::kSink));
    ctx.progress.store(++beats, std::memory_order_relaxed);
    ++seq;
  }
  // The span ends when the peer confirms it has received (and checked) all.
  const std::size_t n = ch.receive(ctx.receive_buffer);
  const std::uint64_t t1 = clock.now();
  const AckPayload ack = trial::check_ack(ctx.receive_buffer, n, seq - 1);
  if (ack.received != sent) {
    throw ProtocolError("peer acknowledged " + std::to_string(ack.received) + " messages, " +
                        std::to_string(sent) + " were sent");
  }
  ctx.link.next_seq = seq;
  r.runner_verify_ns = clock.to_ns(out.fill_ticks());
  trial::finish_trial(r, usage,
                      {.messages = sent,
                       .seconds = static_cast<double>(clock.to_ns(t1 - t0)) * 1e-9,
                       .round_trip_sum_ns = std::nullopt,
                       .iterations = iterations});
  return r;
}

TrialResult run_async_throughput_trial(PatternContext& ctx, std::uint64_t iterations) {
  return trial::run_stream_trial(ctx, iterations, /*blocking=*/false);
}

TrialResult run_trial(Mode mode, Pattern pattern, PatternContext& ctx, std::uint64_t iterations) {
  const bool async = mode == Mode::kAsync;
  if (pattern == Pattern::kLatency) {
    return async ? run_async_latency_trial(ctx, iterations) : run_latency_trial(ctx, iterations);
  }
  return async ? run_async_throughput_trial(ctx, iterations)
               : run_throughput_trial(ctx, iterations);
}

}  // namespace ipcbench
