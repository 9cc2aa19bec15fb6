// posix::RingQueue: first in, first out across wrap-arounds and growth, and
// no allocation once it has grown to the longest the queue gets.
#include "mechanisms/posix/ring_queue.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <random>

namespace ipcbench::posix {
namespace {

TEST(RingQueue, KeepsOrderAcrossWrapAroundAndGrowth) {
  RingQueue<int> q(4);
  std::deque<int> model;
  std::mt19937 rng(7);
  int next = 0;
  for (int step = 0; step < 20000; ++step) {
    // Pushes win slightly more often, so the queue wraps and grows.
    if (model.empty() || rng() % 100 < 52) {
      q.push_back(next);
      model.push_back(next++);
    } else {
      ASSERT_EQ(q.front(), model.front());
      ASSERT_EQ(q.pop_front(), model.front());
      model.pop_front();
    }
    ASSERT_EQ(q.size(), model.size());
    if (!model.empty()) {
      ASSERT_EQ(q.back(), model.back());
      ASSERT_EQ(q[model.size() / 2], model[model.size() / 2]);
    }
  }
  EXPECT_GE(q.capacity(), model.size());
}

TEST(RingQueue, StopsGrowingOnceItHoldsTheLongestRun) {
  RingQueue<int> q(2);
  for (int i = 0; i < 5; ++i) q.push_back(i);  // grows 2 -> 4 -> 8
  const std::size_t grown = q.capacity();
  EXPECT_EQ(grown, 8u);
  for (int round = 0; round < 1000; ++round) {  // at most 5 queued, moving along
    q.push_back(round);
    (void)q.pop_front();
  }
  EXPECT_EQ(q.capacity(), grown);
  EXPECT_EQ(q.size(), 5u);
}

TEST(RingQueue, PopReleasesWhatTheElementOwnedAndClearEmpties) {
  RingQueue<std::shared_ptr<int>> q(2);
  const auto p = std::make_shared<int>(5);
  q.push_back(p);
  q.push_back(std::make_shared<int>(6));
  EXPECT_EQ(p.use_count(), 2);
  EXPECT_EQ(*q.pop_front(), 5);
  EXPECT_EQ(p.use_count(), 1) << "the popped slot still holds the element";
  EXPECT_EQ(*q.front(), 6);
  q.push_back(p);
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(p.use_count(), 1) << "clear kept an element alive";
  q.push_back(std::make_shared<int>(7));
  EXPECT_EQ(*q.pop_front(), 7);
}

}  // namespace
}  // namespace ipcbench::posix
