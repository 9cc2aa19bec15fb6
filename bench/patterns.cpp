#include "patterns.hpp"

#include <sys/resource.h>

#include <cstring>

#include "ipcbench/errors.hpp"
#include "protocol.hpp"

namespace ipcbench {
namespace {

struct ThreadUsage {
  std::uint64_t cpu_ns;
  std::uint64_t context_switches;
};

ThreadUsage thread_usage() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  const auto ns = [](const timeval& tv) {
    return static_cast<std::uint64_t>(tv.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(tv.tv_usec) * 1000u;
  };
  return {ns(ru.ru_utime) + ns(ru.ru_stime),
          static_cast<std::uint64_t>(ru.ru_nvcsw + ru.ru_nivcsw)};
}

// The header word the echo must carry: our length and kind.
std::uint32_t length_kind(std::size_t size, Kind kind) {
  return static_cast<std::uint32_t>(size) | (static_cast<std::uint32_t>(kind) << 28);
}

[[noreturn]] void fail_message(std::span<const std::byte> buf, std::size_t n, std::uint32_t seq,
                               std::size_t size, Kind kind, bool full) {
  std::string bad = check_message(buf, n, seq, size, kind, full);
  if (bad.empty()) bad = "unexpected reply";
  throw ProtocolError(bad);
}

// Brackets a trial with CPU and context-switch readings on both sides.
class UsageSpan {
 public:
  explicit UsageSpan(PeerSession& s) : session_(s) {
    peer0_ = s.peer_stats();
    self0_ = thread_usage();
  }
  void finish(TrialResult& r) {
    const ThreadUsage self1 = thread_usage();
    const StatsPayload peer1 = session_.peer_stats();
    r.runner_cpu_ns = self1.cpu_ns - self0_.cpu_ns;
    r.runner_context_switches = self1.context_switches - self0_.context_switches;
    r.peer_cpu_ns = peer1.cpu_ns - peer0_.cpu_ns;
    r.peer_context_switches = peer1.context_switches - peer0_.context_switches;
  }

 private:
  PeerSession& session_;
  StatsPayload peer0_{};
  ThreadUsage self0_{};
};

}  // namespace

void warm_up(PatternContext& ctx, std::chrono::milliseconds budget, int max_round_trips) {
  Channel& ch = ctx.session.channel();
  const std::uint64_t end = Clock::monotonic_ns() + static_cast<std::uint64_t>(budget.count()) * 1'000'000u;
  for (int i = 0; i < max_round_trips && Clock::monotonic_ns() < end; ++i) {
    const std::uint32_t seq = ctx.session.next_seq++;
    write_header(ctx.send_buffer.data(), seq, ctx.size, Kind::kEcho);
    if (ctx.verify_full) fill_pattern(ctx.send_buffer.first(ctx.size), seq);
    ch.send(ctx.send_buffer.first(ctx.size));
    const std::size_t n = ch.receive(ctx.receive_buffer);
    const std::string bad =
        check_message(ctx.receive_buffer, n, seq, ctx.size, Kind::kEcho, ctx.verify_full);
    if (!bad.empty()) throw ProtocolError(bad);
    ctx.progress.store(ctx.progress.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  }
}

TrialResult run_latency_trial(benchmark::State& state, PatternContext& ctx) {
  Channel& ch = ctx.session.channel();
  const Clock& clock = ctx.clock;
  Histogram& hist = ctx.histogram;
  std::byte* const sbuf = ctx.send_buffer.data();
  const std::span<const std::byte> message = ctx.send_buffer.first(ctx.size);
  const std::uint32_t expect_lk = length_kind(ctx.size, Kind::kEcho);
  std::uint64_t progress = ctx.progress.load(std::memory_order_relaxed);

  hist.reset();
  TrialResult r;
  UsageSpan usage(ctx.session);
  std::uint32_t seq = ctx.session.next_seq;
  std::uint64_t total_ticks = 0;
  for (auto _ : state) {
    write_header(sbuf, seq, ctx.size, Kind::kEcho);
    if (ctx.verify_full) fill_pattern(ctx.send_buffer.first(ctx.size), seq);
    const std::uint64_t t0 = clock.now();
    ch.send(message);
    const std::size_t n = ch.receive(ctx.receive_buffer);
    const std::uint64_t t1 = clock.now();
    // Header check on every reply: seq, length and kind in two compares.
    const MessageHeader h = read_header(ctx.receive_buffer.data());
    if (n != ctx.size || h.seq != seq || h.length_kind != expect_lk) [[unlikely]] {
      fail_message(ctx.receive_buffer, n, seq, ctx.size, Kind::kEcho, ctx.verify_full);
    }
    if (ctx.verify_full && check_pattern(ctx.receive_buffer.first(n), seq) != n) {
      fail_message(ctx.receive_buffer, n, seq, ctx.size, Kind::kEcho, true);
    }
    const std::uint64_t ticks = t1 - t0;
    total_ticks += ticks;
    hist.record(clock.to_ns(ticks));
    ++seq;
    ctx.progress.store(++progress, std::memory_order_relaxed);
  }
  ctx.session.next_seq = seq;
  usage.finish(r);
  r.messages = hist.count();
  r.seconds = static_cast<double>(clock.to_ns(total_ticks)) * 1e-9;
  state.SetIterationTime(r.seconds);
  return r;
}

TrialResult run_throughput_trial(benchmark::State& state, PatternContext& ctx) {
  Channel& ch = ctx.session.channel();
  std::byte* const sbuf = ctx.send_buffer.data();
  const std::span<const std::byte> message = ctx.send_buffer.first(ctx.size);
  const std::uint64_t total = static_cast<std::uint64_t>(state.max_iterations);
  std::uint64_t progress = ctx.progress.load(std::memory_order_relaxed);

  TrialResult r;
  UsageSpan usage(ctx.session);
  std::uint32_t seq = ctx.session.next_seq;
  std::uint64_t sent = 0;
  const std::uint64_t t0 = ctx.clock.now();
  for (auto _ : state) {
    ++sent;
    write_header(sbuf, seq, ctx.size, sent == total ? Kind::kSinkAck : Kind::kSink);
    if (ctx.verify_full) fill_pattern(ctx.send_buffer.first(ctx.size), seq);
    ch.send(message);
    ++seq;
    ctx.progress.store(++progress, std::memory_order_relaxed);
  }
  // The span ends when the peer confirms it has received (and checked) all.
  const std::size_t n = ch.receive(ctx.receive_buffer);
  const std::uint64_t t1 = ctx.clock.now();
  const std::string bad =
      check_message(ctx.receive_buffer, n, seq - 1, kControlBytes, Kind::kAck, false);
  if (!bad.empty()) throw ProtocolError("acknowledgement: " + bad);
  AckPayload ack;
  std::memcpy(&ack, ctx.receive_buffer.data() + kHeaderBytes, sizeof ack);
  if (ack.received != sent) {
    throw ProtocolError("peer acknowledged " + std::to_string(ack.received) + " messages, " +
                        std::to_string(sent) + " were sent");
  }
  ctx.session.next_seq = seq;
  usage.finish(r);
  r.messages = sent;
  r.seconds = static_cast<double>(ctx.clock.to_ns(t1 - t0)) * 1e-9;
  state.SetIterationTime(r.seconds);
  return r;
}

}  // namespace ipcbench
