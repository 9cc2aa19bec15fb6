#include "bench/peer/session.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "bench/control/remote.hpp"
#include "bench/peer/peer.hpp"
#include "bench/peer/peer_process.hpp"
#include "bench/peer/watchdog.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench {
PeerSession::PeerSession(const SessionConfig& config, Watchdog& watchdog) {
  const std::size_t max_message = std::max(config.max_message, kControlBytes);
  lossy_ = config.mechanism->capabilities().lossy;
  if (config.remote != nullptr) {
    start_remote(config, watchdog);
    return;
  }
  endpoint_ = config.mechanism->listen({.run_dir = config.run_dir,
                                        .tag = config.tag,
                                        .max_message = max_message,
                                        .same_cpu = config.same_cpu,
                                        .spin_budget = config.spin_budget});
  spawn(config, endpoint_->address(), endpoint_->inherited_fds());
  watchdog.arm(pid_, pidfd_.get());
  try {
    channel_ = endpoint_->accept(watchdog.timeout());
    receive_hello(pid_, max_message);
  } catch (const std::exception& e) {
    watchdog.disarm();
    // The destructor will not run: reap the peer here, and say how it ended.
    const std::string why = std::string(e.what()) + " (" + kill_and_describe() + ")";
    link_.reset();
    channel_.reset();
    endpoint_.reset();
    throw PeerLost(why);
  }
  watchdog.disarm();
}

void PeerSession::receive_hello(pid_t expected_pid, std::size_t max_message) {
  link_ = std::make_unique<PeerLink>(*channel_, lossy_, max_message);
  const HelloPayload hello = link_->receive_hello();
  if (hello.pid != expected_pid) throw ProtocolError("peer hello from an unexpected process");
  peer_cpu_ = hello.cpu;
}

// Across hosts: the server starts the peer, which listens; we connect.
void PeerSession::start_remote(const SessionConfig& config, Watchdog& watchdog) {
  remote_ = config.remote;
  const std::size_t max_message = std::max(config.max_message, kControlBytes);
  // Armed (with nothing to watch yet) before the setup: arming clears the
  // previous case's verdict, which would otherwise be blamed for a setup that
  // fails (e.g. the server is gone), and bounds a stuck setup by --timeout.
  watchdog.arm(-1, -1);
  RemoteServer::Ready ready;
  try {
    ready = remote_->setup(std::string(config.mechanism->name()), max_message, config.verify_full);
  } catch (...) {
    watchdog.disarm();
    throw;
  }
  watchdog.arm(-1, remote_->control_fd());
  try {
    channel_ = config.mechanism->connect(
        ready.address, {.max_message = max_message, .timeout = watchdog.timeout()});
    receive_hello(ready.peer_pid, max_message);
  } catch (const std::exception& e) {
    watchdog.disarm();
    const std::string why =
        std::string(e.what()) + " (" + remote_->epitaph(std::chrono::milliseconds(500)) + ")";
    link_.reset();
    channel_.reset();
    (void)remote_->teardown();
    throw PeerLost(why);
  }
  watchdog.disarm();
}

int PeerSession::peer_pidfd() const noexcept {
  return remote_ != nullptr ? remote_->control_fd() : pidfd_.get();
}

void PeerSession::kill_peer() noexcept {
  if (remote_ != nullptr) {
    if (remote_->control_fd() >= 0) ::shutdown(remote_->control_fd(), SHUT_RDWR);
  } else if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
  }
}

std::string PeerSession::kill_and_describe() noexcept {
  // Give a peer that is failing on its own a moment to finish its last words.
  if (!wait_exit(std::chrono::milliseconds(200))) ::kill(pid_, SIGKILL);
  try {
    return peer_epitaph();
  } catch (...) {
    return "peer ended";
  }
}

void PeerSession::spawn(const SessionConfig& config, const std::string& address,
                        const std::vector<int>& inherited) {
  std::vector<std::string> args = {
      config.executable, "peer",
      "--mechanism",     std::string(config.mechanism->name()),
      "--address",       address,
      "--cpu",           std::to_string(config.peer_cpu),
      "--max-message",   std::to_string(std::max(config.max_message, kControlBytes)),
      "--verify",        config.verify_full ? "full" : "header",
      "--parent",        std::to_string(::getpid())};
  if (lossy_) args.emplace_back("--lossy");
  if (config.same_cpu) args.emplace_back("--same-cpu");
  PeerProcess p = spawn_peer_process(std::move(args), inherited, false);
  pid_ = p.pid;
  pidfd_ = std::move(p.pidfd);
  stderr_ = std::move(p.stderr_read);
}

bool PeerSession::wait_exit(std::chrono::milliseconds timeout) noexcept {
  if (reaped_) return true;
  if (pidfd_) {
    pollfd p{pidfd_.get(), POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r > 0) break;
      if (r < 0 && errno != EINTR) break;
    }
  }
  const pid_t r = ::waitpid(pid_, &wait_status_, pidfd_ ? WNOHANG : 0);
  if (r == pid_) reaped_ = true;
  return reaped_;
}

std::string PeerSession::peer_epitaph() {
  if (remote_ != nullptr) return remote_->epitaph(std::chrono::milliseconds(500));
  if (pid_ < 0) return "peer was never started";
  // A peer that is dying (it hung up, crashed, or failed on its own) is gone
  // within milliseconds; one still alive after a failure the runner found
  // (a corrupt reply) has no last words to wait for, and each failed case
  // would otherwise cost the whole wait.
  if (!wait_exit(std::chrono::milliseconds(100))) return "peer is still running";
  std::string what = describe_exit(wait_status_);
  const std::string err = read_stderr(stderr_.get(), false);
  if (!err.empty()) what += ": " + err;
  return what;
}

PeerSession::~PeerSession() {
  if (remote_ != nullptr) {
    if (link_) link_->say_bye();
    link_.reset();
    channel_.reset();
    (void)remote_->teardown();  // the server reaps its peer (or kills it)
    return;
  }
  if (pid_ > 0 && !reaped_) {
    if (link_) link_->say_bye();  // a clean goodbye first; on any failure fall through to SIGKILL
    if (!wait_exit(std::chrono::milliseconds(channel_ ? 2000 : 0))) {
      ::kill(pid_, SIGKILL);
      wait_exit(std::chrono::milliseconds(5000));
      if (!reaped_) {
        ::waitpid(pid_, &wait_status_, 0);  // SIGKILL cannot be ignored
        reaped_ = true;
      }
    }
  }
  link_.reset();
  channel_.reset();
  endpoint_.reset();
}

}  // namespace ipcbench
