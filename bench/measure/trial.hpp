// The steps every timing loop shares, so each is written once: the message
// a trial sends (Outgoing), the check of an echo (EchoCheck), the check of
// an acknowledgement (check_ack), what a lossy trial remembers of late and
// given-up replies (LateReplies, GivenUp), the wait for readiness
// (wait_ready), and the trial's epilogue (TrialUsage + finish_trial).
// Internal to the patterns (bench/measure/*.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "bench/core/clock.hpp"
#include "bench/core/protocol.hpp"
#include "bench/core/syscall_count.hpp"
#include "bench/measure/patterns.hpp"
#include "bench/wire/peer_link.hpp"
#include "mechanisms/mechanism.hpp"

namespace ipcbench::trial {

// Lossy mechanisms: how long a reply may take before the message counts as
// lost. Far above any loopback round trip, short enough that a lost
// datagram costs little.
inline constexpr auto kLossTimeout = std::chrono::milliseconds(200);

// A wait with nothing in flight is bounded by this (the loop then looks
// again); the watchdog, not this bound, ends a case whose peer hangs.
inline constexpr auto kAsyncIdleWait = std::chrono::milliseconds(100);

inline std::uint64_t ns_of(std::chrono::nanoseconds d) noexcept {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 0));
}

// A span as ticks of `clock` (for a deadline compared with clock.now()).
inline std::uint64_t ticks_of(const Clock& clock, std::chrono::nanoseconds d) noexcept {
  return static_cast<std::uint64_t>(static_cast<double>(ns_of(d)) * clock.ticks_per_ns());
}

// Throws ProtocolError saying what is wrong with buf[0..n), expected to be
// message `seq` of `size` bytes and `kind` ("unexpected reply" if nothing is).
[[noreturn]] void fail_message(std::span<const std::byte> buf, std::size_t n, std::uint32_t seq,
                               std::size_t size, Kind kind, bool full);

// The message a trial sends next, written where the channel lends it
// (Channel::loan: a loan API's shared memory, else the trial's send
// buffer), and sent from there. With --verify full its payload is filled
// once per message and memory (a refused send retried in the same buffer
// is not filled again) and the time spent filling is counted.
class Outgoing {
 public:
  Outgoing(Channel& channel, std::span<std::byte> buffer, std::size_t size, bool verify_full,
           const Clock& clock)
      : channel_(channel),
        buffer_(buffer.first(size)),
        size_(size),
        verify_full_(verify_full),
        clock_(clock) {}

  // --verify full: fills the payload for `seq` unless its memory holds it.
  void fill(std::uint32_t seq) {
    if (verify_full_) fill_into(channel_.loan(buffer_, size_), seq);
  }
  // Writes the header (and, should the loan have moved since fill(), the
  // payload) and returns the whole message, ready to send.
  std::span<const std::byte> header(std::uint32_t seq, Kind kind, std::uint64_t stamp = 0) {
    const std::span<std::byte> m = channel_.loan(buffer_, size_);
    if (verify_full_) fill_into(m, seq);
    write_header(m.data(), seq, size_, kind, stamp);
    return m;
  }
  // Both: the message `seq`, ready to send.
  std::span<const std::byte> prepare(std::uint32_t seq, Kind kind) {
    fill(seq);
    return header(seq, kind);
  }
  // Sends a message header() or prepare() returned.
  void send(std::span<const std::byte> message) { channel_.send_loaned(message); }
  [[nodiscard]] bool try_send(std::span<const std::byte> message) {
    return channel_.try_send_loaned(message);
  }
  std::uint64_t fill_ticks() const noexcept { return fill_ticks_; }

 private:
  void fill_into(std::span<std::byte> m, std::uint32_t seq) noexcept {
    if (filled_ == seq && filled_at_ == m.data()) return;
    const std::uint64_t t0 = clock_.now();
    fill_pattern(m, seq);
    fill_ticks_ += clock_.now() - t0;
    filled_ = seq;
    filled_at_ = m.data();
  }

  Channel& channel_;
  std::span<std::byte> buffer_;
  std::size_t size_;
  bool verify_full_;
  const Clock& clock_;
  std::uint64_t filled_ = UINT64_MAX;     // the seq whose payload filled_at_ holds
  const std::byte* filled_at_ = nullptr;  // where it was filled
  std::uint64_t fill_ticks_ = 0;
};

// Checks a reply that should be the echo of message `seq`: its size, its
// header (sequence, length, kind) and, with --verify full, every payload
// byte. Throws ProtocolError naming what is wrong.
class EchoCheck {
 public:
  EchoCheck(std::size_t size, Kind kind, bool verify_full)
      : size_(size), kind_(kind), length_kind_(pack_length_kind(size, kind)), full_(verify_full) {}

  // True when a reply has the size, length and kind of our echoes, whatever
  // its sequence number.
  bool shaped(const MessageHeader& h, std::size_t n) const noexcept {
    return n == size_ && h.length_kind == length_kind_;
  }
  void operator()(std::span<const std::byte> buf, std::size_t n, std::uint32_t seq) const {
    const MessageHeader h = read_header(buf.data());
    if (!shaped(h, n) || h.seq != seq || (full_ && check_pattern(buf.first(n), seq) != n))
        [[unlikely]] {
      fail_message(buf, n, seq, size_, kind_, full_);
    }
  }

 private:
  std::size_t size_;
  Kind kind_;
  std::uint32_t length_kind_;
  bool full_;
};

// Checks an acknowledgement (kAck, kControlBytes, answering the message
// `expected_seq`) and returns how many messages the peer says it received.
AckPayload check_ack(std::span<const std::byte> buf, std::size_t n, std::uint32_t expected_seq);

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
  bool skip(std::span<const std::byte> buf, std::size_t n, std::uint32_t awaited) noexcept;
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

// Lossy mechanisms: messages the harness stopped waiting for after
// kLossTimeout, whose replies may still come. A reply that does is a
// latency sample (counted `late`) and the message is no longer lost; what
// is still here when the trial ends stays lost. Bounded: the oldest entry
// leaves when a new one does not fit (it stays lost, and its reply, should
// it ever come, is skipped as a late reply).
class GivenUp {
 public:
  void add(std::uint32_t seq, std::uint64_t sent_at) noexcept;
  // The send time of `seq` if it was given up (and forgets it and every
  // older entry: replies are not reordered, so those will not come).
  std::optional<std::uint64_t> take(std::uint32_t seq) noexcept;

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

// Waits until the channel can probably receive, or also send when
// `want_send`, at most `timeout`. With descriptors, one ppoll on both; the
// channel's own waits otherwise (spin, futex, timed semaphores, ...).
void wait_ready(Channel& ch, bool want_send, std::chrono::nanoseconds timeout);

// Brackets a trial with CPU, context-switch and system-call readings on both
// sides (a stats round trip with the peer at each end, outside the span).
class TrialUsage {
 public:
  explicit TrialUsage(PeerLink& link);
  ~TrialUsage();
  TrialUsage(const TrialUsage&) = delete;
  TrialUsage& operator=(const TrialUsage&) = delete;
  // Reads both sides again and fills the CPU, switch and syscall fields.
  void finish(TrialResult& r);

 private:
  PeerLink& link_;
  StatsPayload peer0_{};
  StatsPayload self0_{};
  std::unique_ptr<SyscallCounter> syscalls_;
  std::uint64_t own0_ = 0;
};

// What a trial counted, for its epilogue.
struct TrialFigures {
  std::uint64_t messages = 0;  // round trips (latency) or delivered messages
  double seconds = 0;          // the span rates divide by
  // Latency trials: the sum of the round trips, so the mean round trip is
  // the iteration time (real_time). Throughput trials: none, the iteration
  // time is the time per message.
  std::optional<double> round_trip_sum_ns;
  std::uint64_t iterations = 1;  // what Google Benchmark counts for the trial
};

// The trial epilogue, the same for every pattern: the usage of both sides
// (call it once the span has ended), the figures, and the manual time to
// report for the trial's iterations.
void finish_trial(TrialResult& r, TrialUsage& usage, const TrialFigures& f);

// Streaming with acknowledgements under stream_flow_limit() (self-timed):
// async throughput (non-blocking sends, readiness waits) and lossy
// throughput (blocking sends; `blocking`). In stream_trial.cpp.
TrialResult run_stream_trial(PatternContext& ctx, std::uint64_t iterations, bool blocking);

}  // namespace ipcbench::trial
