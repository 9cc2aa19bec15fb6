#include "bench/peer/watchdog.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <cstring>

#include "bench/core/syscall_count.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/retry.hpp"

namespace ipcbench {
namespace {

// Rare enough not to disturb the measured CPUs, frequent enough that a dead
// peer fails its case promptly.
constexpr auto kTick = std::chrono::milliseconds(50);

void on_wakeup(int) {}

bool process_exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

void install_wakeup_handler() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_wakeup;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls must return EINTR
  sigaction(SIGUSR1, &sa, nullptr);
}

Watchdog::Watchdog(std::chrono::milliseconds timeout) : timeout_(timeout) {
  install_wakeup_handler();
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  thread_ = std::thread([this] { loop(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::arm(pid_t pid, int pidfd, Channel* channel) {
  std::lock_guard lock(mutex_);
  // A stop signal that came before arming must not be forgotten.
  if (posix::stop_signal() == 0) posix::clear_interrupt();
  armed_ = true;
  rearmed_ = true;
  fired_ = false;
  pid_ = pid;
  pidfd_ = pidfd;
  channel_ = channel;
  release_tried_ = false;
  runner_ = pthread_self();
}

void Watchdog::disarm() {
  std::lock_guard lock(mutex_);
  armed_ = false;
  pidfd_ = -1;
  pid_ = -1;
  channel_ = nullptr;
}

void Watchdog::fire(const char* reason) {
  if (!fired_) {
    posix::request_interrupt(reason);
    fired_at_ = std::chrono::steady_clock::now();
    fired_reason_ = reason;
  }
  fired_ = true;
  // Repeated every tick until disarmed: a signal that lands just before the
  // runner enters its blocking call would otherwise be lost.
  pthread_kill(runner_, SIGUSR1);
}

void Watchdog::kill_peer() noexcept {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
  } else if (pidfd_ >= 0) {
    ::shutdown(pidfd_, SHUT_RDWR);  // across hosts: the server ends its peer
  }
}

void Watchdog::loop() {
  SyscallCounter::not_measured();  // its ticks are not the mechanism's calls
  std::unique_lock lock(mutex_);
  std::uint64_t last_progress = 0;
  auto last_change = std::chrono::steady_clock::now();
  while (!stop_) {
    cv_.wait_for(lock, kTick);
    if (stop_) break;
    const auto now = std::chrono::steady_clock::now();
    // A case armed right after another was disarmed must not inherit its
    // no-progress clock (it would fail at once after a timed-out case).
    if (!armed_ || rearmed_) {
      last_change = now;
      last_progress = progress_.load(std::memory_order_relaxed);
      rearmed_ = false;
      if (!armed_) continue;
    }
    if (!fired_ && posix::stop_signal() != 0) {
      // Ctrl-C / SIGTERM. A wake-up signal alone may never stop the runner:
      // a throughput sender whose peer keeps up never blocks, so its calls
      // never fail with EINTR. Ending the peer makes the next call fail.
      kill_peer();
      fire("interrupted by a signal");
      continue;
    }
    if (fired_) {
      // A dead peer may have left a lock held that the runner now waits on
      // (no signal ends that wait). The channel cannot go away meanwhile:
      // disarm() takes mutex_ first.
      if (channel_ != nullptr && !release_tried_ && pid_ > 0 && now - fired_at_ > kReleaseGrace &&
          process_exited(pidfd_)) {
        release_tried_ = true;
        channel_->release_locks_of_dead_peer();
      }
      if (stuck_handler_ && now - fired_at_ > kStuckGrace) {
        stuck_handler_(fired_reason_);  // does not return
      }
      fire(nullptr);
      continue;
    }
    const std::uint64_t p = progress_.load(std::memory_order_relaxed);
    if (p != last_progress) {
      last_progress = p;
      last_change = now;
    }
    if (process_exited(pidfd_)) {
      fire(pid_ > 0
               ? "peer process exited unexpectedly"
               : "the server reported the remote peer's end, or closed the control connection");
    } else if (now - last_change > timeout_) {
      // Say why before killing: the kill makes the runner's blocked call see
      // end-of-file at once, and the case must report the timeout.
      fire("peer stopped answering (no progress within --timeout); killed it");
      kill_peer();
    }
  }
}

}  // namespace ipcbench
