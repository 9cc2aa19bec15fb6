// The open-loop schedule's arithmetic: exact, monotonic, no drift.
#include "bench/core/schedule.hpp"

#include <gtest/gtest.h>

namespace ipcbench {
namespace {

TEST(OpenLoopSchedule, FirstMessageIsDueAtTheStart) {
  OpenLoopSchedule s(12345, 1000);
  EXPECT_EQ(s.due_ns(0), 12345u);
}

TEST(OpenLoopSchedule, OneSecondOfMessagesSpansExactlyOneSecond) {
  for (std::uint64_t rate : {1ull, 3ull, 7ull, 1000ull, 20000ull, 999983ull, 10'000'000ull}) {
    OpenLoopSchedule s(5, rate);
    EXPECT_EQ(s.due_ns(rate), 5u + 1'000'000'000u) << rate;
    EXPECT_EQ(s.due_ns(10 * rate), 5u + 10'000'000'000u) << rate;
  }
}

TEST(OpenLoopSchedule, ThirdsRoundDown) {
  OpenLoopSchedule s(0, 3);
  EXPECT_EQ(s.due_ns(1), 333'333'333u);
  EXPECT_EQ(s.due_ns(2), 666'666'666u);
  EXPECT_EQ(s.due_ns(3), 1'000'000'000u);
}

TEST(OpenLoopSchedule, NoDriftAfterABillionMessages) {
  OpenLoopSchedule s(0, 20000);
  // 1e9 messages at 20k/s take exactly 50,000 s.
  EXPECT_EQ(s.due_ns(1'000'000'000u), 50'000'000'000'000u);
}

TEST(OpenLoopSchedule, IsMonotonicAndEvenlySpaced) {
  OpenLoopSchedule s(100, 7);
  std::uint64_t prev = s.due_ns(0);
  for (std::uint64_t i = 1; i < 10000; ++i) {
    const std::uint64_t d = s.due_ns(i);
    const std::uint64_t gap = d - prev;
    ASSERT_TRUE(gap == 142'857'142u || gap == 142'857'143u) << i << " gap " << gap;
    prev = d;
  }
}

TEST(OpenLoopSchedule, RejectsAZeroRate) {
  EXPECT_THROW(OpenLoopSchedule(0, 0), std::invalid_argument);
}

}  // namespace
}  // namespace ipcbench
