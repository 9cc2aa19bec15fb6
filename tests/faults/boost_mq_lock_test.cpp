// boost-mq and a peer that dies holding a queue's mutex (Boost 1.74's mutex
// is not robust): a call blocked on that mutex stays blocked until
// Channel::release_locks_of_dead_peer() releases it, then it and every later
// call throw PeerLost naming the lock. With nothing held, or a live peer,
// the release does nothing and the channel goes on working.
//
// Two things make these tests deterministic:
// - The peer acts only after a handshake: it connects, then waits for the
//   listener's "accepted" byte before it takes a lock or dies. (Before, it
//   could die holding the .up queue's mutex while the listener's accept()
//   was still receiving the hello on that queue: 3 runs in 30 hung.)
// - Each test body runs in a forked child with a deadline. A call blocked on
//   a dead process's mutex cannot be interrupted, so a regression ends as a
//   failure naming the last step reached, not as ctest's timeout; the
//   parent then kills the child's process group and removes its queues.
#include "boost_mq_lock.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/registry.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ipcbench::Channel;
using ipcbench::Endpoint;
using ipcbench::Mechanism;

constexpr std::size_t kMax = 64;

// What a test body running in the child reports: steps reached and failures,
// one line each, to the parent through a pipe.
class Report {
 public:
  explicit Report(int fd) : fd_(fd) {}
  void step(const std::string& what) { line("step: " + what); }
  void fail(const std::string& what) {
    failed_ = true;
    line("FAIL: " + what);
  }
  void check(bool ok, const std::string& what) {
    if (!ok) fail(what);
  }
  // For a failure while a thread may still be blocked on the lock: it uses
  // the caller's stack, so leave at once rather than unwind under it.
  [[noreturn]] void fail_and_exit(const std::string& what) {
    fail(what);
    std::fflush(nullptr);
    std::_Exit(1);
  }
  bool failed() const { return failed_; }

 private:
  void line(const std::string& text) {
    const std::string l = text + "\n";
    (void)!::write(fd_, l.data(), l.size());
  }
  int fd_;
  bool failed_ = false;
};

// Runs `body` in a forked child in its own process group and waits at most
// `deadline` for it. Fails the test with the child's report on a failure or
// a hang; afterwards nothing of the child's is left: its process group is
// killed and the queues it may have created (ipcbench.<child>.<tag>.up/.down)
// are removed.
void expect_in_child(const std::string& tag, std::chrono::seconds deadline,
                     const std::function<void(Report&)>& body) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setpgid(0, 0);
    ::close(fds[0]);
    ::alarm(static_cast<unsigned>(deadline.count()) + 10);  // never outlive the parent's wait
    Report report(fds[1]);
    try {
      body(report);
    } catch (const std::exception& e) {
      report.fail(std::string("threw: ") + e.what());
    }
    std::fflush(nullptr);
    std::_Exit(report.failed() ? 1 : 0);  // the blocked thread (if any) cannot be joined
  }
  ::setpgid(child, child);  // both sides set it: no window where a kill misses
  ::close(fds[1]);

  std::string log;
  const auto until = Clock::now() + deadline;
  bool eof = false;
  while (!eof) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{.fd = fds[0], .events = POLLIN, .revents = 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    char buf[512];
    const ssize_t got = ::read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      eof = true;
    } else {
      log.append(buf, static_cast<std::size_t>(got));
    }
  }
  ::close(fds[0]);
  if (!eof) ::kill(-child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::kill(-child, SIGKILL);  // the peer, if the body left it behind
  const std::string base = "ipcbench." + std::to_string(child) + "." + tag;
  for (const char* suffix : {".up", ".down"}) {
    const bool removed = ::shm_unlink((base + suffix).c_str()) == 0;
    EXPECT_FALSE(removed && eof) << "the test left " << base << suffix << " behind";
  }
  if (!eof) {
    ADD_FAILURE() << "still running after " << deadline.count()
                  << " s (blocked for good?); steps so far:\n"
                  << log;
    return;
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the test body failed (status " << status << "):\n"
      << log;
}

struct Pair {
  std::unique_ptr<Endpoint> endpoint;
  std::unique_ptr<Channel> channel;
  pid_t child = -1;
  int go = -1;  // write end: the peer waits for one byte before `then`

  // The handshake: the listener has accepted, the peer may act.
  void release_peer() {
    const char byte = 1;
    (void)!::write(go, &byte, 1);
    ::close(go);
    go = -1;
  }
};

// Listens, forks a peer that connects, accepts it, and returns. The peer
// runs `then` (which must not return normally for the dying cases) only
// once the test calls release_peer().
template <typename Then>
Pair connect_peer(const std::string& tag, Then then) {
  Mechanism* mech = ipcbench::find_mechanism("boost-mq");
  if (mech == nullptr) throw std::runtime_error("no boost-mq mechanism");
  Pair p;
  ipcbench::ListenOptions options;
  options.run_dir = "/tmp";  // unused by boost-mq
  options.tag = tag;
  options.max_message = kMax;
  p.endpoint = mech->listen(options);
  const std::string address = p.endpoint->address();
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  p.child = ::fork();
  if (p.child < 0) throw std::runtime_error("fork failed");
  if (p.child == 0) {
    ::alarm(30);  // never outlive a hung test by much
    ::close(go[1]);
    try {
      auto ch = mech->connect(address, {.max_message = kMax, .timeout = 5000ms});
      char byte = 0;
      while (::read(go[0], &byte, 1) < 0 && errno == EINTR) {
      }
      if (byte != 1) std::_Exit(4);  // the listener gave up
      then(*ch, address);
      std::_Exit(0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "peer: %s\n", e.what());
      std::_Exit(3);
    }
  }
  ::close(go[0]);
  p.go = go[1];
  p.channel = p.endpoint->accept(5000ms);
  return p;
}

int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// The first number of /proc/self/task/TID/syscall: the call the thread is
// blocked in (-1 while it runs).
long blocked_syscall(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long nr = -2;
  in >> nr;
  return nr;
}

TEST(BoostMqDeadPeerLock, BlockedReceiveEndsWithPeerLostOnceTheLockIsReleased) {
  expect_in_child("locktest1", 20s, [](Report& report) {
    Pair p = connect_peer("locktest1", [](Channel&, const std::string& address) {
      ipcbench::die_holding_queue_lock(address + ".up");  // the queue we receive on
    });
    report.step("accepted");
    p.release_peer();
    const int status = reap(p.child);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      report.fail("the peer should have died of SIGKILL holding the lock, status " +
                  std::to_string(status));
      return;
    }
    report.step("the peer died holding the .up queue's lock");

    std::atomic<bool> done{false};
    std::atomic<pid_t> receiver_tid{0};
    std::string error;
    std::thread receiver([&] {
      receiver_tid.store(static_cast<pid_t>(::syscall(SYS_gettid)));
      std::array<std::byte, kMax> buf{};
      try {
        (void)p.channel->receive(buf);
        error = "receive returned a message";
      } catch (const ipcbench::PeerLost& e) {
        error = e.what();
      } catch (const std::exception& e) {
        error = std::string("not PeerLost: ") + e.what();
      }
      done.store(true);
    });
    receiver.detach();  // it may never come back; the child exits without joining
    // The wedge is real: the dead peer's pid is known, yet the call waits on
    // the mutex's futex (no slice or pidfd check can run). Seen, not slept on.
    const auto until = Clock::now() + 5s;
    bool in_futex = false;
    while (!done.load() && Clock::now() < until) {
      const pid_t tid = receiver_tid.load();
      if (tid != 0 && blocked_syscall(tid) == SYS_futex) {
        in_futex = true;
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    if (!in_futex) {
      report.fail_and_exit(done.load() ? "receive ended without the release: " + error
                                       : "receive never blocked in a futex wait within 5 s");
    }
    std::this_thread::sleep_for(100ms);  // still there a moment later
    if (done.load()) report.fail_and_exit("receive ended without the release: " + error);
    report.step("receive is blocked on the lock");

    report.check(p.channel->release_locks_of_dead_peer(), "the release found nothing to release");
    const auto deadline = Clock::now() + 5s;
    while (!done.load() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    if (!done.load()) report.fail_and_exit("receive still blocked 5 s after the release");
    report.step("receive returned after the release");
    report.check(error.find("holding a queue's lock") != std::string::npos,
                 "the error does not name the lock: " + error);

    // Every later call says the same; none blocks.
    std::array<std::byte, kMax> buf{};
    try {
      (void)p.channel->try_receive(buf);
      report.fail("try_receive after the release did not throw");
    } catch (const ipcbench::PeerLost&) {
    }
    try {
      p.channel->send(std::span<const std::byte>(buf.data(), 8));
      report.fail("send after the release did not throw");
    } catch (const ipcbench::PeerLost&) {
    }
  });
}

TEST(BoostMqDeadPeerLock, NothingHeldNothingReleased) {
  expect_in_child("locktest2", 20s, [](Report& report) {
    // A live peer: never touched, the channel works after the call.
    Pair live = connect_peer("locktest2", [](Channel& ch, const std::string&) {
      std::array<std::byte, kMax> buf{};
      const std::size_t n = ch.receive(buf);
      ch.send(std::span<const std::byte>(buf.data(), n));
      try {
        (void)ch.receive(buf);  // until the listener says goodbye
      } catch (const ipcbench::PeerLost&) {
      }
    });
    live.release_peer();
    report.check(!live.channel->release_locks_of_dead_peer(), "released a live peer's lock");
    std::array<std::byte, kMax> out{};
    std::memset(out.data(), 0x5a, out.size());
    live.channel->send(std::span<const std::byte>(out.data(), 16));
    std::array<std::byte, kMax> in{};
    const std::size_t got = live.channel->receive(in);
    report.check(got == 16 && std::memcmp(in.data(), out.data(), 16) == 0,
                 "the echo after the call differs (" + std::to_string(got) + " bytes)");
    live.channel.reset();  // the empty goodbye ends the peer's receive
    const int live_status = reap(live.child);
    report.check(WIFEXITED(live_status) && WEXITSTATUS(live_status) == 0,
                 "the live peer ended with status " + std::to_string(live_status));
    report.step("live peer: nothing released, channel works");
  });
  expect_in_child("locktest3", 20s, [](Report& report) {
    // A peer that died holding nothing: nothing to release, and the channel
    // reports the peer's end as usual.
    Pair dead = connect_peer("locktest3", [](Channel&, const std::string&) { ::raise(SIGKILL); });
    dead.release_peer();
    reap(dead.child);
    report.check(!dead.channel->release_locks_of_dead_peer(),
                 "released a lock of a peer that held none");
    std::array<std::byte, kMax> buf{};
    try {
      (void)dead.channel->receive(buf);
      report.fail("receive from a dead peer returned");
    } catch (const ipcbench::PeerLost&) {
      report.step("dead peer: PeerLost");
    }
  });
}

}  // namespace
