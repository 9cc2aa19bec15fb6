// Async latency: non-blocking sends and receives driven by readiness waits,
// each message carrying its send time (patterns.hpp says what the closed and
// the open loop measure). One pass of the loop sends what the window or the
// schedule allows, takes every echo that has come, then waits: for
// readiness, or for the next due time.
#include <algorithm>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "bench/core/protocol.hpp"
#include "bench/core/schedule.hpp"
#include "bench/engine/engine.hpp"
#include "bench/measure/patterns.hpp"
#include "bench/measure/trial.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/spin.hpp"
#include "mechanisms/posix/syscall_tally.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench {
namespace {

// Open loop: a wait for the next due time sleeps until this long before it,
// then spins. On the 2-vCPU VMs we use, a sleep overshoots by ~25 us even
// with the timer slack at 1 ns (~80 us at the default 50 us slack); an
// oversleep would be charged to the mechanism as latency.
constexpr std::uint64_t kPacingSpinNs = 100'000;
// How late a readiness wait's timeout may wake us here (the overshoot
// above, with room): an echo is waited for asleep until this long before
// the next due time, then looked for while spinning.
constexpr std::uint64_t kPacingWakeNs = 30'000;

// Open loop: most messages in flight at once (the stamps of each are kept);
// beyond it the sender waits and its lateness shows it.
std::uint64_t open_loop_cap(std::size_t size) {
  return std::clamp<std::uint64_t>((64u << 20) / std::max<std::size_t>(size, 1), 64, 1u << 20);
}

class AsyncLatencyTrial {
 public:
  explicit AsyncLatencyTrial(PatternContext& ctx)
      : ctx_(ctx),
        driver_(ctx.link.channel(), ctx.engine, std::max(ctx.size, kControlBytes)),
        ch_(driver_.channel()),
        out_(ch_, ctx.send_buffer, ctx.size, ctx.verify_full, ctx.clock),
        check_(ctx.size, Kind::kEchoStamped, ctx.verify_full),
        late_(ctx.size, Kind::kEchoStamped),
        open_(ctx.rate > 0),
        lossy_(ctx.link.lossy()),
        cap_(open_ ? open_loop_cap(ctx.size) : std::max<std::uint64_t>(ctx.window, 1)),
        stamps_(cap_),
        beats_(ctx.progress.load(std::memory_order_relaxed)) {}

  TrialResult run(std::uint64_t iterations) {
    ctx_.histogram.reset();
    ctx_.lateness.reset();
    trial::TrialUsage usage(ctx_.link);
    first_ = ctx_.link.next_seq;
    t0_ = last_arrival_ = Clock::monotonic_ns();
    end_ = t0_ + trial::ns_of(ctx_.min_time);
    if (open_) schedule_.emplace(t0_, ctx_.rate);
    for (;;) {
      progressed_ = send_blocked_ = false;
      next_due_ = 0;
      send_allowed();
      take_echoes();
      if (!sending_ && accounted_ == sent_) break;
      if (!progressed_) wait();
    }
    driver_.finish();  // the channel is the link's again
    finish(usage, iterations);
    return r_;
  }

 private:
  std::uint32_t seq_of(std::uint64_t i) const noexcept {
    return first_ + static_cast<std::uint32_t>(i);
  }

  // Sends what the window (closed loop) or the schedule (open) allows; sets
  // next_due_ when the next message is not due yet.
  void send_allowed() {
    while (sending_ && sent_ - accounted_ < cap_) {
      const std::uint32_t seq = seq_of(sent_);
      out_.fill(seq);  // before the stamp: not timed
      const std::uint64_t now = Clock::monotonic_ns();
      if (now >= end_) {
        sending_ = false;
        return;
      }
      std::uint64_t stamp = now;
      if (open_) {
        if (due_of_ != sent_) {  // once per message, not once per spin
          due_ = schedule_->due_ns(sent_);
          due_of_ = sent_;
        }
        if (due_ > now) {
          next_due_ = due_;
          return;
        }
        stamp = due_;  // latency counts from when it should have gone
      }
      if (!out_.try_send(out_.header(seq, Kind::kEchoStamped, stamp))) {
        send_blocked_ = true;
        return;
      }
      if (open_) sent_late(now, stamp);
      stamps_[sent_ % cap_] = stamp;
      last_send_ns_ = now;
      ++sent_;
      r_.max_in_flight = std::max(r_.max_in_flight, sent_ - accounted_);
      progressed_ = true;
    }
  }

  // Open loop: records how late a send was; spinning for it was pacing.
  void sent_late(std::uint64_t now, std::uint64_t due) {
    ctx_.lateness.record(now - due);
    if (spinning_since_ != 0) {
      pacing_ns_ += now - spinning_since_;
      spinning_since_ = 0;
    }
  }

  void take_echoes() {
    while (const auto view = ch_.try_receive_view(ctx_.receive_buffer)) {
      take_echo(*view, Clock::monotonic_ns());
      ch_.release_view();
    }
  }

  // One reply, received at t: the echo of the oldest message in flight (or,
  // lossy, a late echo, a stale reply to skip, or an echo past lost ones).
  void take_echo(std::span<const std::byte> buf, std::uint64_t t) {
    const std::size_t n = buf.size();
    const MessageHeader h = read_header(buf.data());
    const std::uint32_t want = seq_of(accounted_);
    const auto ahead = static_cast<std::int32_t>(h.seq - want);
    if (lossy_) {
      if (ahead < 0 && check_.shaped(h, n) && take_late_echo(h, buf, t)) return;
      if (late_.skip(buf, n, want)) return;
      if (ahead > 0 && check_.shaped(h, n) &&
          accounted_ + static_cast<std::uint64_t>(ahead) < sent_) {
        // Datagrams between two processes are not reordered: the ones
        // skipped were lost.
        r_.messages_lost += static_cast<std::uint64_t>(ahead);
        accounted_ += static_cast<std::uint64_t>(ahead);
      }
    }
    const std::uint32_t seq = seq_of(accounted_);
    if (accounted_ >= sent_)
      trial::fail_message(buf, n, seq, ctx_.size, Kind::kEchoStamped, ctx_.verify_full);
    check_(buf, n, seq);
    check_stamp(h, stamps_[accounted_ % cap_], "the echo");
    late_.seen(seq);
    record(t > h.stamp ? t - h.stamp : 0, t);
    ++accounted_;
    ctx_.progress.store(++beats_, std::memory_order_relaxed);
  }

  // Lossy: the echo of a message given up is a late sample, no longer lost.
  bool take_late_echo(const MessageHeader& h, std::span<const std::byte> buf, std::uint64_t t) {
    const auto stamp = given_up_.take(h.seq);
    if (!stamp) return false;
    check_stamp(h, *stamp, "the late echo");
    check_(buf, buf.size(), h.seq);
    record(t - h.stamp, t);
    --r_.messages_lost;
    ++r_.late;
    late_.seen(h.seq);
    return true;
  }

  static void check_stamp(const MessageHeader& h, std::uint64_t sent, const char* what) {
    if (h.stamp == sent) return;
    throw ProtocolError("stamp error: " + std::string(what) + " of seq " + std::to_string(h.seq) +
                        " carries send stamp " + std::to_string(h.stamp) + ", not " +
                        std::to_string(sent));
  }

  void record(std::uint64_t rtt, std::uint64_t t) {
    ctx_.histogram.record(rtt);
    sum_ns_ += rtt;
    last_arrival_ = t;
    progressed_ = true;
  }

  // Nothing to do now: wait for readiness, or for the next due time; lossy,
  // give up what is in flight after kLossTimeout without an echo.
  void wait() {
    const std::uint64_t now = Clock::monotonic_ns();
    if (lossy_ && accounted_ < sent_ && now - last_arrival_ > trial::ns_of(trial::kLossTimeout)) {
      // Everything in flight is given up; a late echo still counts.
      for (std::uint64_t i = accounted_; i < sent_; ++i)
        given_up_.add(seq_of(i), stamps_[i % cap_]);
      r_.messages_lost += sent_ - accounted_;
      accounted_ = sent_;
      last_arrival_ = now;
      return;
    }
    if (next_due_ != 0) {
      pace(now);
      return;
    }
    std::chrono::nanoseconds timeout = trial::kAsyncIdleWait;
    if (lossy_ && accounted_ < sent_) {
      timeout = std::chrono::nanoseconds(
          std::max<std::uint64_t>(last_arrival_ + trial::ns_of(trial::kLossTimeout) - now, 1));
    }
    trial::wait_ready(ch_, send_blocked_, timeout);
  }

  // Open loop: waits towards next_due_ (the caller's loop sends it once due).
  void pace(std::uint64_t now) {
    if (next_due_ <= now) return;  // became due since the send step: send it now
    const std::uint64_t left = next_due_ - now;
    if (spinning_since_ == 0) spinning_since_ = now;
    if (ctx_.spin_wait) {
      // The mechanism's own wait spins: so does the pacing, all the way,
      // looking for echoes meanwhile as its wait would.
      posix::relax(ctx_.same_cpu);
      return;
    }
    if (left <= kPacingSpinNs) {
      // Close to the due time. An echo awaited is waited for as the async
      // loop waits (readiness, asleep) until kPacingWakeNs before the due
      // time, then looked for while spinning on the clock (try_receive, a
      // read that finds nothing), so it is timed when it comes. Taken only
      // after the next send, as this loop once did, an echo's round trip
      // followed the schedule's period, not the mechanism: tcp at 10k
      // msg/s (a period of 100 us, all of it in this window) measured
      // 117 us p50 against sockperf under-load's 59 us.
      if (accounted_ < sent_ && left > kPacingWakeNs) {
        spinning_since_ = 0;
        trial::wait_ready(ch_, send_blocked_, std::chrono::nanoseconds(left - kPacingWakeNs));
        return;
      }
      while (Clock::monotonic_ns() < next_due_) {
        if (accounted_ < sent_) {
          take_echoes();
        } else {
          posix::relax(ctx_.same_cpu);
        }
      }
      return;
    }
    spinning_since_ = 0;
    const auto sleep = std::chrono::nanoseconds(left - kPacingSpinNs);
    if (accounted_ == sent_ && !ch_.send_pending()) {
      const timespec ts = posix::to_timespec(sleep);
      posix::count_syscall();
      ::nanosleep(&ts, nullptr);
      posix::throw_if_interrupted();
    } else {
      trial::wait_ready(ch_, send_blocked_, sleep);
    }
  }

  void finish(trial::TrialUsage& usage, std::uint64_t iterations) {
    const std::uint64_t t_end = Clock::monotonic_ns();
    ctx_.link.next_seq = seq_of(sent_);
    // Before the usage's stats request, which resets the peer's spectrum.
    r_.oneway = ctx_.link.peer_oneway();
    // The peer times every echo it receives: all that were sent, or (lossy)
    // no more than that.
    if (r_.oneway->count > sent_ || (!lossy_ && r_.oneway->count != sent_)) {
      throw ProtocolError("peer reported " + std::to_string(r_.oneway->count) +
                          " one-way samples, " + std::to_string(sent_) + " messages were sent");
    }
    trial::finish_trial(r_, usage,
                        {.messages = ctx_.histogram.count(),
                         .seconds = static_cast<double>(t_end - t0_) * 1e-9,
                         .round_trip_sum_ns = static_cast<double>(sum_ns_),
                         .iterations = iterations});
    // Spinning for the schedule is the harness's pacing, not the mechanism's cost.
    r_.runner_pacing_ns = std::min(pacing_ns_, r_.runner_cpu_ns);
    r_.runner_cpu_ns -= r_.runner_pacing_ns;
    if (open_ && sent_ > 1 && last_send_ns_ > t0_) {
      // Sends per second over the sending span, as a rate comparable to the
      // requested one (n sends span n-1 periods).
      r_.rate_achieved =
          static_cast<double>(sent_ - 1) / (static_cast<double>(last_send_ns_ - t0_) * 1e-9);
    } else if (r_.seconds > 0) {
      r_.rate_achieved = static_cast<double>(sent_) / r_.seconds;
    }
  }

  PatternContext& ctx_;
  engine::Driver driver_;
  Channel& ch_;  // as the engine drives it
  trial::Outgoing out_;
  const trial::EchoCheck check_;
  trial::LateReplies late_;
  trial::GivenUp given_up_;
  const bool open_;
  const bool lossy_;
  const std::uint64_t cap_;
  // The send stamp of every message in flight, by position: an echo must
  // bring back the very stamp its round trip is timed from.
  std::vector<std::uint64_t> stamps_;
  std::uint64_t beats_;
  TrialResult r_;
  std::uint32_t first_ = 0;
  std::uint64_t t0_ = 0, end_ = 0;
  std::uint64_t sent_ = 0;
  std::uint64_t accounted_ = 0;  // received or given up
  std::uint64_t last_send_ns_ = 0;
  std::uint64_t last_arrival_ = 0;
  std::uint64_t sum_ns_ = 0;
  std::uint64_t pacing_ns_ = 0;
  std::uint64_t spinning_since_ = 0;  // open loop: spinning for a due time since then
  bool sending_ = true;
  // One pass of the loop:
  bool progressed_ = false;
  bool send_blocked_ = false;
  std::uint64_t next_due_ = 0;  // open loop: when the next send is due
  std::optional<OpenLoopSchedule> schedule_;
  std::uint64_t due_ = 0;  // open loop: when message `due_of_` is due
  std::uint64_t due_of_ = UINT64_MAX;
};

}  // namespace

TrialResult run_async_latency_trial(PatternContext& ctx, std::uint64_t iterations) {
  return AsyncLatencyTrial(ctx).run(iterations);
}

}  // namespace ipcbench
