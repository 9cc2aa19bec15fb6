// Streaming with acknowledgements under a FlowLimit (self-timed): async
// throughput (non-blocking sends, readiness waits) and lossy throughput
// (blocking sends). Messages go until ctx.min_time has passed; the next one
// then asks for the final acknowledgement, and the span ends when it
// arrives. Reliable mechanisms acknowledge in order, each ack counting every
// message up to it. Lossy ones may lose a message or an acknowledgement: an
// acknowledgement not seen within kLossTimeout while the sender waits for
// credit is given up (the final count settles what arrived), and that wait
// is taken out of the span (lost_ack_wait_fraction says how much there
// was). Rates count delivered messages only.
#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

#include "bench/core/protocol.hpp"
#include "bench/engine/engine.hpp"
#include "bench/measure/patterns.hpp"
#include "bench/measure/trial.hpp"
#include "mechanisms/posix/errors.hpp"

namespace ipcbench {
namespace {

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
    trial::check_ack(buf, n,
                     first_seq + static_cast<std::uint32_t>(next_ask(newest, window, total)) - 1);
    throw ProtocolError("acknowledgement: sequence error: seq " + std::to_string(h.seq) +
                        " answers no message that asked for one");
  }
  trial::check_ack(buf, n, h.seq);  // kind and length
  return upto;
}

class StreamTrial {
 public:
  StreamTrial(PatternContext& ctx, bool blocking)
      : ctx_(ctx),
        // Blocking (lossy sync) streams use the channel itself.
        driver_(ctx.link.channel(), blocking ? Engine::kPoll : ctx.engine,
                std::max(ctx.size, kControlBytes)),
        ch_(driver_.channel()),
        clock_(ctx.clock),
        out_(ch_, ctx.send_buffer, ctx.size, ctx.verify_full, ctx.clock),
        lossy_(ctx.link.lossy()),
        blocking_(blocking),
        flow_(stream_flow_limit(ctx.size, ctx.in_flight_bytes, lossy_)),
        loss_ticks_(trial::ns_of(trial::kLossTimeout) *
                    static_cast<std::uint64_t>(std::max(clock_.ticks_per_ns(), 1.0))),
        late_(ctx.size, Kind::kEcho),
        beats_(ctx.progress.load(std::memory_order_relaxed)) {}

  TrialResult run(std::uint64_t iterations) {
    TrialResult r;
    r.flow = flow_;
    trial::TrialUsage usage(ctx_.link);
    first_ = ctx_.link.next_seq;
    end_ = Clock::monotonic_ns() + trial::ns_of(ctx_.min_time);
    t0_ = last_ack_at_ = clock_.now();
    while (!final_acked_) {
      bool progressed = send_allowed();
      // Take the acknowledgements that have come (blocking: only when the
      // sender must wait for one, one at a time, in wait()).
      if (!blocking_) {
        progressed = take_ready_acks() || progressed;
        if (final_acked_) break;
      }
      if (progressed) {
        wait_since_ = 0;
        if (!blocking_) continue;
      }
      if (!wait()) break;
    }
    driver_.finish();  // the channel is the link's again
    finish(r, usage, iterations);
    return r;
  }

 private:
  // Sends what the credits allow; true if anything went.
  bool send_allowed() {
    bool progressed = false;
    send_blocked_ = false;
    while (sent_ < total_) {
      if (sent_ - acked_ >= flow_.messages) {
        if (stall_since_ == 0) stall_since_ = clock_.now();
        break;
      }
      if (total_ == UINT64_MAX && sent_ % 64 == 0 && Clock::monotonic_ns() >= end_) {
        total_ = sent_ + 1;
      }
      const bool ask = (sent_ + 1) % flow_.ask_every == 0 || sent_ + 1 == total_;
      const std::uint32_t seq = first_ + static_cast<std::uint32_t>(sent_);
      out_.fill(seq);
      const std::span<const std::byte> message =
          out_.header(seq, ask ? Kind::kSinkAck : Kind::kSink);
      if (blocking_) {
        out_.send(message);
      } else if (!out_.try_send(message)) {
        if (full_since_ == 0) full_since_ = clock_.now();
        send_blocked_ = true;
        break;
      }
      if (full_since_ != 0 || stall_since_ != 0) {
        const std::uint64_t now = clock_.now();
        if (full_since_ != 0) full_ticks_ += now - full_since_;
        if (stall_since_ != 0) stall_ticks_ += now - stall_since_;
        full_since_ = stall_since_ = 0;
      }
      ++sent_;
      progressed = true;
      // Lossy sends never block: only answers show that the peer is there.
      if (!lossy_) ctx_.progress.store(++beats_, std::memory_order_relaxed);
    }
    return progressed;
  }

  bool take_ready_acks() {
    bool progressed = false;
    while (auto n = ch_.try_receive(ctx_.receive_buffer)) {
      if (take_ack(*n)) progressed = true;
    }
    return progressed;
  }

  // Takes one acknowledgement from the receive buffer; false for a late
  // reply that was skipped.
  bool take_ack(std::size_t n) {
    const std::span<const std::byte> buf = ctx_.receive_buffer;
    std::uint64_t upto = 0;
    AckPayload ack{};
    if (lossy_) {
      if (late_.skip(buf, n, first_)) return false;
      upto = check_lossy_ack(buf, n, first_, sent_, newest_ack_, flow_.ask_every, total_);
      ack = trial::check_ack(buf, n, read_header(buf.data()).seq);
    } else {
      upto = next_ask(acked_, flow_.ask_every, total_);
      ack = trial::check_ack(buf, n, first_ + static_cast<std::uint32_t>(upto) - 1);
      if (upto > sent_) {
        throw ProtocolError("acknowledgement: sequence error: seq " +
                            std::to_string(read_header(buf.data()).seq) +
                            " answers a message not sent yet");
      }
    }
    if (ack.received > upto || ack.received < last_ack_.received ||
        (!lossy_ && ack.received != upto)) {
      throw ProtocolError("peer acknowledged " + std::to_string(ack.received) + " of " +
                          std::to_string(upto) + " messages sent");
    }
    newest_ack_ = upto;
    last_ack_ = ack;
    last_ack_at_ = clock_.now();
    ctx_.progress.store(++beats_, std::memory_order_relaxed);
    if (upto > acked_) acked_ = upto;  // else: lossy, a late ack of a window given up
    if (upto == total_) final_acked_ = true;
    return true;
  }

  // Waits for an acknowledgement (credits or the final one) or for room in
  // the channel. Lossy: gives the oldest window up after kLossTimeout of
  // quiet; false when it is the final request (or its answer) that was lost.
  bool wait() {
    const std::uint64_t now = clock_.now();
    if (wait_since_ == 0) wait_since_ = now;
    const std::uint64_t quiet_since = std::max(wait_since_, last_ack_at_);
    if (lossy_ && now - quiet_since > loss_ticks_) {
      lost_wait_ticks_ += now - quiet_since;
      wait_since_ = now;
      if (sent_ == total_) return false;  // ask for the final count instead
      acked_ = std::min(sent_, acked_ + flow_.ask_every);
      return true;
    }
    const auto left = lossy_
                          ? std::chrono::nanoseconds(clock_.to_ns(quiet_since + loss_ticks_ - now))
                          : std::chrono::nanoseconds(trial::kAsyncIdleWait);
    if (blocking_) {
      if (const auto n = ch_.receive_for(ctx_.receive_buffer, left)) take_ack(*n);
    } else if (send_blocked_ && sent_ - acked_ < flow_.messages && ch_.send_fd() < 0) {
      // The channel is full and the credits allow more: only room lets the
      // stream go on. Without descriptors to poll both at once, a wait for
      // either alternates bounded waits of each kind, and one for an
      // acknowledgement while room came would be the harness's sleep in the
      // rate. Acknowledgements cannot pile up meanwhile: at most
      // messages / ask_every (4) are outstanding, and each pass takes them.
      ch_.wait_sendable(left);
    } else {
      trial::wait_ready(ch_, send_blocked_, left);
    }
    return true;
  }

  void finish(TrialResult& r, trial::TrialUsage& usage, std::uint64_t iterations) {
    ctx_.link.next_seq = first_ + static_cast<std::uint32_t>(sent_);
    if (!final_acked_) {
      const std::uint64_t ask_from = clock_.now();
      last_ack_ = ctx_.link.peer_count();  // the final request or its answer was lost
      lost_wait_ticks_ += clock_.now() - ask_from;
    }
    const std::uint64_t t1 = clock_.now();
    if (last_ack_.received > sent_ || (!lossy_ && last_ack_.received != sent_)) {
      throw ProtocolError("peer acknowledged " + std::to_string(last_ack_.received) +
                          " messages, " + std::to_string(sent_) + " were sent");
    }
    const std::uint64_t span = std::max<std::uint64_t>(t1 - t0_, 1);
    const std::uint64_t counted = span > lost_wait_ticks_ ? span - lost_wait_ticks_ : 1;
    r.messages_lost = sent_ - last_ack_.received;
    // Credits that stand for the receiver's buffer are the mechanism's limit.
    if (flow_.receive_buffer) full_ticks_ += std::exchange(stall_ticks_, 0);
    r.flow_stall_fraction = static_cast<double>(stall_ticks_) / static_cast<double>(counted);
    r.channel_full_fraction = static_cast<double>(full_ticks_) / static_cast<double>(counted);
    r.lost_ack_wait_fraction = static_cast<double>(lost_wait_ticks_) / static_cast<double>(span);
    r.runner_verify_ns = clock_.to_ns(out_.fill_ticks());
    trial::finish_trial(r, usage,
                        {.messages = last_ack_.received,
                         .seconds = static_cast<double>(clock_.to_ns(counted)) * 1e-9,
                         .round_trip_sum_ns = std::nullopt,
                         .iterations = iterations});
  }

  PatternContext& ctx_;
  engine::Driver driver_;
  Channel& ch_;  // as the engine drives it
  const Clock& clock_;
  trial::Outgoing out_;
  const bool lossy_;
  const bool blocking_;
  const FlowLimit flow_;
  const std::uint64_t loss_ticks_;
  trial::LateReplies late_;  // lossy: control replies from before the trial
  std::uint64_t beats_;
  std::uint32_t first_ = 0;
  std::uint64_t end_ = 0;
  std::uint64_t t0_ = 0;
  std::uint64_t total_ = UINT64_MAX;  // set when min_time has passed: the next message is the last
  std::uint64_t sent_ = 0;
  std::uint64_t acked_ = 0;       // messages up to the newest acknowledged (or given-up) request
  std::uint64_t newest_ack_ = 0;  // messages up to the newest acknowledgement received
  AckPayload last_ack_{};
  bool final_acked_ = false;
  bool send_blocked_ = false;                        // the channel refused the last send
  std::uint64_t stall_ticks_ = 0, stall_since_ = 0;  // credits held the sender
  std::uint64_t full_ticks_ = 0, full_since_ = 0;    // the channel refused a message
  std::uint64_t lost_wait_ticks_ = 0;
  std::uint64_t wait_since_ = 0;  // the sender could do nothing from then on
  std::uint64_t last_ack_at_ = 0;
};

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

namespace trial {

TrialResult run_stream_trial(PatternContext& ctx, std::uint64_t iterations, bool blocking) {
  return StreamTrial(ctx, blocking).run(iterations);
}

}  // namespace trial
}  // namespace ipcbench
