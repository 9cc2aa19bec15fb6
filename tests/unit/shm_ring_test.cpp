// The shared-memory SPSC ring: exact messages, wrap-around, line-aligned
// layout, the in-flight limit, and no stale data ever mistaken for a message.
// GCC 12 inlines the ring's copies into these small fixed-size tests and
// warns (falsely) about lengths the tests never use: a length read from the
// ring could be anything as far as it can tell.
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Wstringop-overread"
#include "mechanisms/channels/shm_ring.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace ipcbench::shm {
namespace {

struct Ring {
  explicit Ring(std::size_t capacity) : data(capacity, std::byte{0}) {
    control.capacity = capacity;
  }
  RingControl control;
  std::vector<std::byte> data;
};

// Fill loops stop here: a ring that never refused would otherwise spin
// forever (far above what any ring in these tests can hold).
constexpr std::size_t kMaxPushes = 10'000;

std::vector<std::byte> filled(std::size_t n, std::uint32_t word) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i + 4 <= n; i += 4) std::memcpy(v.data() + i, &word, 4);
  return v;
}

// Old payload bytes can hold any value. Only the published count says a
// message is there, so bytes left from an earlier lap (or scribbled into the
// data area) are never read as a message.
TEST(ShmRing, StaleOrScribbledDataIsNeverMistakenForAMessage) {
  constexpr std::size_t kCap = 512;
  Ring ring(kCap);
  RingProducer p(&ring.control, ring.data.data());
  RingConsumer c(&ring.control, ring.data.data());
  std::vector<std::byte> out(kCap);
  for (std::uint32_t i = 1; i <= 40; ++i) {  // many laps of the 512-byte area
    ASSERT_TRUE(p.try_push(filled(100, i)));
    ASSERT_TRUE(c.ready());
    EXPECT_EQ(c.pop(out), 100u);
  }
  EXPECT_FALSE(c.ready());
  std::memset(ring.data.data(), 0x41, kCap);  // any bytes at all
  EXPECT_FALSE(c.ready()) << "the consumer saw a message that was never sent";
  ASSERT_TRUE(p.try_push(filled(8, 99)));
  ASSERT_TRUE(c.ready());
  EXPECT_EQ(c.pop(out), 8u);
  EXPECT_EQ(out[0], filled(8, 99)[0]);
}

// A message starts on a 128-byte boundary (a pair of lines, the unit the
// adjacent-line prefetcher fetches) and takes whole pairs.
TEST(ShmRing, MessagesStartOnTheirOwnPairOfCacheLines) {
  Ring ring(4096);
  RingProducer p(&ring.control, ring.data.data());
  ASSERT_TRUE(p.try_push(filled(64, 1)));
  ASSERT_TRUE(p.try_push(filled(129, 2)));
  ASSERT_TRUE(p.try_push(filled(4, 3)));
  std::uint32_t w = 0;
  std::memcpy(&w, ring.data.data() + 0, 4);
  EXPECT_EQ(w, 1u);
  std::memcpy(&w, ring.data.data() + 128, 4);
  EXPECT_EQ(w, 2u);
  std::memcpy(&w, ring.data.data() + 384, 4);  // 129 bytes took two pairs
  EXPECT_EQ(w, 3u);
}

TEST(ShmRing, AtMostKSlotsMessagesAreInFlight) {
  Ring ring(1 << 16);
  RingProducer p(&ring.control, ring.data.data());
  RingConsumer c(&ring.control, ring.data.data());
  const auto msg = filled(16, 5);
  std::size_t pushed = 0;
  while (pushed < kMaxPushes && p.try_push(msg)) ++pushed;
  EXPECT_EQ(pushed, kSlots) << "the lengths of all messages in flight share one line";
  std::vector<std::byte> out(64);
  ASSERT_TRUE(c.ready());
  c.pop(out);
  EXPECT_TRUE(p.try_push(msg));
  EXPECT_FALSE(p.try_push(msg));
}

TEST(ShmRing, RefusesWhatDoesNotFitAndAcceptsAgainAfterAPop) {
  Ring ring(1024);
  RingProducer p(&ring.control, ring.data.data());
  RingConsumer c(&ring.control, ring.data.data());
  const auto msg = filled(200, 7);
  std::size_t pushed = 0;
  while (pushed < kMaxPushes && p.try_push(msg)) ++pushed;
  EXPECT_EQ(pushed, 4u) << "200 bytes take 256 of the 1024";
  EXPECT_FALSE(p.has_room(200));
  std::vector<std::byte> out(1024);
  ASSERT_TRUE(c.ready());
  EXPECT_EQ(c.pop(out), 200u);
  EXPECT_TRUE(p.has_room(200));
  EXPECT_TRUE(p.try_push(msg));
}

// Two threads, messages of many sizes across many laps: every message
// arrives once, whole, in order.
TEST(ShmRing, ConcurrentProducerAndConsumerKeepEveryMessageIntact) {
  constexpr std::size_t kCap = 4096;
  constexpr int kMessages = 30000;
  Ring ring(kCap);
  RingProducer p(&ring.control, ring.data.data());
  RingConsumer c(&ring.control, ring.data.data());
  const auto size_of = [](int i) { return 1 + (static_cast<std::size_t>(i) * 7919) % 1500; };
  // A ring that loses a message (or never frees room) leaves a side spinning
  // forever: each gives up at the deadline and the test says where. Far
  // above what the test takes under TSan on a busy machine (well under a
  // second), and below ctest's 60 s timeout, so the message is seen.
  constexpr auto kLimit = std::chrono::seconds(30);
  const auto deadline = std::chrono::steady_clock::now() + kLimit;
  std::atomic<bool> consumer_done{false};
  int producer_stuck_at = -1;
  std::thread producer([&] {
    std::vector<std::byte> m(2048);
    for (int i = 0; i < kMessages; ++i) {
      const std::size_t n = size_of(i);
      for (std::size_t k = 0; k < n; ++k) m[k] = static_cast<std::byte>((i + k) & 0xff);
      while (!p.try_push({m.data(), n})) {
        if (consumer_done.load()) return;  // it stopped early, having failed
        if (std::chrono::steady_clock::now() > deadline) {
          producer_stuck_at = i;
          return;
        }
        std::this_thread::yield();
      }
    }
  });
  std::vector<std::byte> out(2048);
  int bad = -1;      // the first message that arrived wrong
  int missing = -1;  // the first message that never arrived
  for (int i = 0; i < kMessages && bad < 0 && missing < 0; ++i) {
    while (!c.ready()) {
      if (std::chrono::steady_clock::now() > deadline) {
        missing = i;
        break;
      }
      std::this_thread::yield();
    }
    if (missing >= 0) break;
    const std::size_t n = c.pop(out);
    if (n != size_of(i)) bad = i;
    for (std::size_t k = 0; k < n && bad < 0; ++k) {
      if (out[k] != static_cast<std::byte>((i + k) & 0xff)) bad = i;
    }
  }
  consumer_done = true;
  producer.join();
  EXPECT_EQ(bad, -1) << "message " << bad << " arrived wrong";
  EXPECT_EQ(missing, -1) << "message " << missing << " never arrived (waited " << kLimit.count()
                         << " s)";
  EXPECT_EQ(producer_stuck_at, -1)
      << "no room for message " << producer_stuck_at << " for " << kLimit.count() << " s";
}

}  // namespace
}  // namespace ipcbench::shm
