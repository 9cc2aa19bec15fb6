// The shared-memory SPSC ring: exact records, wrap-around, and no stale
// commit word ever mistaken for a new message.
#include "ipcbench/shm_ring.hpp"

#include <gtest/gtest.h>

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

std::vector<std::byte> filled(std::size_t n, std::uint32_t word) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i + 4 <= n; i += 4) std::memcpy(v.data() + i, &word, 4);
  return v;
}

// Old payload bytes can hold any value, including the next expected commit
// number. The producer must clear the next record's commit word, or the
// consumer reads a message that was never sent.
TEST(ShmRing, StalePayloadIsNeverMistakenForACommit) {
  constexpr std::size_t kCap = 512;
  Ring ring(kCap);
  RingProducer p(&ring.control, ring.data.data());
  RingConsumer c(&ring.control, ring.data.data());
  std::vector<std::byte> out(kCap);
  // Lap 1: a long record whose payload is full of 4s (the commit number the
  // consumer will expect for message 4).
  ASSERT_TRUE(p.try_push(filled(400, 4)));
  ASSERT_TRUE(c.ready());
  EXPECT_EQ(c.pop(out), 400u);
  // Message 2 ends exactly at the end of the ring, so message 3 starts at
  // offset 0 and message 4's header would sit at offset 16: inside the old
  // payload.
  ASSERT_TRUE(p.try_push(filled(kCap - 408 - kRecordHeader, 2)));
  ASSERT_TRUE(c.ready());
  c.pop(out);
  ASSERT_TRUE(p.try_push(filled(8, 3)));
  ASSERT_TRUE(c.ready());
  EXPECT_EQ(c.pop(out), 8u);
  EXPECT_FALSE(c.ready()) << "the consumer saw message 4 before it was sent";
}

TEST(ShmRing, RefusesWhatDoesNotFitAndAcceptsAgainAfterAPop) {
  Ring ring(1024);
  RingProducer p(&ring.control, ring.data.data());
  RingConsumer c(&ring.control, ring.data.data());
  const auto msg = filled(200, 7);
  int pushed = 0;
  while (p.try_push(msg)) ++pushed;
  EXPECT_GE(pushed, 4);
  EXPECT_FALSE(p.try_push(msg));
  std::vector<std::byte> out(1024);
  ASSERT_TRUE(c.ready());
  c.pop(out);
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
  std::thread producer([&] {
    std::vector<std::byte> m(2048);
    for (int i = 0; i < kMessages; ++i) {
      const std::size_t n = size_of(i);
      for (std::size_t k = 0; k < n; ++k) m[k] = static_cast<std::byte>((i + k) & 0xff);
      while (!p.try_push({m.data(), n})) std::this_thread::yield();
    }
  });
  std::vector<std::byte> out(2048);
  int bad = 0;
  for (int i = 0; i < kMessages && bad == 0; ++i) {
    while (!c.ready()) std::this_thread::yield();
    const std::size_t n = c.pop(out);
    if (n != size_of(i)) ++bad;
    for (std::size_t k = 0; k < n && bad == 0; ++k) {
      if (out[k] != static_cast<std::byte>((i + k) & 0xff)) ++bad;
    }
    ASSERT_EQ(bad, 0) << "message " << i;
  }
  producer.join();
}

}  // namespace
}  // namespace ipcbench::shm
