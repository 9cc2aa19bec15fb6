#include "patterns.hpp"

#include <poll.h>

#include <ctime>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ipcbench/errors.hpp"
#include "ipcbench/posix/retry.hpp"
#include "ping_pong.hpp"
#include "protocol.hpp"
#include "schedule.hpp"
#include "sysinfo.hpp"
#include "ipcbench/posix/time.hpp"

namespace ipcbench {
namespace {


[[noreturn]] void fail_message(std::span<const std::byte> buf, std::size_t n, std::uint32_t seq,
                               std::size_t size, Kind kind, bool full) {
  std::string bad = check_message(buf, n, seq, size, kind, full);
  if (bad.empty()) bad = "unexpected reply";
  throw ProtocolError(bad);
}

void fail_echo(std::span<const std::byte> buf, std::size_t n, std::uint32_t seq, std::size_t size,
               bool full) {
  fail_message(buf, n, seq, size, Kind::kEcho, full);
}

// Lossy mechanisms: how long a reply may take before the message counts as
// lost. Far above any loopback round trip, short enough that a lost
// datagram costs little.
constexpr auto kLossTimeout = std::chrono::milliseconds(200);

bool is_control_reply(const MessageHeader& h, std::size_t n) noexcept {
  const Kind k = kind_of(h);
  return n == kControlBytes && length_of(h) == kControlBytes &&
         (k == Kind::kAck || k == Kind::kStatsReply || k == Kind::kOneWayReply);
}

// Lossy mechanisms deliver late replies: the echo of a message already
// counted lost, the answer to a control request that was asked again. Such a
// reply is skipped, but only if it is one: older than the reply awaited,
// shaped like an echo of the case or like a control reply, and newer than
// every reply before it in the trial (datagrams between two processes on one
// host are not reordered, and a repeat is never a late reply). Anything else
// is left to the caller's check, which fails the case: garbage or a
// duplicate is never skipped silently.
class LateReplies {
 public:
  LateReplies(std::size_t size, Kind echo) : size_(size), echo_lk_(pack_length_kind(size, echo)) {}

  // True when buf[0..n) is a late reply to skip (and remembers it).
  bool skip(std::span<const std::byte> buf, std::size_t n, std::uint32_t awaited) noexcept {
    if (n < kHeaderBytes) return false;
    const MessageHeader h = read_header(buf.data());
    if (static_cast<std::int32_t>(h.seq - awaited) >= 0) return false;
    if (any_ && static_cast<std::int32_t>(h.seq - newest_) <= 0) return false;
    if (!(n == size_ && h.length_kind == echo_lk_) && !is_control_reply(h, n)) return false;
    seen(h.seq);
    return true;
  }
  // Records the sequence number of a reply that was accepted.
  void seen(std::uint32_t seq) noexcept {
    newest_ = seq;
    any_ = true;
  }

 private:
  std::size_t size_;
  std::uint32_t echo_lk_;
  std::uint32_t newest_ = 0;
  bool any_ = false;
};

// Checks an acknowledgement (kAck, kControlBytes, answering the message
// `expected_seq`) and returns how many messages the peer says it received.
AckPayload check_ack(std::span<const std::byte> buf, std::size_t n, std::uint32_t expected_seq) {
  const std::string bad = check_message(buf, n, expected_seq, kControlBytes, Kind::kAck, false);
  if (!bad.empty()) throw ProtocolError("acknowledgement: " + bad);
  AckPayload ack;
  std::memcpy(&ack, buf.data() + kHeaderBytes, sizeof ack);
  return ack;
}

// Credit-based streaming asks for an acknowledgement with every `window`-th
// message and the last one; the number of messages up to and including the
// asking one that follows the first `acked`.
std::uint64_t next_ask(std::uint64_t acked, std::uint64_t window, std::uint64_t total) noexcept {
  return std::min(total, (acked / window + 1) * window);
}

// Lossy streaming: an acknowledgement may be late (its window was given up)
// but must answer an asking message that was sent, after every other
// acknowledgement received (`newest`, 0 for none). Returns the messages up to
// the asking one; throws ProtocolError otherwise.
std::uint64_t check_lossy_ack(std::span<const std::byte> buf, std::size_t n,
                              std::uint32_t first_seq, std::uint64_t sent, std::uint64_t newest,
                              std::uint64_t window, std::uint64_t total) {
  const MessageHeader h = read_header(buf.data());
  const std::uint64_t upto = static_cast<std::uint32_t>(h.seq - first_seq) + 1u;
  const bool asked = upto > newest && upto <= sent && (upto % window == 0 || upto == total);
  if (n < kHeaderBytes || !asked) {
    // Named against the next acknowledgement that could come.
    check_ack(buf, n, first_seq + static_cast<std::uint32_t>(next_ask(newest, window, total)) - 1);
    throw ProtocolError("acknowledgement: sequence error: seq " + std::to_string(h.seq) +
                        " answers no message that asked for one");
  }
  check_ack(buf, n, h.seq);  // kind and length
  return upto;
}

// Brackets a trial with CPU and context-switch readings on both sides.
class UsageSpan {
 public:
  explicit UsageSpan(PeerSession& s) : session_(s) {
    peer0_ = s.peer_stats();
    self0_ = process_usage();
  }
  void finish(TrialResult& r) {
    const StatsPayload self1 = process_usage();
    const StatsPayload peer1 = session_.peer_stats();
    r.runner_cpu_ns = self1.cpu_ns - self0_.cpu_ns;
    r.runner_context_switches = self1.context_switches - self0_.context_switches;
    r.peer_cpu_ns = peer1.cpu_ns - peer0_.cpu_ns;
    r.peer_context_switches = peer1.context_switches - peer0_.context_switches;
  }

 private:
  PeerSession& session_;
  StatsPayload peer0_{};
  StatsPayload self0_{};
};

}  // namespace

void warm_up(PatternContext& ctx, std::chrono::milliseconds budget, int min_round_trips,
             int max_round_trips) {
  Channel& ch = ctx.session.channel();
  const std::uint64_t end =
      Clock::monotonic_ns() + static_cast<std::uint64_t>(budget.count()) * 1'000'000u;
  LateReplies late(ctx.size, Kind::kEcho);
  for (int i = 0; i < max_round_trips && (i < min_round_trips || Clock::monotonic_ns() < end);
       ++i) {
    const std::uint32_t seq = ctx.session.next_seq++;
    write_header(ctx.send_buffer.data(), seq, ctx.size, Kind::kEcho);
    if (ctx.verify_full) fill_pattern(ctx.send_buffer.first(ctx.size), seq);
    ch.send(ctx.send_buffer.first(ctx.size));
    std::size_t n = 0;
    if (ctx.session.lossy()) {
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
    const std::string bad =
        check_message(ctx.receive_buffer, n, seq, ctx.size, Kind::kEcho, ctx.verify_full);
    if (!bad.empty()) throw ProtocolError(bad);
    ctx.progress.store(ctx.progress.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  }
}

namespace {

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
  const std::uint32_t expect_lk = pack_length_kind(ctx.size, Kind::kEcho);
  std::uint64_t progress = ctx.progress.load(std::memory_order_relaxed);

  hist.reset();
  TrialResult r;
  UsageSpan usage(ctx.session);
  std::uint32_t seq = ctx.session.next_seq;
  std::uint64_t total_ticks = 0;
  LateReplies late(ctx.size, Kind::kEcho);
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
      if (late.skip(ctx.receive_buffer, *n, seq)) continue;
      const MessageHeader h = read_header(ctx.receive_buffer.data());
      if (*n != ctx.size || h.seq != seq || h.length_kind != expect_lk ||
          (ctx.verify_full && check_pattern(ctx.receive_buffer.first(*n), seq) != *n)) {
        fail_message(ctx.receive_buffer, *n, seq, ctx.size, Kind::kEcho, ctx.verify_full);
      }
      late.seen(seq);
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
  std::uint64_t newest_ack = 0;  // messages up to the newest acknowledgement received
  AckPayload last_ack{};
  bool final_acked = false;
  LateReplies late(ctx.size, Kind::kEcho);  // control replies from before the trial
  // Waits for one acknowledgement; false on timeout.
  const auto await_ack = [&]() -> bool {
    const auto deadline = std::chrono::steady_clock::now() + kLossTimeout;
    for (;;) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return false;
      const auto n = ch.receive_for(ctx.receive_buffer, left);
      if (!n) return false;
      if (late.skip(ctx.receive_buffer, *n, first_seq)) continue;
      const std::uint64_t upto =
          check_lossy_ack(ctx.receive_buffer, *n, first_seq, sent, newest_ack, window, total);
      newest_ack = upto;
      const AckPayload ack =
          check_ack(ctx.receive_buffer, *n, read_header(ctx.receive_buffer.data()).seq);
      if (ack.received > upto || ack.received < last_ack.received) {
        throw ProtocolError("peer acknowledged " + std::to_string(ack.received) + " of " +
                            std::to_string(upto) + " messages after " +
                            std::to_string(last_ack.received));
      }
      last_ack = ack;
      // Lossy sends never block: only an answer shows that the peer is there.
      ctx.progress.store(++progress, std::memory_order_relaxed);
      if (upto <= acked) continue;  // a late acknowledgement of a window given up
      acked = upto;
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
  ctx.histogram.reset();
  TrialResult r;
  UsageSpan usage(ctx.session);
  const PingPongResult pp =
      ping_pong(state, ctx.session.channel(), ctx.clock, ctx.histogram, ctx.send_buffer,
                ctx.receive_buffer, ctx.size, ctx.verify_full, ctx.session.next_seq,
                ctx.progress, fail_echo);
  ctx.session.next_seq = pp.next_seq;
  usage.finish(r);
  r.messages = ctx.histogram.count();
  r.seconds = static_cast<double>(ctx.clock.to_ns(pp.ticks)) * 1e-9;
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
  const AckPayload ack = check_ack(ctx.receive_buffer, n, seq - 1);
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

namespace {

// Waits until the channel can probably receive, or also send when
// `want_send`, at most `timeout`. With descriptors, one ppoll on both; the
// channel's own waits otherwise (spin, futex, timed semaphores, ...).
void wait_ready(Channel& ch, bool want_send, std::chrono::nanoseconds timeout) {
  want_send = want_send || ch.send_pending();  // our own backlog must drain too
  const int rfd = ch.receive_fd();
  const int sfd = ch.send_fd();
  if (want_send && rfd >= 0 && sfd >= 0) {
    pollfd fds[2] = {{rfd, POLLIN, 0}, {sfd, POLLOUT, 0}};
    const timespec ts = posix::to_timespec(timeout);
    if (::ppoll(fds, 2, &ts, nullptr) < 0) {
      if (errno != EINTR) posix::throw_errno("poll failed");
      posix::throw_if_interrupted();
    }
    return;
  }
  if (want_send) {
    // No common descriptor: alternate short waits so neither side starves.
    const auto slice = std::min<std::chrono::nanoseconds>(timeout, std::chrono::microseconds(100));
    if (!ch.wait_receivable(slice)) ch.wait_sendable(slice);
    return;
  }
  ch.wait_receivable(timeout);
}

constexpr auto kAsyncIdleWait = std::chrono::milliseconds(100);

}  // namespace

TrialResult run_async_latency_trial(benchmark::State& state, PatternContext& ctx) {
  Channel& ch = ctx.session.channel();
  Histogram& hist = ctx.histogram;
  std::byte* const sbuf = ctx.send_buffer.data();
  const std::span<const std::byte> message = ctx.send_buffer.first(ctx.size);
  const std::uint64_t total = static_cast<std::uint64_t>(state.max_iterations);
  const std::uint64_t window = std::max<std::uint64_t>(ctx.window, 1);
  const bool lossy = ctx.session.lossy();
  const std::uint32_t expect_lk = pack_length_kind(ctx.size, Kind::kEchoStamped);
  const auto loss_timeout_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(kLossTimeout).count());
  std::uint64_t progress = ctx.progress.load(std::memory_order_relaxed);

  hist.reset();
  TrialResult r;
  UsageSpan usage(ctx.session);
  const std::uint32_t first = ctx.session.next_seq;
  std::uint64_t sent = 0;
  std::uint64_t accounted = 0;  // received or counted lost
  std::uint64_t last_send_ns = 0;
  const std::uint64_t t0 = Clock::monotonic_ns();
  std::optional<OpenLoopSchedule> schedule;
  if (ctx.rate > 0) schedule.emplace(t0, ctx.rate);
  std::uint64_t last_arrival = t0;
  // The send stamp of every message in flight, by position: an echo must
  // bring back the very stamp its round trip is timed from.
  std::vector<std::uint64_t> stamps(std::min(window, std::max<std::uint64_t>(total, 1)));
  LateReplies late(ctx.size, Kind::kEchoStamped);

  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(total))) {
    while (accounted < total) {
      bool progressed = false;
      bool send_blocked = false;
      std::uint64_t next_due = 0;  // open loop: when the next send is due
      // 1. Send what the window and the schedule allow.
      while (sent < total && sent - accounted < window) {
        const std::uint64_t now = Clock::monotonic_ns();
        std::uint64_t stamp = now;
        if (schedule) {
          const std::uint64_t due = schedule->due_ns(sent);
          if (due > now) {
            next_due = due;
            break;
          }
          stamp = due;  // latency counts from when it should have gone
        }
        const std::uint32_t seq = first + static_cast<std::uint32_t>(sent);
        write_header(sbuf, seq, ctx.size, Kind::kEchoStamped, stamp);
        if (ctx.verify_full) fill_pattern(ctx.send_buffer.first(ctx.size), seq);
        if (!ch.try_send(message)) {
          send_blocked = true;
          break;
        }
        stamps[sent % stamps.size()] = stamp;
        last_send_ns = now;
        ++sent;
        progressed = true;
      }
      // 2. Take every echo that has arrived.
      while (accounted < sent) {
        const auto n = ch.try_receive(ctx.receive_buffer);
        if (!n) break;
        const std::uint64_t t = Clock::monotonic_ns();
        const MessageHeader h = read_header(ctx.receive_buffer.data());
        const std::uint32_t want = first + static_cast<std::uint32_t>(accounted);
        const auto ahead = static_cast<std::int32_t>(h.seq - want);
        if (lossy && late.skip(ctx.receive_buffer, *n, want)) continue;  // already counted lost
        if (lossy && *n == ctx.size && ahead > 0 && h.length_kind == expect_lk &&
            accounted + static_cast<std::uint64_t>(ahead) < sent) {
          r.messages_lost += static_cast<std::uint64_t>(ahead);  // skipped ones were lost
          accounted += static_cast<std::uint64_t>(ahead);
        }
        const std::uint32_t seq = first + static_cast<std::uint32_t>(accounted);
        if (*n != ctx.size || h.seq != seq || h.length_kind != expect_lk ||
            (ctx.verify_full && check_pattern(ctx.receive_buffer.first(*n), seq) != *n)) {
          fail_message(ctx.receive_buffer, *n, seq, ctx.size, Kind::kEchoStamped,
                       ctx.verify_full);
        }
        if (h.stamp != stamps[accounted % stamps.size()]) {
          throw ProtocolError("stamp error: the echo of seq " + std::to_string(seq) +
                              " carries send stamp " + std::to_string(h.stamp) + ", not " +
                              std::to_string(stamps[accounted % stamps.size()]));
        }
        late.seen(seq);
        const std::uint64_t rtt = t > h.stamp ? t - h.stamp : 0;
        hist.record(rtt);
        ++accounted;
        last_arrival = t;
        progressed = true;
        ctx.progress.store(++progress, std::memory_order_relaxed);
      }
      if (progressed || accounted >= total) continue;
      // 3. Nothing to do now: wait for readiness (or the next due time).
      const std::uint64_t now = Clock::monotonic_ns();
      if (lossy && accounted < sent && now - last_arrival > loss_timeout_ns) {
        r.messages_lost += sent - accounted;  // everything in flight is gone
        accounted = sent;
        last_arrival = now;
        continue;
      }
      std::chrono::nanoseconds timeout = kAsyncIdleWait;
      if (next_due > now) timeout = std::chrono::nanoseconds(next_due - now);
      if (accounted == sent && next_due > now) {
        // Nothing in flight: just wait for the schedule.
        const timespec ts = posix::to_timespec(std::chrono::nanoseconds(next_due - now));
        nanosleep(&ts, nullptr);
        posix::throw_if_interrupted();
        continue;
      }
      wait_ready(ch, send_blocked, timeout);
    }
  }
  const std::uint64_t t_end = Clock::monotonic_ns();
  ctx.session.next_seq = first + static_cast<std::uint32_t>(sent);
  r.oneway = ctx.session.peer_oneway();
  // The peer times every echo it receives: all that were sent, or (lossy)
  // no more than that.
  if (r.oneway->count > sent || (!lossy && r.oneway->count != sent)) {
    throw ProtocolError("peer reported " + std::to_string(r.oneway->count) +
                        " one-way samples, " + std::to_string(sent) + " messages were sent");
  }
  usage.finish(r);
  r.messages = hist.count();
  r.seconds = static_cast<double>(t_end - t0) * 1e-9;
  if (schedule && sent > 1 && last_send_ns > t0) {
    // Sends per second over the sending span, as a rate comparable to the
    // requested one (n sends span n-1 periods).
    r.rate_achieved = static_cast<double>(sent - 1) / (static_cast<double>(last_send_ns - t0) * 1e-9);
  } else if (r.seconds > 0) {
    r.rate_achieved = static_cast<double>(sent) / r.seconds;
  }
  // Manual time is the wall span, so --min-time means what it says;
  // real_time is then the time per message (p50_ns/mean_ns hold latency).
  state.SetIterationTime(r.seconds > 0 ? r.seconds : 1e-9);
  return r;
}

TrialResult run_async_throughput_trial(benchmark::State& state, PatternContext& ctx) {
  Channel& ch = ctx.session.channel();
  std::byte* const sbuf = ctx.send_buffer.data();
  const std::span<const std::byte> message = ctx.send_buffer.first(ctx.size);
  const std::uint64_t total = static_cast<std::uint64_t>(state.max_iterations);
  const std::uint64_t window = std::max<std::uint64_t>(ctx.window, 1);
  const bool lossy = ctx.session.lossy();
  const auto loss_timeout_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(kLossTimeout).count());
  std::uint64_t progress = ctx.progress.load(std::memory_order_relaxed);

  TrialResult r;
  UsageSpan usage(ctx.session);
  const std::uint32_t first = ctx.session.next_seq;
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;  // messages up to the newest acknowledged (or given-up) request
  std::uint64_t newest_ack = 0;  // messages up to the newest acknowledgement received
  AckPayload last_ack{};
  bool final_acked = false;
  LateReplies late(ctx.size, Kind::kEcho);  // lossy: control replies from before the trial
  const std::uint64_t t0 = ctx.clock.now();
  std::uint64_t last_ack_ns = Clock::monotonic_ns();

  while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(total))) {
    while (!final_acked) {
      bool progressed = false;
      bool send_blocked = false;
      while (sent < total && sent - acked < 2 * window) {
        const bool ask = (sent + 1) % window == 0 || sent + 1 == total;
        const std::uint32_t seq = first + static_cast<std::uint32_t>(sent);
        write_header(sbuf, seq, ctx.size, ask ? Kind::kSinkAck : Kind::kSink);
        if (ctx.verify_full) fill_pattern(ctx.send_buffer.first(ctx.size), seq);
        if (!ch.try_send(message)) {
          send_blocked = true;
          break;
        }
        ++sent;
        progressed = true;
        // Lossy sends never block: only answers show that the peer is there.
        if (!lossy) ctx.progress.store(++progress, std::memory_order_relaxed);
      }
      while (auto n = ch.try_receive(ctx.receive_buffer)) {
        std::uint64_t upto = 0;
        AckPayload ack{};
        if (lossy) {
          if (late.skip(ctx.receive_buffer, *n, first)) continue;
          upto = check_lossy_ack(ctx.receive_buffer, *n, first, sent, newest_ack, window, total);
          ack = check_ack(ctx.receive_buffer, *n, read_header(ctx.receive_buffer.data()).seq);
        } else {
          // Nothing is lost: acknowledgements come in order, one per asking
          // message, each counting every message up to it.
          upto = next_ask(acked, window, total);
          ack = check_ack(ctx.receive_buffer, *n, first + static_cast<std::uint32_t>(upto) - 1);
          if (upto > sent) {
            throw ProtocolError("acknowledgement: sequence error: seq " +
                                std::to_string(read_header(ctx.receive_buffer.data()).seq) +
                                " answers a message not sent yet");
          }
        }
        if (ack.received > upto || ack.received < last_ack.received ||
            (!lossy && ack.received != upto)) {
          throw ProtocolError("peer acknowledged " + std::to_string(ack.received) + " of " +
                              std::to_string(upto) + " messages sent");
        }
        newest_ack = upto;
        last_ack = ack;
        last_ack_ns = Clock::monotonic_ns();
        progressed = true;
        ctx.progress.store(++progress, std::memory_order_relaxed);
        if (upto <= acked) continue;  // lossy: a late acknowledgement of a window given up
        acked = upto;
        if (upto == total) final_acked = true;
      }
      if (progressed || final_acked) continue;
      if (lossy && Clock::monotonic_ns() - last_ack_ns > loss_timeout_ns) {
        if (sent == total) break;  // the final request or its answer was lost: ask below
        acked = std::min(sent, acked + window);  // give the window up
        last_ack_ns = Clock::monotonic_ns();
        continue;
      }
      wait_ready(ch, send_blocked, lossy ? std::chrono::nanoseconds(kLossTimeout)
                                         : std::chrono::nanoseconds(kAsyncIdleWait));
    }
  }
  ctx.session.next_seq = first + static_cast<std::uint32_t>(sent);
  if (!final_acked) last_ack = ctx.session.peer_count();
  const std::uint64_t t1 = ctx.clock.now();
  if (last_ack.received > sent || (!lossy && last_ack.received != sent)) {
    throw ProtocolError("peer acknowledged " + std::to_string(last_ack.received) +
                        " messages, " + std::to_string(sent) + " were sent");
  }
  usage.finish(r);
  r.messages = last_ack.received;
  r.messages_lost = sent - last_ack.received;
  r.seconds = static_cast<double>(ctx.clock.to_ns(t1 - t0)) * 1e-9;
  state.SetIterationTime(r.seconds);
  return r;
}

}  // namespace ipcbench
