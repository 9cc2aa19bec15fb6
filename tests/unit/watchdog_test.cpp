// The watchdog: the harness's only defence against a dead or hung peer, so
// each of its verdicts is checked against a real child process.
#include "bench/peer/watchdog.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"

namespace ipcbench {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// How long a call the watchdog should end may stay blocked before the test
// ends it itself and fails: a regression then fails with a message instead
// of hanging the binary (it also runs under TSan/ASan, straight from CI).
constexpr auto kHang = std::chrono::seconds(20);

struct Child {
  pid_t pid = -1;
  posix::Fd pidfd;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// Starts a child that sleeps for `ms` and exits.
void spawn_sleeper(Child& c, int ms) {
  c.pid = ::fork();
  if (c.pid == 0) {
    ::usleep(static_cast<useconds_t>(ms) * 1000);
    ::_exit(0);
  }
  c.pidfd = posix::Fd(static_cast<int>(::syscall(SYS_pidfd_open, c.pid, 0)));
}

// Blocks in read() on pipe `r`, the way a runner blocks on a peer; returns
// how it ended. Nobody writes to `w` unless the read is still blocked after
// kHang: then a byte ends it and the outcome says so.
std::string blocked_read(int r, int w) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread deadline([&] {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, kHang, [&] { return done; })) (void)!::write(w, "x", 1);
  });
  std::string outcome;
  try {
    char b;
    posix::retry_eintr([&] { return ::read(r, &b, 1); });
    outcome = "still blocked after " + std::to_string(kHang.count()) +
              " s: the watchdog never ended the read";
  } catch (const PeerLost& e) {
    outcome = e.what();
  }
  {
    std::lock_guard lock(m);
    done = true;
  }
  cv.notify_one();
  deadline.join();
  return outcome;
}

TEST(Watchdog, WakesABlockedCallWhenThePeerExits) {
  Watchdog wd(milliseconds(10'000));
  Child child;
  spawn_sleeper(child, 100);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  posix::Fd r(p[0]), w(p[1]);
  wd.arm(child.pid, child.pidfd.get());
  const auto start = Clock::now();
  const std::string outcome = blocked_read(r.get(), w.get());
  wd.disarm();
  EXPECT_EQ(outcome, "peer process exited unexpectedly");
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  posix::clear_interrupt();
}

TEST(Watchdog, KillsAPeerThatMakesNoProgress) {
  Watchdog wd(milliseconds(300));
  Child child;
  spawn_sleeper(child, 60'000);  // alive but silent: "hung"
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  posix::Fd r(p[0]), w(p[1]);
  wd.arm(child.pid, child.pidfd.get());
  const auto start = Clock::now();
  const std::string outcome = blocked_read(r.get(), w.get());
  wd.disarm();
  EXPECT_NE(outcome.find("stopped answering"), std::string::npos) << outcome;
  EXPECT_GE(Clock::now() - start, milliseconds(300));
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
  // Not killed by the watchdog: end it ourselves (not with its SIGKILL), or
  // waitpid waits out the minute the child sleeps.
  if (outcome.find("stopped answering") == std::string::npos) ::kill(child.pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
  child.pid = -1;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  posix::clear_interrupt();
}

// Progress every 20 ms for twice the timeout: the 880 ms of room between two
// bumps is for a sleep that oversleeps on a busy machine (at 300 ms, with
// 280 ms of room, a stalled VM could fail it).
TEST(Watchdog, ProgressKeepsAPeerAlive) {
  Watchdog wd(milliseconds(900));
  Child child;
  spawn_sleeper(child, 60'000);
  wd.arm(child.pid, child.pidfd.get());
  const auto end = Clock::now() + milliseconds(1800);
  while (Clock::now() < end) {
    wd.progress().fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(milliseconds(20));
  }
  wd.disarm();
  EXPECT_FALSE(posix::interrupt_flag().load());
  EXPECT_EQ(::kill(child.pid, 0), 0) << "the watchdog killed a peer that was making progress";
}

// A case armed right after the previous one was disarmed (within one of the
// watchdog's ticks) gets its own --timeout: the clock of the case before
// must not carry over and fail it at once.
//
// Each armed span leaves 300 ms (a third of the timeout) for a sleep that
// oversleeps on a busy machine, plus the loop's 50 ms tick; together they are
// 1200 ms, so a clock carried over from the first arm fires (at ~900-950 ms)
// inside the second span.
TEST(Watchdog, RearmingRestartsTheNoProgressClock) {
  Watchdog wd(milliseconds(900));
  Child first, second;
  spawn_sleeper(first, 60'000);
  spawn_sleeper(second, 60'000);
  wd.arm(first.pid, first.pidfd.get());
  std::this_thread::sleep_for(milliseconds(600));  // no progress, within the timeout
  wd.disarm();
  wd.arm(second.pid, second.pidfd.get());          // at once: the loop never sees it disarmed
  std::this_thread::sleep_for(milliseconds(600));  // 1200 ms since the first arm
  wd.disarm();
  EXPECT_FALSE(posix::interrupt_flag().load()) << posix::interrupt_reason();
  EXPECT_EQ(::kill(second.pid, 0), 0) << "the watchdog killed a peer armed 600 ms before";
  posix::clear_interrupt();
}

// A thread stuck where no signal reaches (a lock held by a dead peer) must
// not hang the run: after the grace period the stuck handler is called.
TEST(Watchdog, CallsTheStuckHandlerWhenTheRunnerCannotBeWoken) {
  Watchdog wd(milliseconds(10'000));
  std::atomic<bool> called{false};
  std::atomic<bool> gave_up{false};
  std::string reason;
  std::timed_mutex held;
  held.lock();  // the "dead peer" holds it forever
  wd.set_stuck_handler([&](const std::string& r) {
    reason = r;
    called = true;
    held.unlock();  // a real handler ends the process; here we let the thread go
  });
  Child child;
  spawn_sleeper(child, 50);
  const auto start = Clock::now();
  std::thread runner([&] {
    wd.arm(child.pid, child.pidfd.get());
    // A pthread mutex lock, timed or not, is not interrupted by signals; the
    // time limit only turns a handler that is never called into a failure.
    if (!held.try_lock_for(Watchdog::kStuckGrace + kHang)) {
      gave_up = true;
      return;
    }
    held.unlock();
  });
  runner.join();
  wd.disarm();
  if (gave_up) held.unlock();  // still ours: the handler never ran
  EXPECT_FALSE(gave_up.load()) << "the runner was still blocked "
                               << std::chrono::seconds(Watchdog::kStuckGrace + kHang).count()
                               << " s after arming: the stuck handler was never called";
  EXPECT_TRUE(called.load());
  EXPECT_EQ(reason, "peer process exited unexpectedly");
  EXPECT_GE(Clock::now() - start, Watchdog::kStuckGrace);
  posix::clear_interrupt();
}

}  // namespace
}  // namespace ipcbench
