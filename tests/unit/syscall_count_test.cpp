// SyscallCounter against loops with a known number of system calls. Needs
// the permission to count the raw_syscalls tracepoint (root in CI); skipped
// with the reason elsewhere.
#include "bench/core/syscall_count.hpp"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace {

using ipcbench::SyscallCounter;

void calls(int n) {
  for (int i = 0; i < n; ++i) ::syscall(SYS_getppid);
}

// A thread that makes `n` calls when told, then waits (spinning: a futex
// would be a call of its own) until released.
class Caller {
 public:
  Caller(int n, bool not_measured)
      : thread_([this, n, not_measured] {
          if (not_measured) SyscallCounter::not_measured();
          ready_.store(true);
          while (!go_.load()) {
          }
          calls(n);
          done_.store(true);
          while (!release_.load()) {
          }
        }) {
    while (!ready_.load()) {
    }
  }
  void run() {
    go_.store(true);
    while (!done_.load()) {
    }
  }
  ~Caller() {
    release_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> ready_{false}, go_{false}, done_{false}, release_{false};
  std::thread thread_;
};

#define SKIP_IF_NOT_COUNTABLE()                      \
  if (!SyscallCounter::unavailable_reason().empty()) \
  GTEST_SKIP() << "system calls cannot be counted here: " << SyscallCounter::unavailable_reason()

TEST(SyscallCounter, CountsExactlyTheCallsOfALoop) {
  SKIP_IF_NOT_COUNTABLE();
  std::string why;
  auto counter = SyscallCounter::open(&why);
  ASSERT_NE(counter, nullptr) << why;
  EXPECT_EQ(counter->read(), 0u);  // opening and reading are not counted
  calls(1000);
  EXPECT_EQ(counter->read(), 1000u);
  calls(1);
  EXPECT_EQ(counter->read(), 1001u);  // one more call is seen, on any machine
}

TEST(SyscallCounter, CountsTheCallsOfTheProcesssOtherThreads) {
  SKIP_IF_NOT_COUNTABLE();
  Caller other(500, /*not_measured=*/false);
  std::string why;
  auto counter = SyscallCounter::open(&why);
  ASSERT_NE(counter, nullptr) << why;
  other.run();
  calls(20);
  EXPECT_EQ(counter->read(), 520u);
}

TEST(SyscallCounter, LeavesOutAThreadMarkedNotMeasured) {
  SKIP_IF_NOT_COUNTABLE();
  Caller watchdog(500, /*not_measured=*/true);
  std::string why;
  auto counter = SyscallCounter::open(&why);
  ASSERT_NE(counter, nullptr) << why;
  watchdog.run();
  calls(7);
  EXPECT_EQ(counter->read(), 7u);
}

}  // namespace
