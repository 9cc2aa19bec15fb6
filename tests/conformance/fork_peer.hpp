// Forked peers for the conformance suites (channel_conformance_test.cpp and
// async_conformance_test.cpp): each test listens in this process and forks a
// peer, without exec, that connects and runs the test's job. This header
// holds what both suites need around that fork: a child that closes what
// exec would close and reports a failure through a pipe and its exit status,
// a fork that waits until forking is safe, reaping with a deadline, and the
// test's own deadline (SIGALRM) that turns a hung call into a failure.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/registry.hpp"

namespace ipcbench::conformance {

// The peer's own alarm (default action: it dies), so no peer outlives a
// hung test by more than this.
inline constexpr unsigned kPeerAlarmSeconds = 60;
// After the test's deadline has interrupted blocking calls, how long a call
// may ignore the interrupt before the process gives up.
inline constexpr unsigned kDeadlineGraceSeconds = 5;
// Longest report a peer sends back (the rest is cut).
inline constexpr std::size_t kReportLimit = 4000;

// The child closes what exec would close: every close-on-exec descriptor
// except those in `keep` (inherited pipe ends, its report pipe). Throws
// std::system_error if it cannot list its descriptors.
inline void close_like_exec(const std::vector<int>& keep) {
  std::vector<int> open;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) posix::throw_errno("cannot list /proc/self/fd");
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    if (std::isdigit(static_cast<unsigned char>(entry->d_name[0])) == 0) continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own) open.push_back(fd);
  }
  ::closedir(dir);
  for (const int fd : open) {
    if (std::find(keep.begin(), keep.end(), fd) != keep.end()) continue;
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) != 0) ::close(fd);
  }
}

// The forked child: arms its own alarm, closes what exec would close (but
// `keep` and `report_fd`), runs `body`, and exits 0, or 1 after writing what
// `body` threw (at most kReportLimit bytes) to `report_fd`. Never returns.
[[noreturn]] inline void run_child(std::vector<int> keep, int report_fd,
                                   const std::function<void()>& body) {
  ::signal(SIGALRM, SIG_DFL);
  ::alarm(kPeerAlarmSeconds);
  posix::clear_interrupt();
  keep.push_back(report_fd);
  int code = 0;
  std::string report;
  try {
    close_like_exec(keep);
    body();
  } catch (const std::exception& e) {
    report = e.what();
    code = 1;
  } catch (...) {
    report = "unknown exception";
    code = 1;
  }
  if (!report.empty()) {
    report.resize(std::min(report.size(), kReportLimit));
    (void)!::write(report_fd, report.data(), report.size());
  }
  ::_exit(code);
}

// fork() copies only the calling thread, so a lock another thread holds at
// that moment stays locked in the child for good. glibc takes its own locks
// (malloc, the thread-stack cache) around fork; the sanitizer runtimes of
// GCC 12 do not. Under ASan, a ZeroMQ context's I/O and reaper threads are
// still starting when listen() returns, and a starting thread holds a lock of
// ASan's allocator (AsanThread::Init -> pthread_getattr_np -> calloc); a child
// forked then blocks on that lock as soon as its own context starts its
// threads, so it never connects (seen as zmq-ipc's accept timing out,
// intermittently and only under ASan). A thread that holds such a lock is
// running or runnable, never asleep in the kernel, so fork only once every
// other thread of this process is sleeping (state S), seen twice in a row.
// Throws std::runtime_error if they stay busy for 5 s.
inline void wait_until_other_threads_sleep() {
  using Clock = std::chrono::steady_clock;
  const auto self = std::to_string(::gettid());
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  std::string busy;
  for (int quiet_rounds = 0; quiet_rounds < 2;) {
    busy.clear();
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string tid = it->path().filename().string();
      if (tid == self) continue;
      std::ifstream in(it->path() / "stat");
      std::string stat;
      std::getline(in, stat);
      const auto paren = stat.rfind(')');
      if (paren == std::string::npos || paren + 2 >= stat.size()) continue;  // gone meanwhile
      const char state = stat[paren + 2];
      if (state != 'S') busy += " thread " + tid + " in state " + state;
    }
    if (!busy.empty()) {
      quiet_rounds = 0;
      if (Clock::now() > deadline) {
        throw std::runtime_error("cannot fork the peer safely: other threads stayed busy:" + busy);
      }
    } else {
      ++quiet_rounds;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// "exited with status N", "was killed by signal N (name)", ...
inline std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           ::strsignal(WTERMSIG(status)) + ")";
  }
  return "ended with wait status " + std::to_string(status);
}

// State of the deadline's signal handler (one test runs at a time).
inline volatile sig_atomic_t g_deadline_hits = 0;
inline char g_deadline_program[64] = "";
inline char g_current_test[256] = "";  // for the last words of the handler

// The first SIGALRM interrupts blocking calls (they throw PeerLost); the
// second, kDeadlineGraceSeconds later, ends the process with status 3.
inline void on_deadline(int) {
  if (g_deadline_hits == 0) {
    g_deadline_hits = 1;
    posix::request_interrupt("the test's deadline passed (a blocking call hung)");
    ::alarm(kDeadlineGraceSeconds);
    return;
  }
  static const char kMessage[] = ": a blocking call ignored the deadline interrupt; giving up in ";
  (void)!::write(STDERR_FILENO, g_deadline_program, std::strlen(g_deadline_program));
  (void)!::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  (void)!::write(STDERR_FILENO, g_current_test, std::strlen(g_current_test));
  (void)!::write(STDERR_FILENO, "\n", 1);
  ::_exit(3);
}

// The running test's deadline. arm() from SetUp, disarm() from TearDown; a
// test may call ::alarm() again to move it.
class TestDeadline {
 public:
  // Installs on_deadline for SIGALRM (no SA_RESTART: a blocking call must
  // see EINTR), names `program` and the current test in its last words,
  // clears any earlier interrupt and fires in `seconds`.
  void arm(const char* program, unsigned seconds) {
    struct sigaction action {};
    action.sa_handler = on_deadline;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    ::sigaction(SIGALRM, &action, &saved_);
    g_deadline_hits = 0;
    std::snprintf(g_deadline_program, sizeof g_deadline_program, "%s", program);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::snprintf(g_current_test, sizeof g_current_test, "%s.%s", info->test_suite_name(),
                  info->name());
    posix::clear_interrupt();
    ::alarm(seconds);
  }
  // Cancels the alarm, restores the previous handler, clears the interrupt.
  void disarm() {
    ::alarm(0);
    ::sigaction(SIGALRM, &saved_, nullptr);
    posix::clear_interrupt();
  }

 private:
  struct sigaction saved_ {};
};

// The one peer a test forks at a time: its pid and the read end of its
// report pipe.
class ForkedPeer {
 public:
  // Forks a child running `body` (see run_child); it keeps `keep` open and
  // closes every other close-on-exec descriptor, as exec would. Forks only
  // once the other threads sleep. Throws std::logic_error if a peer is
  // already running, std::system_error if the pipe or fork fails.
  void spawn(const std::vector<int>& keep, const std::function<void()>& body) {
    if (pid_ > 0) throw std::logic_error("a peer is already running");
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) posix::throw_errno("cannot create a report pipe");
    posix::Fd read_end(report[0]);
    posix::Fd write_end(report[1]);
    wait_until_other_threads_sleep();
    const pid_t pid = ::fork();
    if (pid < 0) posix::throw_errno("fork failed");
    if (pid == 0) run_child(keep, write_end.get(), body);
    pid_ = pid;
    report_ = std::move(read_end);
  }

  bool running() const noexcept { return pid_ > 0; }
  pid_t pid() const noexcept { return pid_; }

  // Waits for the peer, SIGKILLing it after `timeout`; success if it exited
  // 0 on its own, otherwise how it ended and its report.
  ::testing::AssertionResult reap(std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    if (pid_ <= 0) return ::testing::AssertionFailure() << "no peer was started";
    const pid_t pid = std::exchange(pid_, -1);
    const auto deadline = Clock::now() + timeout;
    int status = 0;
    bool killed = false;
    for (;;) {
      const pid_t r = ::waitpid(pid, &status, killed ? 0 : WNOHANG);
      if (r == pid) break;
      if (r < 0 && errno != EINTR) {
        return ::testing::AssertionFailure() << "waitpid failed: " << std::strerror(errno);
      }
      if (!killed && Clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        killed = true;
        continue;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const std::string report = read_report();
    if (!killed && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      return ::testing::AssertionSuccess();
    }
    auto failure = ::testing::AssertionFailure() << "peer ";
    if (killed) failure << "did not exit within " << timeout.count() << " ms and ";
    failure << describe_status(status);
    if (!report.empty()) failure << ": " << report;
    return failure;
  }

 private:
  std::string read_report() {
    std::string text;
    char buf[1024];
    for (;;) {
      const ssize_t n = ::read(report_.get(), buf, sizeof buf);
      if (n > 0) {
        text.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        break;
      }
    }
    report_.reset();
    return text;
  }

  pid_t pid_ = -1;
  posix::Fd report_;
};

// Base of the suites' fixtures, parameterised by a mechanism's name: SetUp
// finds the mechanism, makes a private run directory (mode 0700) and arms
// the test's deadline. Each suite's TearDown reaps its peer its own way,
// then calls deadline_.disarm() and removes run_dir_.
class MechanismTest : public ::testing::TestWithParam<std::string> {
 protected:
  // `program` names the binary in the deadline's last words; run
  // directories are `dir_prefix` + "XXXXXX"; the deadline fires after
  // `deadline_seconds`.
  MechanismTest(const char* program, const char* dir_prefix, unsigned deadline_seconds)
      : program_(program), dir_prefix_(dir_prefix), deadline_seconds_(deadline_seconds) {}

  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    mech_ = find_mechanism(GetParam());
    ASSERT_NE(mech_, nullptr) << "no mechanism named " << GetParam();
    caps_ = mech_->capabilities();
    if (const std::string reason = mech_->unavailable_reason(); !reason.empty()) {
      GTEST_SKIP() << GetParam() << " is unavailable here: " << reason;
    }
    std::string dir = std::string(dir_prefix_) + "XXXXXX";
    ASSERT_NE(::mkdtemp(dir.data()), nullptr) << std::strerror(errno);
    run_dir_ = dir;
    deadline_.arm(program_, deadline_seconds_);
  }

  Mechanism* mech_ = nullptr;
  Capabilities caps_;
  std::string run_dir_;
  ForkedPeer peer_;
  TestDeadline deadline_;

 private:
  const char* program_;
  const char* dir_prefix_;
  unsigned deadline_seconds_;
};

}  // namespace ipcbench::conformance
