// The length-prefix framing of byte-stream mechanisms, over a socketpair:
// whole messages out of a byte stream, and no trust in the length field.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <optional>
#include <cstring>
#include <thread>
#include <vector>

#include "ipcbench/errors.hpp"
#include "ipcbench/stream_framing.hpp"

namespace ipcbench {
namespace {

struct Pair {
  posix::Fd a, b;
};

Pair socket_pair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
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
  std::thread sender([&] {
    for (std::size_t i = 0; i < sizes.size(); ++i) tx.send(bytes(sizes[i], static_cast<int>(i)));
  });
  std::vector<std::byte> buf(1 << 20);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::size_t n = rx.receive(buf);
    ASSERT_EQ(n, sizes[i]);
    EXPECT_EQ(std::memcmp(buf.data(), bytes(n, static_cast<int>(i)).data(), n), 0) << i;
  }
  sender.join();
}

TEST(FramedStreamChannel, FrameSplitAcrossReadsIsReassembled) {
  auto [a, b] = socket_pair();
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1024, true);
  const std::uint32_t len = htole32(10);
  const auto body = bytes(10, 7);
  std::thread writer([fd = a.get(), &len, &body] {
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
  std::thread sender([&] {
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const auto m = bytes(sizes[i], static_cast<int>(i));
      while (!tx.try_send(m)) tx.wait_sendable(std::chrono::milliseconds(100));
    }
    // Flush what try_send kept back.
    while (!tx.try_send(bytes(1, 99))) tx.wait_sendable(std::chrono::milliseconds(100));
  });
  std::vector<std::byte> buf(1 << 20);
  for (std::size_t i = 0; i <= sizes.size(); ++i) {
    std::optional<std::size_t> n;
    while (!(n = rx.try_receive(buf))) rx.wait_receivable(std::chrono::milliseconds(100));
    const std::size_t want = i < sizes.size() ? sizes[i] : 1;
    ASSERT_EQ(*n, want) << i;
    EXPECT_EQ(std::memcmp(buf.data(), bytes(want, i < sizes.size() ? static_cast<int>(i) : 99).data(), want), 0) << i;
  }
  sender.join();
}

TEST(FramedStreamChannel, WaitReceivableTimesOutWhenIdle) {
  auto [a, b] = socket_pair();
  FramedStreamChannel rx(std::move(b), posix::Fd(), 1024, true);
  EXPECT_FALSE(rx.wait_receivable(std::chrono::milliseconds(20)));
}

}  // namespace
}  // namespace ipcbench
