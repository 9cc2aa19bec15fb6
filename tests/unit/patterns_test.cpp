// The timing loops' logic without a peer process: each pattern runs against
// the peer's own serve loop (EchoServer) in a thread, over an in-process
// loopback (a Unix datagram socket pair), with a channel in between that
// can corrupt or drop one chosen message. What is asserted is bookkeeping,
// never speed: messages counted, sequence numbers kept in step with the
// peer's strict checks, the window and the flow limit obeyed, a loss
// counted as a loss, a corrupted echo failing the trial.
#include "bench/measure/patterns.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../support/loopback.hpp"
#include "bench/core/clock.hpp"
#include "bench/core/histogram.hpp"
#include "bench/wire/echo_server.hpp"
#include "bench/wire/peer_link.hpp"
#include "mechanisms/channels/datagram_channel.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"

namespace ipcbench {
namespace {

constexpr std::size_t kMaxMessage = 4096;

// What the channel between the pattern and the loopback does to one message
// (1-based, counted separately for what is sent and what is received).
struct Tamper {
  enum class What { kNothing, kDropSent, kDropReceived, kCorruptReceived, kCorruptSent };
  What what = What::kNothing;
  std::uint64_t nth = 0;
  std::size_t byte = 0;  // which byte a corruption flips
  // A channel without descriptors (not pollable) whose try_send refuses
  // every `refuse_every`-th call, as a full ring would (0: never).
  bool hide_fds = false;
  std::uint64_t refuse_every = 0;
};

// The runner's channel, forwarding to the loopback and applying a Tamper.
class TamperingChannel : public Channel {
 public:
  TamperingChannel(std::unique_ptr<Channel> inner, Tamper tamper)
      : inner_(std::move(inner)), tamper_(tamper) {}

  void send(std::span<const std::byte> m) override {
    if (!tamper_sent(m)) inner_->send(outgoing_);
  }
  bool try_send(std::span<const std::byte> m) override {
    if (tamper_.refuse_every != 0 && ++tries_ % tamper_.refuse_every == 0) {
      ++refusals_;
      full_ = true;
      return false;
    }
    full_ = false;
    if (tamper_sent(m)) return true;
    if (inner_->try_send(outgoing_)) return true;
    --sent_;  // refused: not sent, the retry counts as the same message
    return false;
  }
  std::size_t receive(std::span<std::byte> b) override {
    for (;;) {
      const std::size_t n = inner_->receive(b);
      if (tamper_received(b, n)) return n;
    }
  }
  std::optional<std::size_t> try_receive(std::span<std::byte> b) override {
    for (;;) {
      const auto n = inner_->try_receive(b);
      if (!n || tamper_received(b, *n)) return n;
    }
  }
  std::optional<std::size_t> receive_for(std::span<std::byte> b,
                                         std::chrono::nanoseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = deadline - std::chrono::steady_clock::now();
      const auto n = inner_->receive_for(b, std::max(left, std::chrono::nanoseconds(1)));
      if (!n || tamper_received(b, *n)) return n;
    }
  }
  bool wait_receivable(std::chrono::nanoseconds t) override {
    if (full_) ++receive_waits_while_full_;
    return inner_->wait_receivable(t);
  }
  bool wait_sendable(std::chrono::nanoseconds t) override {
    if (full_) return true;  // the simulated ring has room again
    return inner_->wait_sendable(t);
  }
  int receive_fd() const noexcept override { return tamper_.hide_fds ? -1 : inner_->receive_fd(); }
  int send_fd() const noexcept override { return tamper_.hide_fds ? -1 : inner_->send_fd(); }

  std::uint64_t sent() const noexcept { return sent_; }
  std::uint64_t refusals() const noexcept { return refusals_; }
  // Waits for a message begun while the last try_send had been refused.
  std::uint64_t receive_waits_while_full() const noexcept { return receive_waits_while_full_; }

 private:
  // Copies the message to send into outgoing_ (corrupted if chosen); true
  // when it is to be dropped instead.
  bool tamper_sent(std::span<const std::byte> m) {
    ++sent_;
    outgoing_.assign(m.begin(), m.end());
    if (sent_ != tamper_.nth) return false;
    if (tamper_.what == Tamper::What::kDropSent) return true;
    if (tamper_.what == Tamper::What::kCorruptSent) outgoing_.at(tamper_.byte) ^= std::byte{0x5a};
    return false;
  }
  // False when the received message is to be dropped.
  bool tamper_received(std::span<std::byte> b, std::size_t n) {
    if (++received_ != tamper_.nth) return true;
    if (tamper_.what == Tamper::What::kDropReceived) return false;
    if (tamper_.what == Tamper::What::kCorruptReceived && tamper_.byte < n) {
      b[tamper_.byte] ^= std::byte{0x5a};
    }
    return true;
  }

  std::unique_ptr<Channel> inner_;
  Tamper tamper_;
  std::vector<std::byte> outgoing_;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t tries_ = 0;
  std::uint64_t refusals_ = 0;
  std::uint64_t receive_waits_while_full_ = 0;
  bool full_ = false;
};

// The shared loopback (tests/support/loopback.hpp) over a Unix datagram
// socket pair, with a TamperingChannel on the runner's end. `lossy` is what
// both ends are told; the loopback itself loses nothing unless tampered with.
class Loopback : public testproc::Loopback {
 public:
  explicit Loopback(bool lossy = false, bool verify_full = false, Tamper tamper = {})
      : Loopback(ends(tamper), lossy, verify_full) {}

  PatternContext context(std::size_t size, bool verify_full = false) {
    PatternContext ctx = testproc::Loopback::context(size);
    ctx.verify_full = verify_full;
    return ctx;
  }
  TamperingChannel& channel() {
    return static_cast<TamperingChannel&>(testproc::Loopback::channel());
  }

 private:
  using Ends = std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>>;
  static Ends ends(Tamper tamper) {
    int fds[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) != 0) {
      throw std::system_error(errno, std::generic_category(), "socketpair");
    }
    auto runner = mech::datagram::make_channel(posix::Fd(fds[0]), kMaxMessage, "loopback", "");
    auto peer = mech::datagram::make_channel(posix::Fd(fds[1]), kMaxMessage, "loopback", "");
    return {std::make_unique<TamperingChannel>(std::move(runner), tamper), std::move(peer)};
  }
  Loopback(Ends e, bool lossy, bool verify_full)
      : testproc::Loopback(std::move(e.first), std::move(e.second), kMaxMessage, lossy,
                           verify_full) {}
};

// Two stats requests bracket every trial: they take a sequence number each.
constexpr std::uint32_t kStatsRequests = 2;

TEST(Patterns, SyncLatencyCountsEveryRoundTripAndKeepsStepWithThePeer) {
  Loopback loop;
  PatternContext ctx = loop.context(64);
  const std::uint32_t seq0 = loop.link().next_seq;
  const TrialResult r = run_latency_trial(ctx, 500);
  EXPECT_EQ(r.messages, 500u);
  EXPECT_EQ(loop.histogram().count(), 500u);
  EXPECT_EQ(loop.link().next_seq, seq0 + 500 + kStatsRequests);
  EXPECT_EQ(loop.beats(), 500u);
  ASSERT_GT(r.mean_ns, 0);
  // Google Benchmark divides the manual time by the 500 iterations: its
  // real_time is then the mean round trip.
  EXPECT_NEAR(r.iteration_seconds / 500, r.mean_ns * 1e-9, r.mean_ns * 1e-15);
  EXPECT_NEAR(r.seconds, r.mean_ns * 500 * 1e-9, r.seconds * 1e-6);
  EXPECT_EQ(r.messages_lost, 0u);
  EXPECT_EQ(loop.finish(), "");
}

TEST(Patterns, SyncThroughputIsAcknowledgedInFullAtTheEnd) {
  Loopback loop;
  PatternContext ctx = loop.context(256);
  const std::uint32_t seq0 = loop.link().next_seq;
  const TrialResult r = run_throughput_trial(ctx, 1000);
  EXPECT_EQ(r.messages, 1000u);
  EXPECT_EQ(loop.link().next_seq, seq0 + 1000 + kStatsRequests);
  EXPECT_NEAR(r.iteration_seconds, r.seconds, r.seconds * 1e-9);
  EXPECT_FALSE(r.flow.has_value());
  EXPECT_EQ(loop.finish(), "");
}

TEST(Patterns, AsyncLatencyAtWindowOneHasOneMessageInFlight) {
  Loopback loop;
  PatternContext ctx = loop.context(64);
  ctx.window = 1;
  const TrialResult r = run_async_latency_trial(ctx, 1);
  ASSERT_GT(r.messages, 0u);
  EXPECT_EQ(r.max_in_flight, 1u);
  EXPECT_EQ(loop.histogram().count(), r.messages);
  ASSERT_TRUE(r.oneway.has_value());
  EXPECT_EQ(r.oneway->count, r.messages);  // the peer timed every echo
  EXPECT_NEAR(r.iteration_seconds, r.mean_ns * 1e-9, r.mean_ns * 1e-15);
  EXPECT_EQ(r.messages_lost, 0u);
  EXPECT_EQ(loop.finish(), "");
}

TEST(Patterns, AsyncLatencyNeverExceedsItsWindow) {
  Loopback loop;
  PatternContext ctx = loop.context(64);
  ctx.window = 8;
  const TrialResult r = run_async_latency_trial(ctx, 1);
  ASSERT_GT(r.messages, 0u);
  EXPECT_GE(r.max_in_flight, 1u);
  EXPECT_LE(r.max_in_flight, 8u);
  EXPECT_EQ(r.oneway->count, r.messages);
  EXPECT_EQ(loop.finish(), "");
}

TEST(Patterns, OpenLoopRecordsTheLatenessOfEverySend) {
  Loopback loop;
  PatternContext ctx = loop.context(64);
  ctx.rate = 20'000;
  const TrialResult r = run_async_latency_trial(ctx, 1);
  ASSERT_GT(r.messages, 0u);
  // Every message sent was echoed (nothing lost) and had its lateness taken.
  EXPECT_EQ(loop.lateness().count(), r.messages);
  EXPECT_EQ(r.oneway->count, r.messages);
  EXPECT_GT(r.rate_achieved, 0);
  EXPECT_EQ(loop.finish(), "");
}

TEST(Patterns, AsyncThroughputStaysWithinItsFlowLimit) {
  Loopback loop;
  PatternContext ctx = loop.context(1024);
  ctx.in_flight_bytes = 16 * 1024;  // 16 messages: the limit is met
  const std::uint32_t seq0 = loop.link().next_seq;
  const TrialResult r = run_async_throughput_trial(ctx, 1);
  ASSERT_TRUE(r.flow.has_value());
  EXPECT_EQ(r.flow->messages, 16u);
  EXPECT_EQ(r.flow->ask_every, 4u);
  ASSERT_GT(r.messages, 0u);
  EXPECT_EQ(r.messages_lost, 0u);
  EXPECT_EQ(loop.link().next_seq, seq0 + r.messages + kStatsRequests);
  EXPECT_GE(r.flow_stall_fraction, 0.0);
  EXPECT_LE(r.flow_stall_fraction, 1.0);
  EXPECT_NEAR(r.iteration_seconds, r.seconds / static_cast<double>(r.messages), r.seconds * 1e-12);
  EXPECT_EQ(loop.finish(), "");
}

// A full channel without descriptors: while the credits allow more, only
// room lets the stream go on, so the harness waits for room, never for an
// acknowledgement (a bounded wait for one while room came would put the
// harness's sleep into the rate: shm-futex streamed at ~90 k msg/s async
// against 2.2 M sync before).
TEST(Patterns, AsyncThroughputOfAFullNonPollableChannelWaitsForRoom) {
  Loopback loop(false, false, {.hide_fds = true, .refuse_every = 8});
  PatternContext ctx = loop.context(64);
  const TrialResult r = run_async_throughput_trial(ctx, 1);
  ASSERT_GT(r.messages, 0u);
  EXPECT_GT(loop.channel().refusals(), 0u);
  EXPECT_EQ(loop.channel().receive_waits_while_full(), 0u);
  EXPECT_EQ(r.messages_lost, 0u);
  EXPECT_EQ(loop.finish(), "");
}

// Every pattern, one after another on one link, with --verify full: the
// peer checks every sequence number and payload byte, so any step that
// lost count of sequence numbers or filled a payload wrong fails here.
TEST(Patterns, EveryPatternInTurnWithFullVerification) {
  Loopback loop(/*lossy=*/false, /*verify_full=*/true);
  PatternContext ctx = loop.context(512, /*verify_full=*/true);
  warm_up(ctx, std::chrono::milliseconds(5), 16, 64);
  EXPECT_EQ(run_latency_trial(ctx, 100).messages, 100u);
  const TrialResult t = run_throughput_trial(ctx, 200);
  EXPECT_EQ(t.messages, 200u);
  EXPECT_GT(t.runner_verify_ns, 0u);  // the fills were timed
  ctx.window = 4;
  EXPECT_GT(run_async_latency_trial(ctx, 1).messages, 0u);
  EXPECT_GT(run_async_throughput_trial(ctx, 1).messages, 0u);
  ctx.rate = 10'000;
  EXPECT_GT(run_async_latency_trial(ctx, 1).messages, 0u);
  EXPECT_EQ(loop.finish(), "");
}

TEST(Patterns, ACorruptedEchoFailsTheTrialNamingIt) {
  // Received: the hello, the stats reply that opens the trial, then echoes:
  // the 5th message is the 3rd echo.
  Loopback loop(false, true, {.what = Tamper::What::kCorruptReceived, .nth = 5, .byte = 100});
  PatternContext ctx = loop.context(512, true);
  try {
    (void)run_latency_trial(ctx, 100);
    FAIL() << "a corrupted echo was accepted";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("corrupted payload at byte 100"), std::string::npos)
        << e.what();
  }
}

TEST(Patterns, AnEchoWithTheWrongSequenceFailsTheAsyncTrial) {
  // Byte 0 is the low byte of the sequence number.
  Loopback loop(false, false, {.what = Tamper::What::kCorruptReceived, .nth = 6, .byte = 0});
  PatternContext ctx = loop.context(64);
  ctx.window = 4;
  EXPECT_THROW((void)run_async_latency_trial(ctx, 1), ProtocolError);
}

TEST(Patterns, TheServerRejectsACorruptedSinkAndTheRunnerLearnsThePeerIsGone) {
  Loopback loop(false, true, {.what = Tamper::What::kCorruptSent, .nth = 10, .byte = 200});
  PatternContext ctx = loop.context(512, true);
  EXPECT_THROW((void)run_throughput_trial(ctx, 100), PeerLost);
  const std::string peer = loop.finish();
  EXPECT_NE(peer.find("corrupted payload at byte 200"), std::string::npos) << peer;
}

// Lossy: a dropped echo is one message lost, counted after the loss
// timeout; the trial goes on and every other round trip is a sample.
TEST(Patterns, LossyLatencyCountsADroppedEchoAsLost) {
  Loopback loop(/*lossy=*/true, false, {.what = Tamper::What::kDropReceived, .nth = 5});
  PatternContext ctx = loop.context(64);
  const TrialResult r = run_latency_trial(ctx, 1);  // lossy: self-timed
  EXPECT_EQ(r.messages_lost, 1u);
  EXPECT_EQ(r.late, 0u);
  EXPECT_EQ(r.messages, loop.histogram().count());
  EXPECT_GT(r.messages, 0u);
  EXPECT_EQ(loop.finish(), "");
}

TEST(Patterns, LossyAsyncLatencyCountsADroppedEchoAsLost) {
  Loopback loop(true, false, {.what = Tamper::What::kDropReceived, .nth = 5});
  PatternContext ctx = loop.context(64);
  ctx.window = 1;
  const TrialResult r = run_async_latency_trial(ctx, 1);
  EXPECT_EQ(r.messages_lost, 1u);
  EXPECT_GT(r.messages, 0u);
  // The peer received (and timed) the message whose echo was dropped.
  EXPECT_EQ(r.oneway->count, r.messages + 1);
  EXPECT_EQ(loop.finish(), "");
}

// Lossy streaming: a sink dropped on its way is one message the peer never
// counted; the final acknowledgement settles it.
TEST(Patterns, LossyThroughputCountsADroppedMessageAsLost) {
  Loopback loop(true, false, {.what = Tamper::What::kDropSent, .nth = 20});
  PatternContext ctx = loop.context(256);
  const TrialResult r = run_throughput_trial(ctx, 1);  // lossy: self-timed stream
  ASSERT_TRUE(r.flow.has_value());
  EXPECT_EQ(r.messages_lost, 1u);
  EXPECT_GT(r.messages, 0u);
  EXPECT_EQ(loop.finish(), "");
}

}  // namespace
}  // namespace ipcbench
