#include "patterns.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstring>

#include "ipcbench/errors.hpp"
#include "protocol.hpp"

namespace ipcbench {
namespace {

struct ThreadUsage {
  std::uint64_t cpu_ns;
  std::uint64_t context_switches;
};

// The whole runner process, like the peer's figure: some mechanisms (ZeroMQ)
// do their work in library threads. The watchdog thread's share is a few
// wake-ups per second, far below what any case costs.
ThreadUsage thread_usage() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
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

void warm_up(PatternContext& ctx, std::chrono::milliseconds budget, int min_round_trips,
             int max_round_trips) {
  Channel& ch = ctx.session.channel();
  const std::uint64_t end =
      Clock::monotonic_ns() + static_cast<std::uint64_t>(budget.count()) * 1'000'000u;
  for (int i = 0; i < max_round_trips && (i < min_round_trips || Clock::monotonic_ns() < end);
       ++i) {
    const std::uint32_t seq = ctx.session.next_seq++;
    write_header(ctx.send_buffer.data(), seq, ctx.size, Kind::kEcho);
    if (ctx.verify_full) fill_pattern(ctx.send_buffer.first(ctx.size), seq);
    ch.send(ctx.send_buffer.first(ctx.size));
    std::size_t n = 0;
    if (ctx.session.lossy()) {
      // A lost echo is no error here; a late one is skipped later.
      const auto got = ch.receive_for(ctx.receive_buffer, std::chrono::milliseconds(200));
      if (!got) continue;
      n = *got;
      if (n >= kHeaderBytes && read_header(ctx.receive_buffer.data()).seq != seq) continue;
    } else {
      n = ch.receive(ctx.receive_buffer);
    }
    const std::string bad =
        check_message(ctx.receive_buffer, n, seq, ctx.size, Kind::kEcho, ctx.verify_full);
    if (!bad.empty()) throw ProtocolError(bad);
    ctx.progress.store(ctx.progress.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  }
}

namespace {

// Lossy mechanisms: how long a reply may take before the message counts as
// lost. Far above any loopback round trip, short enough that a lost
// datagram costs little.
constexpr auto kLossTimeout = std::chrono::milliseconds(200);

// Ping-pong over a mechanism that may drop messages: a reply that does not
// come within kLossTimeout is counted lost (no sample); a late reply to an
// earlier message is skipped when it arrives. The watchdog sees no progress
// while messages are being lost, so a peer that stopped answering still
// fails the case after --timeout.
TrialResult run_lossy_latency_trial(benchmark::State& state, PatternContext& ctx) {
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
    for (;;) {
      const auto n = ch.receive_for(ctx.receive_buffer, kLossTimeout);
      const std::uint64_t t1 = clock.now();
      if (!n) {
        ++r.messages_lost;
        break;
      }
      const MessageHeader h = read_header(ctx.receive_buffer.data());
      if (*n >= kHeaderBytes && static_cast<std::int32_t>(h.seq - seq) < 0) continue;  // late
      if (*n != ctx.size || h.seq != seq || h.length_kind != expect_lk ||
          (ctx.verify_full && check_pattern(ctx.receive_buffer.first(*n), seq) != *n)) {
        fail_message(ctx.receive_buffer, *n, seq, ctx.size, Kind::kEcho, ctx.verify_full);
      }
      total_ticks += t1 - t0;
      hist.record(clock.to_ns(t1 - t0));
      ctx.progress.store(++progress, std::memory_order_relaxed);
      break;
    }
    ++seq;
  }
  ctx.session.next_seq = seq;
  usage.finish(r);
  r.messages = hist.count();
  r.seconds = static_cast<double>(clock.to_ns(total_ticks)) * 1e-9;
  state.SetIterationTime(r.seconds);
  return r;
}

// Messages per acknowledgement window for a lossy mechanism: about 32 KiB
// of payload, so two windows in flight stay well inside a socket buffer.
std::uint64_t lossy_window(std::size_t size) {
  return std::clamp<std::uint64_t>((32u * 1024u) / size, 1, 64);
}

// Streaming over a mechanism that may drop messages, with credit-based flow
// control: the peer acknowledges every window of W messages, and at most two
// windows are unacknowledged. An acknowledgement that does not come within
// kLossTimeout is given up (its window counted as delivered or lost by the
// final count), so one lost datagram never hangs the case. The span ends
// when the peer's final count arrives; rates count delivered messages only.
TrialResult run_lossy_throughput_trial(benchmark::State& state, PatternContext& ctx) {
  Channel& ch = ctx.session.channel();
  std::byte* const sbuf = ctx.send_buffer.data();
  const std::span<const std::byte> message = ctx.send_buffer.first(ctx.size);
  const std::uint64_t total = static_cast<std::uint64_t>(state.max_iterations);
  const std::uint64_t window = lossy_window(ctx.size);
  std::uint64_t progress = ctx.progress.load(std::memory_order_relaxed);

  TrialResult r;
  UsageSpan usage(ctx.session);
  const std::uint32_t first_seq = ctx.session.next_seq;
  std::uint32_t seq = first_seq;
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;  // messages up to the newest acknowledged (or given-up) request
  AckPayload last_ack{};
  bool final_acked = false;
  // Waits for one acknowledgement; false on timeout.
  const auto await_ack = [&]() -> bool {
    const auto deadline = std::chrono::steady_clock::now() + kLossTimeout;
    for (;;) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return false;
      const auto n = ch.receive_for(ctx.receive_buffer, left);
      if (!n) return false;
      const MessageHeader h = read_header(ctx.receive_buffer.data());
      if (*n != kControlBytes || kind_of(h) != Kind::kAck) {
        fail_message(ctx.receive_buffer, *n, seq - 1, kControlBytes, Kind::kAck, false);
      }
      const std::uint64_t upto = static_cast<std::uint32_t>(h.seq - first_seq) + 1u;
      if (upto <= acked) continue;  // a late acknowledgement of an older window
      acked = upto;
      std::memcpy(&last_ack, ctx.receive_buffer.data() + kHeaderBytes, sizeof last_ack);
      if (upto == sent && sent == total) final_acked = true;
      return true;
    }
  };

  const std::uint64_t t0 = ctx.clock.now();
  for (auto _ : state) {
    while (sent - acked >= 2 * window) {
      if (!await_ack()) acked = std::min(sent, acked + window);  // give the window up
    }
    ++sent;
    const bool ask = sent % window == 0 || sent == total;
    write_header(sbuf, seq, ctx.size, ask ? Kind::kSinkAck : Kind::kSink);
    if (ctx.verify_full) fill_pattern(ctx.send_buffer.first(ctx.size), seq);
    ch.send(message);
    ++seq;
    ctx.progress.store(++progress, std::memory_order_relaxed);
  }
  while (!final_acked && acked < sent) {
    if (!await_ack()) break;
  }
  ctx.session.next_seq = seq;
  if (!final_acked) last_ack = ctx.session.peer_count();  // the final request was lost
  const std::uint64_t t1 = ctx.clock.now();
  if (last_ack.received > sent) {
    throw ProtocolError("peer counted " + std::to_string(last_ack.received) + " messages, " +
                        std::to_string(sent) + " were sent");
  }
  usage.finish(r);
  r.messages = last_ack.received;
  r.messages_lost = sent - last_ack.received;
  r.seconds = static_cast<double>(ctx.clock.to_ns(t1 - t0)) * 1e-9;
  state.SetIterationTime(r.seconds);
  return r;
}

}  // namespace

TrialResult run_latency_trial(benchmark::State& state, PatternContext& ctx) {
  if (ctx.session.lossy()) return run_lossy_latency_trial(state, ctx);
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
  if (ctx.session.lossy()) return run_lossy_throughput_trial(state, ctx);
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
