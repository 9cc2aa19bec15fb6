// The length-prefix framing of byte-stream mechanisms, over a socketpair:
// whole messages out of a byte stream, and no trust in the length field.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/posix/errors.hpp"

namespace ipcbench {
namespace {

using Clock = std::chrono::steady_clock;

// No test waits longer than this for bytes or room: a framing bug that loses
// or withholds bytes fails the test instead of hanging the binary (it also
// runs under TSan/ASan, straight from CI).
constexpr std::chrono::seconds kHang{20};

struct Pair {
  posix::Fd a, b;
};

// Blocking reads and writes on the pair give up after kHang: they fail with
// EAGAIN, which the channel reports as "receive failed" / "send failed:
// Resource temporarily unavailable".
Pair socket_pair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  const timeval limit{static_cast<time_t>(kHang.count()), 0};
  for (int fd : fds) {
    EXPECT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
    EXPECT_EQ(::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit), 0);
  }
  return {posix::Fd(fds[0]), posix::Fd(fds[1])};
}

std::vector<std::byte> bytes(std::size_t n, int seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return v;
}

void write_raw(int fd, const void* data, std::size_t n) {
  ASSERT_EQ(::write(fd, data, n), static_cast<ssize_t>(n));
}

TEST(DecodeFrameLength, RejectsZeroAndOverLimit) {
  std::array<std::byte, 4> h{};
  EXPECT_THROW(decode_frame_length(h, 100), ProtocolError);
  const std::uint32_t big = htole32(101);
  std::memcpy(h.data(), &big, 4);
  EXPECT_THROW(decode_frame_length(h, 100), ProtocolError);
  const std::uint32_t ok = htole32(100);
  std::memcpy(h.data(), &ok, 4);
  EXPECT_EQ(decode_frame_length(h, 100), 100u);
}

TEST(FramedStreamChannel, MessagesOfManySizesArriveWhole) {
  auto [a, b] = socket_pair();
  FramedStreamChannel tx(std::move(a), posix::Fd(), 1 << 20, true);
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1 << 20, true);
  const std::vector<std::size_t> sizes = {1, 3, 4, 5, 100, 4095, 65535, 65536, 65537, 1 << 20};
  std::string send_error;
  // Joined on every way out; its sends give up after kHang once we stop reading.
  std::jthread sender([&] {
    try {
      for (std::size_t i = 0; i < sizes.size(); ++i) tx.send(bytes(sizes[i], static_cast<int>(i)));
    } catch (const std::exception& e) {
      send_error = e.what();
    }
  });
  std::vector<std::byte> buf(1 << 20);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    std::size_t n = 0;
    try {
      n = rx.receive(buf);
    } catch (const std::system_error& e) {
      FAIL() << "message " << i << " did not arrive whole within " << kHang.count()
             << " s: " << e.what();
    }
    ASSERT_EQ(n, sizes[i]);
    EXPECT_EQ(std::memcmp(buf.data(), bytes(n, static_cast<int>(i)).data(), n), 0) << i;
  }
  sender.join();
  EXPECT_EQ(send_error, "");
}

TEST(FramedStreamChannel, FrameSplitAcrossReadsIsReassembled) {
  auto [a, b] = socket_pair();
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1024, true);
  const std::uint32_t len = htole32(10);
  const auto body = bytes(10, 7);
  std::jthread writer([fd = a.get(), &len, &body] {  // joined on every way out
    // Byte by byte, with pauses, so each read sees a fragment.
    const auto* h = reinterpret_cast<const char*>(&len);
    for (int i = 0; i < 4; ++i) {
      write_raw(fd, h + i, 1);
      usleep(2000);
    }
    for (std::size_t i = 0; i < body.size(); ++i) {
      write_raw(fd, &body[i], 1);
      usleep(1000);
    }
  });
  std::vector<std::byte> buf(1024);
  EXPECT_EQ(rx.receive(buf), 10u);
  EXPECT_EQ(std::memcmp(buf.data(), body.data(), 10), 0);
  writer.join();
}

TEST(FramedStreamChannel, OversizedLengthIsAProtocolErrorNotAnOverrun) {
  auto [a, b] = socket_pair();
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1 << 20, true);
  const std::uint32_t len = htole32(1000);
  write_raw(a.get(), &len, 4);
  // Receive buffer of 64 bytes inside a guarded region.
  std::vector<std::byte> region(64 + 64, std::byte{0xEE});
  EXPECT_THROW(rx.receive(std::span<std::byte>(region.data(), 64)), ProtocolError);
  for (std::size_t i = 64; i < region.size(); ++i) ASSERT_EQ(region[i], std::byte{0xEE});
}

TEST(FramedStreamChannel, LengthAboveMaxMessageIsAProtocolError) {
  auto [a, b] = socket_pair();
  FramedStreamChannel rx(std::move(b), posix::Fd(), 128, true);
  const std::uint32_t len = htole32(0xFFFFFFFF);
  write_raw(a.get(), &len, 4);
  std::vector<std::byte> buf(1 << 16);
  EXPECT_THROW(rx.receive(buf), ProtocolError);
}

TEST(FramedStreamChannel, TruncatedFrameIsPeerLost) {
  auto [a, b] = socket_pair();
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1024, true);
  const std::uint32_t len = htole32(100);
  write_raw(a.get(), &len, 4);
  write_raw(a.get(), "only-a-part", 11);
  a.reset();  // the writer dies mid-message
  std::vector<std::byte> buf(1024);
  try {
    rx.receive(buf);
    FAIL() << "no exception";
  } catch (const PeerLost& e) {
    EXPECT_NE(std::string(e.what()).find("middle"), std::string::npos) << e.what();
  }
}

TEST(FramedStreamChannel, CleanCloseIsPeerLost) {
  auto [a, b] = socket_pair();
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1024, true);
  a.reset();
  std::vector<std::byte> buf(1024);
  EXPECT_THROW(rx.receive(buf), PeerLost);
}

TEST(FramedStreamChannel, SendToClosedPeerIsPeerLost) {
  auto [a, b] = socket_pair();
  FramedStreamChannel tx(std::move(a), posix::Fd(), 1024, true);
  b.reset();
  const auto msg = bytes(100, 1);
  EXPECT_THROW(tx.send(msg), PeerLost);
}

TEST(FramedStreamChannel, RejectsEmptyAndOversizedSends) {
  auto [a, b] = socket_pair();
  FramedStreamChannel tx(std::move(a), posix::Fd(), 16, true);
  EXPECT_THROW(tx.send({}), std::invalid_argument);
  EXPECT_THROW(tx.send(bytes(17, 0)), std::invalid_argument);
}

TEST(FramedStreamChannel, TryReceiveIsEmptyUntilAWholeMessageArrives) {
  auto [a, b] = socket_pair();
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1 << 20, true);
  std::vector<std::byte> buf(1 << 20);
  EXPECT_FALSE(rx.try_receive(buf).has_value());
  const std::uint32_t len = htole32(10);
  write_raw(a.get(), &len, 3);  // not even the whole length yet
  EXPECT_FALSE(rx.try_receive(buf).has_value());
  write_raw(a.get(), reinterpret_cast<const char*>(&len) + 3, 1);
  const auto body = bytes(10, 3);
  write_raw(a.get(), body.data(), 4);
  EXPECT_FALSE(rx.try_receive(buf).has_value());
  write_raw(a.get(), body.data() + 4, 6);
  const auto n = rx.try_receive(buf);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 10u);
  EXPECT_EQ(std::memcmp(buf.data(), body.data(), 10), 0);
}

// Non-blocking streaming of messages larger than the read buffer and the
// socket buffer: try_send keeps the unsent tail, try_receive assembles.
TEST(FramedStreamChannel, NonBlockingLargeMessagesArriveWhole) {
  auto [a, b] = socket_pair();
  FramedStreamChannel tx(std::move(a), posix::Fd(), 1 << 20, true);
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1 << 20, true);
  const std::vector<std::size_t> sizes = {300000, 5, 70000, 1 << 20, 64};
  // Both sides give up retrying at the deadline.
  const auto deadline = Clock::now() + kHang;
  std::string send_stuck;
  std::jthread sender([&] {  // joined on every way out
    // The last message (1 byte) flushes what try_send kept back.
    for (std::size_t i = 0; i <= sizes.size(); ++i) {
      const auto m = i < sizes.size() ? bytes(sizes[i], static_cast<int>(i)) : bytes(1, 99);
      while (!tx.try_send(m)) {
        if (Clock::now() > deadline) {
          send_stuck = "try_send refused message " + std::to_string(i) + " for " +
                       std::to_string(kHang.count()) + " s";
          return;
        }
        tx.wait_sendable(std::chrono::milliseconds(100));
      }
    }
  });
  std::vector<std::byte> buf(1 << 20);
  for (std::size_t i = 0; i <= sizes.size(); ++i) {
    std::optional<std::size_t> n;
    while (!(n = rx.try_receive(buf))) {
      ASSERT_TRUE(Clock::now() < deadline)
          << "message " << i << " did not arrive whole within " << kHang.count() << " s";
      rx.wait_receivable(std::chrono::milliseconds(100));
    }
    const std::size_t want = i < sizes.size() ? sizes[i] : 1;
    ASSERT_EQ(*n, want) << i;
    EXPECT_EQ(std::memcmp(buf.data(),
                          bytes(want, i < sizes.size() ? static_cast<int>(i) : 99).data(), want),
              0)
        << i;
  }
  sender.join();
  EXPECT_EQ(send_stuck, "");
}

TEST(FramedStreamChannel, WaitReceivableTimesOutWhenIdle) {
  auto [a, b] = socket_pair();
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1024, true);
  EXPECT_FALSE(rx.wait_receivable(std::chrono::milliseconds(20)));
}

}  // namespace
}  // namespace ipcbench
