// The watchdog: notices a peer that died or stopped answering, without the
// hot path paying a syscall for it.
//
// While armed, a background thread checks every few tens of ms whether the
// peer process has exited (pidfd) and whether the runner made progress (a
// counter the patterns bump with a relaxed store). On a dead peer it wakes the
// runner thread (a no-op signal makes its blocking call fail with EINTR, and
// the retry helper then throws PeerLost). On a hung peer it kills the peer
// after `timeout` without progress, which wakes the runner the same way.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ipcbench {

class Channel;

class Watchdog {
 public:
  // Starts the watchdog thread (with SIGINT/SIGTERM blocked, so those reach
  // the runner thread). `timeout` is the longest a case may go without
  // progress.
  explicit Watchdog(std::chrono::milliseconds timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Watches peer `pid` (through `pidfd`) on behalf of the calling thread.
  // Across hosts there is no local peer process: `pid` is -1 and `pidfd` is
  // the control connection to `ipcbench serve`, which becomes readable when
  // the server reports the peer's end or goes away; "killing" the peer then
  // means shutting that connection down (the server kills its peer).
  // `channel`, if given, is the case's channel: once the peer is dead and
  // the runner has not come back kReleaseGrace after the watchdog fired, the
  // watchdog asks it to release what the dead peer held
  // (Channel::release_locks_of_dead_peer). It must outlive the armed span.
  void arm(pid_t pid, int pidfd, Channel* channel = nullptr);
  // Stops watching. Call from the thread that armed it.
  void disarm();

  // Arms the watchdog for a scope; disarms on every way out, exceptions
  // included.
  class Armed {
   public:
    Armed(Watchdog& w, pid_t pid, int pidfd, Channel* channel = nullptr) : w_(w) {
      w_.arm(pid, pidfd, channel);
    }
    ~Armed() { w_.disarm(); }
    Armed(const Armed&) = delete;
    Armed& operator=(const Armed&) = delete;

   private:
    Watchdog& w_;
  };

  // Bumped by the patterns once per message or round trip.
  std::atomic<std::uint64_t>& progress() noexcept { return progress_; }

  std::chrono::milliseconds timeout() const noexcept { return timeout_; }

  // Called from the watchdog thread when the runner thread is still armed
  // kStuckGrace after the watchdog fired: it is blocked somewhere a signal
  // cannot reach (e.g. a lock held by a peer that died; Boost's
  // message_queue locks are not robust). The handler must end the process.
  void set_stuck_handler(std::function<void(const std::string& reason)> handler) {
    stuck_handler_ = std::move(handler);
  }
  static constexpr auto kStuckGrace = std::chrono::seconds(5);
  // Every interruptible wait ends within ~20 ms of the interrupt: a runner
  // still armed this long after a dead peer's verdict is blocked.
  static constexpr auto kReleaseGrace = std::chrono::milliseconds(250);

 private:
  void loop();
  void fire(const char* reason);
  void kill_peer() noexcept;

  const std::chrono::milliseconds timeout_;
  // alignas: the runner writes this on every message; keep the watchdog's
  // other state off its cache line.
  alignas(64) std::atomic<std::uint64_t> progress_{0};
  alignas(64) std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool armed_ = false;
  bool rearmed_ = false;  // armed since the loop last looked: restart the no-progress clock
  bool fired_ = false;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  Channel* channel_ = nullptr;
  bool release_tried_ = false;
  pthread_t runner_{};
  std::chrono::steady_clock::time_point fired_at_{};
  std::string fired_reason_;
  std::function<void(const std::string&)> stuck_handler_;
  std::thread thread_;
};

// Installs the no-op SIGUSR1 handler (without SA_RESTART) the watchdog uses to
// interrupt blocking calls. Idempotent.
void install_wakeup_handler();

}  // namespace ipcbench
