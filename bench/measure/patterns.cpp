#include "bench/measure/patterns.hpp"

#include <poll.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/core/ping_pong.hpp"
#include "bench/core/protocol.hpp"
#include "bench/core/schedule.hpp"
#include "bench/core/syscall_count.hpp"
#include "bench/core/sysinfo.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/spin.hpp"
#include "mechanisms/posix/syscall_tally.hpp"
#include "mechanisms/posix/time.hpp"

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
    peer0_ = s.peer_stats();  // the peer's counts restart here
    self0_ = process_usage();
    syscalls_ = SyscallCounter::open(nullptr);  // last: its own setup is not counted
    own0_ = posix::own_syscall_count;
  }
  void finish(TrialResult& r) {
    // First: nothing of ours after the span.
    r.runner_own_syscalls = posix::own_syscall_count - own0_;
    if (syscalls_) r.runner_syscalls = syscalls_->read();
    const StatsPayload self1 = process_usage();
    const StatsPayload peer1 = session_.peer_stats();
    if (peer1.syscalls != StatsPayload::kNotCounted) r.peer_syscalls = peer1.syscalls;
    r.peer_own_syscalls = peer1.own_syscalls;
    r.runner_cpu_ns = self1.cpu_ns - self0_.cpu_ns;
    r.runner_context_switches = self1.context_switches - self0_.context_switches;
    r.peer_cpu_ns = peer1.cpu_ns - peer0_.cpu_ns;
    r.peer_context_switches = peer1.context_switches - peer0_.context_switches;
    r.peer_verify_ns = peer1.verify_ns;  // the peer's count restarts at each stats request
  }

 private:
  PeerSession& session_;
  StatsPayload peer0_{};
  StatsPayload self0_{};
  std::unique_ptr<SyscallCounter> syscalls_;
  std::uint64_t own0_ = 0;
};

std::uint64_t ns_of(std::chrono::nanoseconds d) noexcept {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 0));
}

// Lossy mechanisms: messages the harness stopped waiting for after
// kLossTimeout, whose replies may still come. A reply that does is a
// latency sample (counted `late`) and the message is no longer lost; what
// is still here when the trial ends stays lost. Bounded: the oldest entry
// leaves when a new one does not fit (it stays lost, and its reply, should
// it ever come, is skipped as a late reply).
class GivenUp {
 public:
  void add(std::uint32_t seq, std::uint64_t sent_at) noexcept {
    if (count_ == kCapacity) {
      first_ = (first_ + 1) % kCapacity;
      --count_;
    }
    entries_[(first_ + count_) % kCapacity] = {seq, sent_at};
    ++count_;
  }
  // The send time of `seq` if it was given up (and forgets it and every
  // older entry: replies are not reordered, so those will not come).
  std::optional<std::uint64_t> take(std::uint32_t seq) noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
      const Entry& e = entries_[(first_ + i) % kCapacity];
      if (e.seq != seq) continue;
      const std::uint64_t at = e.sent_at;
      first_ = (first_ + i + 1) % kCapacity;
      count_ -= i + 1;
      return at;
    }
    return std::nullopt;
  }

 private:
  static constexpr std::size_t kCapacity = 256;
  struct Entry {
    std::uint32_t seq;
    std::uint64_t sent_at;
  };
  Entry entries_[kCapacity]{};
  std::size_t first_ = 0;
  std::size_t count_ = 0;
};

// What a receiving datagram socket holds on this host: the datagram
// sockets ask for net.core.rmem_max, which the kernel doubles; each datagram
// costs its payload plus about 1 KiB of bookkeeping against it. Half of that
// is used, so a burst from elsewhere does not drop ours.
std::uint64_t receive_buffer_messages(std::size_t size) {
  static const std::uint64_t rmem_max = [] {
    std::uint64_t v = 212992;  // the kernel's usual default
    if (std::FILE* f = std::fopen("/proc/sys/net/core/rmem_max", "r")) {
      unsigned long long x = 0;
      if (std::fscanf(f, "%llu", &x) == 1 && x > 0) v = x;
      std::fclose(f);
    }
    return v;
  }();
  constexpr std::uint64_t kDatagramOverhead = 1024;
  return rmem_max / (size + kDatagramOverhead);  // 2 * rmem_max / 2
}

}  // namespace

FlowLimit stream_flow_limit(std::size_t size, std::uint64_t budget_bytes, bool lossy) {
  FlowLimit f;
  f.messages = std::clamp<std::uint64_t>(budget_bytes / std::max<std::size_t>(size, 1), 4, 65536);
  if (lossy) {
    const std::uint64_t buffer = std::max<std::uint64_t>(receive_buffer_messages(size), 4);
    if (buffer <= f.messages) {
      f.messages = buffer;
      f.receive_buffer = true;
    }
  }
  f.bytes = f.messages * size;
  f.ask_every = std::max<std::uint64_t>(f.messages / 4, 1);
  return f;
}

bool self_timed(bool async, bool lossy) { return async || lossy; }

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
    ctx.progress.store(ctx.progress.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

namespace {

// Ping-pong over a mechanism that may drop messages (self-timed). A reply
// that does not come within kLossTimeout is given up: the next message
// goes, and the given-up one counts as lost unless its reply still arrives
// during the trial, when it is a sample like any other (counted `late`).
// Stale control replies are skipped. The watchdog sees no progress while
// messages are being lost, so a peer that stopped answering still fails
// the case after --timeout.
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
  std::uint64_t sum_ticks = 0;
  LateReplies late(ctx.size, Kind::kEcho);
  GivenUp given_up;
  const std::uint64_t start = Clock::monotonic_ns();
  const std::uint64_t end = start + ns_of(ctx.min_time);
  while (state.KeepRunningBatch(1)) {
    while (Clock::monotonic_ns() < end) {
      write_header(sbuf, seq, ctx.size, Kind::kEcho);
      if (ctx.verify_full) fill_pattern(ctx.send_buffer.first(ctx.size), seq);
      const std::uint64_t t0 = clock.now();
      ch.send(message);
      for (;;) {
        const auto n = ch.receive_for(ctx.receive_buffer, kLossTimeout);
        const std::uint64_t t1 = clock.now();
        if (!n) {
          ++r.messages_lost;
          given_up.add(seq, t0);
          break;
        }
        const MessageHeader h = read_header(ctx.receive_buffer.data());
        if (h.seq != seq && *n == ctx.size && h.length_kind == expect_lk) {
          if (const auto sent_at = given_up.take(h.seq)) {
            if (ctx.verify_full && check_pattern(ctx.receive_buffer.first(*n), h.seq) != *n) {
              fail_message(ctx.receive_buffer, *n, h.seq, ctx.size, Kind::kEcho, true);
            }
            --r.messages_lost;
            ++r.late;
            sum_ticks += t1 - *sent_at;
            hist.record(clock.to_ns(t1 - *sent_at));
            late.seen(h.seq);
            continue;
          }
        }
        if (late.skip(ctx.receive_buffer, *n, seq)) continue;
        if (*n != ctx.size || h.seq != seq || h.length_kind != expect_lk ||
            (ctx.verify_full && check_pattern(ctx.receive_buffer.first(*n), seq) != *n)) {
          fail_message(ctx.receive_buffer, *n, seq, ctx.size, Kind::kEcho, ctx.verify_full);
        }
        late.seen(seq);
        sum_ticks += t1 - t0;
        hist.record(clock.to_ns(t1 - t0));
        ctx.progress.store(++progress, std::memory_order_relaxed);
        break;
      }
      ++seq;
    }
  }
  const std::uint64_t stop = Clock::monotonic_ns();
  ctx.session.next_seq = seq;
  usage.finish(r);
  r.messages = hist.count();
  r.seconds = static_cast<double>(stop - start) * 1e-9;
  r.mean_ns = r.messages > 0
                  ? static_cast<double>(clock.to_ns(sum_ticks)) / static_cast<double>(r.messages)
                  : 0.0;
  state.SetIterationTime(r.mean_ns > 0 ? r.mean_ns * 1e-9 : 1e-9);
  return r;
}

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
    ch.wait_either(timeout);  // no descriptors: the channel's own wait for both
    return;
  }
  ch.wait_receivable(timeout);
}

// A wait with nothing in flight is bounded by this (the loop then looks
// again); the watchdog, not this bound, ends a case whose peer hangs.
constexpr auto kAsyncIdleWait = std::chrono::milliseconds(100);

// Streaming with acknowledgements under a FlowLimit (self-timed): async
// throughput (non-blocking sends, readiness waits) and lossy throughput
// (blocking sends; `blocking`). Messages go until ctx.min_time has passed;
// the next one then asks for the final acknowledgement, and the span ends
// when it arrives. Reliable mechanisms acknowledge in order, each ack
// counting every message up to it. Lossy ones may lose a message or an
// acknowledgement: an acknowledgement not seen within kLossTimeout while
// the sender waits for credit is given up (the final count settles what
// arrived), and that wait is taken out of the span (lost_ack_wait_fraction
// says how much there was). Rates count delivered messages only.
TrialResult run_stream_trial(benchmark::State& state, PatternContext& ctx, bool blocking) {
  Channel& ch = ctx.session.channel();
  const Clock& clock = ctx.clock;
  std::byte* const sbuf = ctx.send_buffer.data();
  const std::span<const std::byte> message = ctx.send_buffer.first(ctx.size);
  const bool lossy = ctx.session.lossy();
  const FlowLimit flow = stream_flow_limit(ctx.size, ctx.in_flight_bytes, lossy);
  const std::uint64_t loss_ticks =
      ns_of(kLossTimeout) * static_cast<std::uint64_t>(std::max(clock.ticks_per_ns(), 1.0));
  std::uint64_t progress = ctx.progress.load(std::memory_order_relaxed);

  TrialResult r;
  r.flow = flow;
  UsageSpan usage(ctx.session);
  const std::uint32_t first = ctx.session.next_seq;
  std::uint64_t total = UINT64_MAX;  // set when min_time has passed: the next message is the last
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;       // messages up to the newest acknowledged (or given-up) request
  std::uint64_t newest_ack = 0;  // messages up to the newest acknowledgement received
  AckPayload last_ack{};
  bool final_acked = false;
  LateReplies late(ctx.size, Kind::kEcho);         // lossy: control replies from before the trial
  std::uint64_t stall_ticks = 0, stall_since = 0;  // credits held the sender
  std::uint64_t full_ticks = 0, full_since = 0;    // the channel refused a message
  std::uint64_t lost_wait_ticks = 0;
  std::uint64_t wait_since = 0;  // the sender could do nothing from then on
  std::uint64_t verify_ticks = 0;
  const std::uint64_t end = Clock::monotonic_ns() + ns_of(ctx.min_time);
  const std::uint64_t t0 = clock.now();
  std::uint64_t last_ack_at = t0;

  // Takes one acknowledgement from the receive buffer; false for a late
  // reply that was skipped.
  const auto take_ack = [&](std::size_t n) -> bool {
    std::uint64_t upto = 0;
    AckPayload ack{};
    if (lossy) {
      if (late.skip(ctx.receive_buffer, n, first)) return false;
      upto = check_lossy_ack(ctx.receive_buffer, n, first, sent, newest_ack, flow.ask_every, total);
      ack = check_ack(ctx.receive_buffer, n, read_header(ctx.receive_buffer.data()).seq);
    } else {
      upto = next_ask(acked, flow.ask_every, total);
      ack = check_ack(ctx.receive_buffer, n, first + static_cast<std::uint32_t>(upto) - 1);
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
    last_ack_at = clock.now();
    ctx.progress.store(++progress, std::memory_order_relaxed);
    if (upto > acked) acked = upto;  // else: lossy, a late ack of a window given up
    if (upto == total) final_acked = true;
    return true;
  };

  while (state.KeepRunningBatch(1)) {
    while (!final_acked) {
      bool progressed = false;
      bool send_blocked = false;
      // 1. Send what the credits allow.
      while (sent < total) {
        if (sent - acked >= flow.messages) {
          if (stall_since == 0) stall_since = clock.now();
          break;
        }
        if (total == UINT64_MAX && sent % 64 == 0 && Clock::monotonic_ns() >= end) total = sent + 1;
        const bool ask = (sent + 1) % flow.ask_every == 0 || sent + 1 == total;
        const std::uint32_t seq = first + static_cast<std::uint32_t>(sent);
        write_header(sbuf, seq, ctx.size, ask ? Kind::kSinkAck : Kind::kSink);
        if (ctx.verify_full && full_since == 0) {
          const std::uint64_t v0 = clock.now();
          fill_pattern(ctx.send_buffer.first(ctx.size), seq);
          verify_ticks += clock.now() - v0;
        }
        if (blocking) {
          ch.send(message);
        } else if (!ch.try_send(message)) {
          if (full_since == 0) full_since = clock.now();
          send_blocked = true;
          break;
        }
        if (full_since != 0 || stall_since != 0) {
          const std::uint64_t now = clock.now();
          if (full_since != 0) full_ticks += now - full_since;
          if (stall_since != 0) stall_ticks += now - stall_since;
          full_since = stall_since = 0;
        }
        ++sent;
        progressed = true;
        // Lossy sends never block: only answers show that the peer is there.
        if (!lossy) ctx.progress.store(++progress, std::memory_order_relaxed);
      }
      // 2. Take the acknowledgements that have come (blocking: only when
      // the sender must wait for one, one at a time).
      if (!blocking) {
        while (auto n = ch.try_receive(ctx.receive_buffer)) {
          if (take_ack(*n)) progressed = true;
        }
        if (final_acked) break;
      }
      if (progressed) {
        wait_since = 0;
        if (!blocking) continue;
      }
      // 3. Wait: for an acknowledgement (credits or the final one), or for
      // room in the channel.
      const std::uint64_t now = clock.now();
      if (wait_since == 0) wait_since = now;
      const std::uint64_t quiet_since = std::max(wait_since, last_ack_at);
      if (lossy && now - quiet_since > loss_ticks) {
        lost_wait_ticks += now - quiet_since;
        wait_since = now;
        if (sent == total) break;  // the final request or its answer was lost: ask below
        acked = std::min(sent, acked + flow.ask_every);  // give the oldest window up
        continue;
      }
      const auto left = lossy
                            ? std::chrono::nanoseconds(clock.to_ns(quiet_since + loss_ticks - now))
                            : std::chrono::nanoseconds(kAsyncIdleWait);
      if (blocking) {
        if (const auto n = ch.receive_for(ctx.receive_buffer, left)) take_ack(*n);
      } else {
        wait_ready(ch, send_blocked, left);
      }
    }
  }
  ctx.session.next_seq = first + static_cast<std::uint32_t>(sent);
  if (!final_acked) {
    const std::uint64_t ask_from = clock.now();
    last_ack = ctx.session.peer_count();  // the final request or its answer was lost
    lost_wait_ticks += clock.now() - ask_from;
  }
  const std::uint64_t t1 = clock.now();
  if (last_ack.received > sent || (!lossy && last_ack.received != sent)) {
    throw ProtocolError("peer acknowledged " + std::to_string(last_ack.received) + " messages, " +
                        std::to_string(sent) + " were sent");
  }
  usage.finish(r);
  const std::uint64_t span = std::max<std::uint64_t>(t1 - t0, 1);
  const std::uint64_t counted = span > lost_wait_ticks ? span - lost_wait_ticks : 1;
  r.messages = last_ack.received;
  r.messages_lost = sent - last_ack.received;
  r.seconds = static_cast<double>(clock.to_ns(counted)) * 1e-9;
  // Credits that stand for the receiver's buffer are the mechanism's limit.
  if (flow.receive_buffer) full_ticks += std::exchange(stall_ticks, 0);
  r.flow_stall_fraction = static_cast<double>(stall_ticks) / static_cast<double>(counted);
  r.channel_full_fraction = static_cast<double>(full_ticks) / static_cast<double>(counted);
  r.lost_ack_wait_fraction = static_cast<double>(lost_wait_ticks) / static_cast<double>(span);
  r.runner_verify_ns = clock.to_ns(verify_ticks);
  // real_time: ns per delivered message.
  state.SetIterationTime(r.seconds / static_cast<double>(std::max<std::uint64_t>(r.messages, 1)));
  return r;
}

}  // namespace

TrialResult run_latency_trial(benchmark::State& state, PatternContext& ctx) {
  if (ctx.session.lossy()) return run_lossy_latency_trial(state, ctx);
  ctx.histogram.reset();
  TrialResult r;
  UsageSpan usage(ctx.session);
  const PingPongResult pp = ping_pong(
      state, ctx.session.channel(), ctx.clock, ctx.histogram, ctx.send_buffer, ctx.receive_buffer,
      ctx.size, ctx.verify_full, ctx.session.next_seq, ctx.progress, fail_echo);
  ctx.session.next_seq = pp.next_seq;
  usage.finish(r);
  r.messages = ctx.histogram.count();
  r.seconds = static_cast<double>(ctx.clock.to_ns(pp.ticks)) * 1e-9;
  r.mean_ns = r.messages > 0 ? r.seconds * 1e9 / static_cast<double>(r.messages) : 0.0;
  state.SetIterationTime(r.seconds);  // per iteration: the mean round trip
  return r;
}

TrialResult run_throughput_trial(benchmark::State& state, PatternContext& ctx) {
  if (ctx.session.lossy()) return run_stream_trial(state, ctx, /*blocking=*/true);
  Channel& ch = ctx.session.channel();
  const Clock& clock = ctx.clock;
  std::byte* const sbuf = ctx.send_buffer.data();
  const std::span<const std::byte> message = ctx.send_buffer.first(ctx.size);
  const std::uint64_t total = static_cast<std::uint64_t>(state.max_iterations);
  std::uint64_t progress = ctx.progress.load(std::memory_order_relaxed);

  TrialResult r;
  UsageSpan usage(ctx.session);
  std::uint32_t seq = ctx.session.next_seq;
  std::uint64_t sent = 0;
  std::uint64_t verify_ticks = 0;
  const std::uint64_t t0 = clock.now();
  for (auto _ : state) {
    ++sent;
    write_header(sbuf, seq, ctx.size, sent == total ? Kind::kSinkAck : Kind::kSink);
    if (ctx.verify_full) {
      const std::uint64_t v0 = clock.now();
      fill_pattern(ctx.send_buffer.first(ctx.size), seq);
      verify_ticks += clock.now() - v0;
    }
    ch.send(message);
    ++seq;
    ctx.progress.store(++progress, std::memory_order_relaxed);
  }
  // The span ends when the peer confirms it has received (and checked) all.
  const std::size_t n = ch.receive(ctx.receive_buffer);
  const std::uint64_t t1 = clock.now();
  const AckPayload ack = check_ack(ctx.receive_buffer, n, seq - 1);
  if (ack.received != sent) {
    throw ProtocolError("peer acknowledged " + std::to_string(ack.received) + " messages, " +
                        std::to_string(sent) + " were sent");
  }
  ctx.session.next_seq = seq;
  usage.finish(r);
  r.messages = sent;
  r.seconds = static_cast<double>(clock.to_ns(t1 - t0)) * 1e-9;
  r.runner_verify_ns = clock.to_ns(verify_ticks);
  state.SetIterationTime(r.seconds);  // per iteration: ns per message
  return r;
}

TrialResult run_async_throughput_trial(benchmark::State& state, PatternContext& ctx) {
  return run_stream_trial(state, ctx, /*blocking=*/false);
}

namespace {

// Open loop: a wait for the next due time sleeps until this long before it,
// then spins. On the 2-vCPU VMs we use, a sleep overshoots by ~25 us even
// with the timer slack at 1 ns (~80 us at the default 50 us slack); an
// oversleep would be charged to the mechanism as latency.
constexpr std::uint64_t kPacingSpinNs = 100'000;
// Open loop: most messages in flight at once (the stamps of each are kept);
// beyond it the sender waits and its lateness shows it.
std::uint64_t open_loop_cap(std::size_t size) {
  return std::clamp<std::uint64_t>((64u << 20) / std::max<std::size_t>(size, 1), 64, 1u << 20);
}

}  // namespace

TrialResult run_async_latency_trial(benchmark::State& state, PatternContext& ctx) {
  Channel& ch = ctx.session.channel();
  Histogram& hist = ctx.histogram;
  Histogram& lateness = ctx.lateness;
  std::byte* const sbuf = ctx.send_buffer.data();
  const std::span<const std::byte> message = ctx.send_buffer.first(ctx.size);
  const bool open = ctx.rate > 0;
  const std::uint64_t cap = open ? open_loop_cap(ctx.size) : std::max<std::uint64_t>(ctx.window, 1);
  const bool lossy = ctx.session.lossy();
  const std::uint32_t expect_lk = pack_length_kind(ctx.size, Kind::kEchoStamped);
  const std::uint64_t loss_timeout_ns = ns_of(kLossTimeout);
  std::uint64_t progress = ctx.progress.load(std::memory_order_relaxed);

  // The send stamp of every message in flight, by position: an echo must
  // bring back the very stamp its round trip is timed from.
  std::vector<std::uint64_t> stamps(cap);
  hist.reset();
  lateness.reset();
  TrialResult r;
  UsageSpan usage(ctx.session);
  const std::uint32_t first = ctx.session.next_seq;
  std::uint64_t sent = 0;
  std::uint64_t accounted = 0;  // received or given up
  std::uint64_t last_send_ns = 0;
  std::uint64_t sum_ns = 0;
  std::uint64_t pacing_ns = 0;
  std::uint64_t spinning_since = 0;   // open loop: spinning for a due time since then
  std::uint64_t filled = UINT64_MAX;  // --verify full: the message whose payload is in sbuf
  bool sending = true;
  GivenUp given_up;
  LateReplies late(ctx.size, Kind::kEchoStamped);
  const std::uint64_t t0 = Clock::monotonic_ns();
  const std::uint64_t end = t0 + ns_of(ctx.min_time);
  std::optional<OpenLoopSchedule> schedule;
  if (open) schedule.emplace(t0, ctx.rate);
  std::uint64_t due = 0;  // open loop: when message `due_of` is due
  std::uint64_t due_of = UINT64_MAX;
  std::uint64_t last_arrival = t0;

  while (state.KeepRunningBatch(1)) {
    for (;;) {
      bool progressed = false;
      bool send_blocked = false;
      std::uint64_t next_due = 0;  // open loop: when the next send is due
      // 1. Send what the window (closed loop) or the schedule (open) allows.
      while (sending && sent - accounted < cap) {
        const std::uint32_t seq = first + static_cast<std::uint32_t>(sent);
        if (ctx.verify_full && filled != sent) {  // before the stamp: not timed
          fill_pattern(ctx.send_buffer.first(ctx.size), seq);
          filled = sent;
        }
        const std::uint64_t now = Clock::monotonic_ns();
        if (now >= end) {
          sending = false;
          break;
        }
        std::uint64_t stamp = now;
        if (open) {
          if (due_of != sent) {  // once per message, not once per spin
            due = schedule->due_ns(sent);
            due_of = sent;
          }
          if (due > now) {
            next_due = due;
            break;
          }
          stamp = due;  // latency counts from when it should have gone
        }
        write_header(sbuf, seq, ctx.size, Kind::kEchoStamped, stamp);
        if (!ch.try_send(message)) {
          send_blocked = true;
          break;
        }
        if (open) {
          lateness.record(now - stamp);
          if (spinning_since != 0) {
            pacing_ns += now - spinning_since;
            spinning_since = 0;
          }
        }
        stamps[sent % cap] = stamp;
        last_send_ns = now;
        ++sent;
        r.max_in_flight = std::max(r.max_in_flight, sent - accounted);
        progressed = true;
      }
      // 2. Take every echo that has arrived.
      for (;;) {
        const auto n = ch.try_receive(ctx.receive_buffer);
        if (!n) break;
        const std::uint64_t t = Clock::monotonic_ns();
        const MessageHeader h = read_header(ctx.receive_buffer.data());
        const std::uint32_t want = first + static_cast<std::uint32_t>(accounted);
        const auto ahead = static_cast<std::int32_t>(h.seq - want);
        if (lossy && ahead < 0 && *n == ctx.size && h.length_kind == expect_lk) {
          // The echo of a message given up: a late sample, no longer lost.
          if (const auto stamp = given_up.take(h.seq)) {
            if (h.stamp != *stamp) {
              throw ProtocolError("stamp error: the late echo of seq " + std::to_string(h.seq) +
                                  " carries send stamp " + std::to_string(h.stamp) + ", not " +
                                  std::to_string(*stamp));
            }
            if (ctx.verify_full && check_pattern(ctx.receive_buffer.first(*n), h.seq) != *n) {
              fail_message(ctx.receive_buffer, *n, h.seq, ctx.size, Kind::kEchoStamped, true);
            }
            hist.record(t - h.stamp);
            sum_ns += t - h.stamp;
            --r.messages_lost;
            ++r.late;
            late.seen(h.seq);
            last_arrival = t;
            progressed = true;
            continue;
          }
        }
        if (lossy && late.skip(ctx.receive_buffer, *n, want)) continue;
        if (lossy && *n == ctx.size && ahead > 0 && h.length_kind == expect_lk &&
            accounted + static_cast<std::uint64_t>(ahead) < sent) {
          // Datagrams between two processes are not reordered: the ones
          // skipped were lost.
          r.messages_lost += static_cast<std::uint64_t>(ahead);
          accounted += static_cast<std::uint64_t>(ahead);
        }
        const std::uint32_t seq = first + static_cast<std::uint32_t>(accounted);
        if (accounted >= sent || *n != ctx.size || h.seq != seq || h.length_kind != expect_lk ||
            (ctx.verify_full && check_pattern(ctx.receive_buffer.first(*n), seq) != *n)) {
          fail_message(ctx.receive_buffer, *n, seq, ctx.size, Kind::kEchoStamped, ctx.verify_full);
        }
        if (h.stamp != stamps[accounted % cap]) {
          throw ProtocolError("stamp error: the echo of seq " + std::to_string(seq) +
                              " carries send stamp " + std::to_string(h.stamp) + ", not " +
                              std::to_string(stamps[accounted % cap]));
        }
        late.seen(seq);
        const std::uint64_t rtt = t > h.stamp ? t - h.stamp : 0;
        hist.record(rtt);
        sum_ns += rtt;
        ++accounted;
        last_arrival = t;
        progressed = true;
        ctx.progress.store(++progress, std::memory_order_relaxed);
      }
      if (!sending && accounted == sent) break;
      if (progressed) continue;
      // 3. Nothing to do now: wait for readiness, or for the next due time.
      const std::uint64_t now = Clock::monotonic_ns();
      if (lossy && accounted < sent && now - last_arrival > loss_timeout_ns) {
        // Everything in flight is given up; a late echo still counts.
        for (std::uint64_t i = accounted; i < sent; ++i) {
          given_up.add(first + static_cast<std::uint32_t>(i), stamps[i % cap]);
        }
        r.messages_lost += sent - accounted;
        accounted = sent;
        last_arrival = now;
        continue;
      }
      if (next_due != 0) {
        if (next_due <= now) continue;  // became due since step 1: send it now
        const std::uint64_t left = next_due - now;
        if (spinning_since == 0) spinning_since = now;
        if (ctx.spin_wait) {
          // The mechanism's own wait spins: so does the pacing, all the way,
          // looking for echoes meanwhile as its wait would.
          posix::relax(ctx.same_cpu);
          continue;
        }
        if (left <= kPacingSpinNs) {
          // Close to the due time: spin on the clock alone. Polling the
          // channel here would turn a mechanism that is waited for with
          // poll into a spinning one; an echo that comes meanwhile is
          // taken right after the send.
          while (Clock::monotonic_ns() < next_due) posix::relax(ctx.same_cpu);
          continue;
        }
        spinning_since = 0;
        const auto sleep = std::chrono::nanoseconds(left - kPacingSpinNs);
        if (accounted == sent && !ch.send_pending()) {
          const timespec ts = posix::to_timespec(sleep);
          posix::count_syscall();
          ::nanosleep(&ts, nullptr);
          posix::throw_if_interrupted();
        } else {
          wait_ready(ch, send_blocked, sleep);
        }
        continue;
      }
      std::chrono::nanoseconds timeout = kAsyncIdleWait;
      if (lossy && accounted < sent) {
        timeout = std::chrono::nanoseconds(
            std::max<std::uint64_t>(last_arrival + loss_timeout_ns - now, 1));
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
    throw ProtocolError("peer reported " + std::to_string(r.oneway->count) + " one-way samples, " +
                        std::to_string(sent) + " messages were sent");
  }
  usage.finish(r);
  // Spinning for the schedule is the harness's pacing, not the mechanism's cost.
  r.runner_pacing_ns = std::min(pacing_ns, r.runner_cpu_ns);
  r.runner_cpu_ns -= r.runner_pacing_ns;
  r.messages = hist.count();
  r.seconds = static_cast<double>(t_end - t0) * 1e-9;
  r.mean_ns = r.messages > 0 ? static_cast<double>(sum_ns) / static_cast<double>(r.messages) : 0.0;
  if (open && sent > 1 && last_send_ns > t0) {
    // Sends per second over the sending span, as a rate comparable to the
    // requested one (n sends span n-1 periods).
    r.rate_achieved =
        static_cast<double>(sent - 1) / (static_cast<double>(last_send_ns - t0) * 1e-9);
  } else if (r.seconds > 0) {
    r.rate_achieved = static_cast<double>(sent) / r.seconds;
  }
  // One iteration per trial: its time is the mean round trip (real_time).
  state.SetIterationTime(r.mean_ns > 0 ? r.mean_ns * 1e-9 : 1e-9);
  return r;
}

}  // namespace ipcbench
