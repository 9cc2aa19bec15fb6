// The engines (bench/engine/) under the async patterns, with the peer's own
// serve loop (EchoServer) in a thread at the other end of a real kernel
// object: a stream socket pair, two pipes, a datagram socket pair. What is
// asserted is what must hold whatever the speed: every message verified
// and counted (the trials check sequence numbers and stamps), nothing lost,
// the link in step with the peer, the descriptors handed back as found,
// stray bytes reported, a channel an engine cannot drive refused.
#include "bench/engine/engine.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../support/loopback.hpp"
#include "bench/core/clock.hpp"
#include "bench/core/histogram.hpp"
#include "bench/measure/patterns.hpp"
#include "bench/wire/echo_server.hpp"
#include "bench/wire/peer_link.hpp"
#include "mechanisms/channels/datagram_channel.hpp"
#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"

namespace ipcbench {
namespace {

constexpr std::size_t kMaxMessage = 64 * 1024;

enum class Transport { kStreamSocket, kPipes, kDatagram };

std::string name_of(Transport t) {
  switch (t) {
    case Transport::kStreamSocket:
      return "stream_socket";
    case Transport::kPipes:
      return "pipes";
    case Transport::kDatagram:
      return "datagram";
  }
  return "?";
}

std::pair<posix::Fd, posix::Fd> socket_pair(int type) {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair");
  }
  return {posix::Fd(fds[0]), posix::Fd(fds[1])};
}

std::pair<posix::Fd, posix::Fd> pipe_pair() {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  return {posix::Fd(fds[0]), posix::Fd(fds[1])};
}

// The runner's channel and the peer's, over `t`.
std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> channels(Transport t) {
  switch (t) {
    case Transport::kStreamSocket: {
      auto [a, b] = socket_pair(SOCK_STREAM);
      return {std::make_unique<FramedStreamChannel>(std::move(a), posix::Fd(), kMaxMessage, true),
              std::make_unique<FramedStreamChannel>(std::move(b), posix::Fd(), kMaxMessage, true)};
    }
    case Transport::kPipes: {
      ignore_sigpipe();
      auto [up_r, up_w] = pipe_pair();
      auto [down_r, down_w] = pipe_pair();
      return {std::make_unique<FramedStreamChannel>(std::move(down_r), std::move(up_w), kMaxMessage,
                                                    false),
              std::make_unique<FramedStreamChannel>(std::move(up_r), std::move(down_w), kMaxMessage,
                                                    false)};
    }
    case Transport::kDatagram: {
      auto [a, b] = socket_pair(SOCK_DGRAM);
      return {mech::datagram::make_channel(std::move(a), kMaxMessage, "loopback", ""),
              mech::datagram::make_channel(std::move(b), kMaxMessage, "loopback", "")};
    }
  }
  throw std::logic_error("transport");
}

// The shared loopback (tests/support/loopback.hpp) over `t`.
class Loopback : public testproc::Loopback {
 public:
  explicit Loopback(Transport t) : Loopback(channels(t)) {}

  PatternContext context(std::size_t size, Engine engine) {
    PatternContext ctx = testproc::Loopback::context(size);
    ctx.engine = engine;
    return ctx;
  }

 private:
  explicit Loopback(std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> ends)
      : testproc::Loopback(std::move(ends.first), std::move(ends.second), kMaxMessage) {}
};

int flags_of(int fd) { return ::fcntl(fd, F_GETFL); }

constexpr std::uint32_t kStatsRequests = 2;  // each trial takes two sequence numbers for them

class Engines : public ::testing::TestWithParam<std::tuple<Engine, Transport>> {
 protected:
  void SetUp() override {
    const std::string why = engine::unavailable_reason(std::get<0>(GetParam()));
    if (!why.empty()) GTEST_SKIP() << why;
  }
};

// Each trial verifies every echo and acknowledgement itself and throws on
// the first wrong one; the counts below say all came and nothing else.
TEST_P(Engines, AsyncPatternsDeliverEveryMessageAndHandTheChannelBack) {
  const auto [eng, transport] = GetParam();
  Loopback loop(transport);
  const int read_fd = loop.channel().receive_fd();
  const int write_fd = loop.channel().send_fd();
  for (const std::size_t size : {std::size_t{64}, std::size_t{4096}, kMaxMessage}) {
    SCOPED_TRACE("size " + std::to_string(size));
    for (const std::uint64_t window : {1u, 16u}) {
      PatternContext ctx = loop.context(size, eng);
      ctx.window = window;
      const std::uint32_t seq0 = loop.link().next_seq;
      const TrialResult r = run_async_latency_trial(ctx, 1);
      ASSERT_GT(r.messages, 0u);
      EXPECT_EQ(r.messages_lost, 0u);
      EXPECT_LE(r.max_in_flight, window);
      // And one for the peer's one-way spectrum.
      EXPECT_EQ(loop.link().next_seq, seq0 + r.messages + kStatsRequests + 1);
    }
    PatternContext ctx = loop.context(size, eng);
    const std::uint32_t seq0 = loop.link().next_seq;
    const TrialResult t = run_async_throughput_trial(ctx, 1);
    ASSERT_GT(t.messages, 0u);
    EXPECT_EQ(t.messages_lost, 0u);
    EXPECT_EQ(loop.link().next_seq, seq0 + t.messages + kStatsRequests);
    // The descriptors are the channel's again, blocking or not as the
    // channel left them, and it still works: a sync trial after the engine's.
    const int flags_before = flags_of(read_fd);
    PatternContext sync = loop.context(size, eng);
    EXPECT_EQ(run_latency_trial(sync, 50).messages, 50u);
    EXPECT_EQ(flags_of(read_fd), flags_before);
    EXPECT_GE(flags_of(write_fd), 0);
  }
  EXPECT_EQ(loop.finish(), "");
}

INSTANTIATE_TEST_SUITE_P(
    EveryEngine, Engines,
    ::testing::Combine(::testing::Values(Engine::kPoll, Engine::kEpoll, Engine::kIoUring),
                       ::testing::Values(Transport::kStreamSocket, Transport::kPipes,
                                         Transport::kDatagram)),
    [](const auto& param_info) {
      return std::string(ipcbench::name_of(std::get<0>(param_info.param))) + "_" +
             name_of(std::get<1>(param_info.param));
    });

// io_uring hands the descriptors back only at a message boundary: a
// message that came and that no receive took is an error, not lost quietly.
TEST(IoUringEngine, FinishReportsAMessageNoReceiveTook) {
  if (const std::string why = engine::unavailable_reason(Engine::kIoUring); !why.empty()) {
    GTEST_SKIP() << why;
  }
  auto [a, b] = socket_pair(SOCK_STREAM);
  FramedStreamChannel runner(std::move(a), posix::Fd(), 4096, true);
  FramedStreamChannel peer(std::move(b), posix::Fd(), 4096, true);
  engine::Driver driver(runner, Engine::kIoUring, 4096);
  const std::vector<std::byte> hello(32, std::byte{7});
  peer.send(hello);
  ASSERT_TRUE(driver.channel().wait_receivable(std::chrono::seconds(5)));
  EXPECT_THROW(driver.finish(), ProtocolError);
}

TEST(IoUringEngine, FinishAfterEveryMessageWasTakenLeavesTheStreamIntact) {
  if (const std::string why = engine::unavailable_reason(Engine::kIoUring); !why.empty()) {
    GTEST_SKIP() << why;
  }
  auto [a, b] = socket_pair(SOCK_STREAM);
  FramedStreamChannel runner(std::move(a), posix::Fd(), 4096, true);
  FramedStreamChannel peer(std::move(b), posix::Fd(), 4096, true);
  std::vector<std::byte> buf(4096);
  {
    engine::Driver driver(runner, Engine::kIoUring, 4096);
    Channel& ch = driver.channel();
    for (int i = 1; i <= 3; ++i) {
      ASSERT_TRUE(ch.try_send(std::vector<std::byte>(100 * i, std::byte(i))));
    }
    // Accepted is not yet sent: a wait submits what is queued, even one
    // that finds the channel ready at once (it has room).
    ASSERT_TRUE(ch.wait_sendable(std::chrono::seconds(5)));
    for (int i = 1; i <= 3; ++i) {
      ASSERT_EQ(peer.receive(buf), 100u * i);
      EXPECT_EQ(buf[0], std::byte(i));
      EXPECT_EQ(buf[100u * i - 1], std::byte(i));
    }
    peer.send(std::vector<std::byte>(10, std::byte{9}));
    std::optional<std::size_t> got;
    while (!(got = ch.try_receive(buf))) ASSERT_TRUE(ch.wait_receivable(std::chrono::seconds(5)));
    EXPECT_EQ(*got, 10u);
    driver.finish();  // an armed read is cancelled; nothing came after
  }
  // The channel reads on where the engine stopped.
  peer.send(std::vector<std::byte>(20, std::byte{4}));
  EXPECT_EQ(runner.receive(buf), 20u);
  EXPECT_EQ(buf[19], std::byte{4});
}

// A channel that does not move its bytes with plain reads and writes
// (pipe-splice's vmsplice, shared memory) cannot be driven by io_uring.
TEST(IoUringEngine, RefusesAChannelWithoutRawIo) {
  if (const std::string why = engine::unavailable_reason(Engine::kIoUring); !why.empty()) {
    GTEST_SKIP() << why;
  }
  auto [a, b] = socket_pair(SOCK_STREAM);
  FramedStreamChannel runner(std::move(a), posix::Fd(), 4096, true);
  FramedStreamChannel peer(std::move(b), posix::Fd(), 4096, true);
  peer.send(std::vector<std::byte>(8, std::byte{1}));
  peer.send(std::vector<std::byte>(8, std::byte{2}));
  std::vector<std::byte> buf(4096);
  ASSERT_EQ(runner.receive(buf), 8u);  // the second is read ahead into the channel's buffer
  ASSERT_FALSE(runner.raw_io().has_value()) << "bytes read ahead: not at a boundary";
  EXPECT_THROW(engine::Driver(runner, Engine::kIoUring, 4096), ProtocolError);
}

// A channel whose room comes back only when it reads what arrived, as
// cma's does (a try_send slot is freed by the acknowledgement try_receive
// reads): send_fd() is an eventfd that stays unwritable until then.
class RoomFromReadingChannel : public Channel {
 public:
  RoomFromReadingChannel(int data_fd) : data_fd_(data_fd), room_(::eventfd(0, EFD_CLOEXEC)) {
    const std::uint64_t full = 0xfffffffffffffffeULL;  // not writable
    if (::write(room_.get(), &full, sizeof full) != sizeof full)
      throw std::runtime_error("eventfd");
  }
  void send(std::span<const std::byte>) override {}
  std::size_t receive(std::span<std::byte>) override { return 0; }
  bool try_send(std::span<const std::byte>) override { return false; }
  std::optional<std::size_t> try_receive(std::span<std::byte>) override { return std::nullopt; }
  bool wait_receivable(std::chrono::nanoseconds) override { return false; }
  bool wait_sendable(std::chrono::nanoseconds) override { return false; }
  int receive_fd() const noexcept override { return data_fd_; }
  int send_fd() const noexcept override { return room_.get(); }

 private:
  int data_fd_;
  posix::Fd room_;
};

// The epoll engine's wait for room wakes when data arrives too: the
// channel finds room by reading it. (A wait on send_fd() alone slept for
// its whole timeout at every full channel: cma under epoll streamed ~1 k
// messages/s.)
TEST(EpollEngine, AWaitForRoomWakesWhenDataArrives) {
  auto [a, b] = socket_pair(SOCK_STREAM);
  RoomFromReadingChannel channel(a.get());
  engine::Driver driver(channel, Engine::kEpoll, 64);
  EXPECT_FALSE(driver.channel().wait_sendable(std::chrono::milliseconds(20)))
      << "ready with neither room nor data";
  const char ack = 'a';
  ASSERT_EQ(::write(b.get(), &ack, 1), 1);
  EXPECT_TRUE(driver.channel().wait_sendable(std::chrono::seconds(10)))
      << "the wait for room did not wake on the data that brings it";
  driver.finish();
}

TEST(Engines, ApplyToPollableMechanismsOnlyAndIoUringToRawIo) {
  EXPECT_TRUE(engine::engines_of({.pollable = false}).empty());
  EXPECT_EQ(engine::engines_of({.pollable = true}),
            (std::vector<Engine>{Engine::kPoll, Engine::kEpoll}));
  EXPECT_EQ(engine::engines_of({.pollable = true, .raw_io = true}),
            (std::vector<Engine>{Engine::kPoll, Engine::kEpoll, Engine::kIoUring}));
}

}  // namespace
}  // namespace ipcbench
