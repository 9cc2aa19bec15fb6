#include "session.hpp"

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

#include "ipcbench/errors.hpp"
#include "ipcbench/posix/retry.hpp"
#include "ipcbench/posix/time.hpp"
#include "peer.hpp"
#include "remote.hpp"
#include "watchdog.hpp"

namespace ipcbench {
namespace {

// Receives one control message of `kind` answering `seq`.
void receive_control(Channel& ch, std::vector<std::byte>& buf, std::uint32_t seq, Kind kind) {
  const std::size_t n = ch.receive(buf);
  const std::string bad = check_message({buf.data(), n}, n, seq, kControlBytes, kind, false);
  if (!bad.empty()) throw ProtocolError("control reply: " + bad);
}

}  // namespace

PeerSession::PeerSession(const SessionConfig& config, Watchdog& watchdog)
    : control_(std::max(config.max_message, kControlBytes)) {
  const std::size_t max_message = std::max(config.max_message, kControlBytes);
  lossy_ = config.mechanism->capabilities().lossy;
  if (config.remote != nullptr) {
    start_remote(config, watchdog);
    return;
  }
  endpoint_ = config.mechanism->listen({.run_dir = config.run_dir,
                                        .tag = config.tag,
                                        .max_message = max_message,
                                        .same_cpu = config.same_cpu});
  spawn(config, endpoint_->address(), endpoint_->inherited_fds());
  watchdog.arm(pid_, pidfd_.get());
  try {
    channel_ = endpoint_->accept(watchdog.timeout());
    receive_hello(pid_);
  } catch (const std::exception& e) {
    watchdog.disarm();
    // The destructor will not run: reap the peer here, and say how it ended.
    const std::string why = std::string(e.what()) + " (" + kill_and_describe() + ")";
    channel_.reset();
    endpoint_.reset();
    throw PeerLost(why);
  }
  watchdog.disarm();
}

void PeerSession::receive_hello(pid_t expected_pid) {
  const std::size_t n = channel_->receive(control_);
  const std::string bad = check_message({control_.data(), n}, n, 0, kControlBytes,
                                        Kind::kHello, false);
  if (!bad.empty()) throw ProtocolError("peer hello: " + bad);
  HelloPayload hello;
  std::memcpy(&hello, control_.data() + kHeaderBytes, sizeof hello);
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
    receive_hello(ready.peer_pid);
  } catch (const std::exception& e) {
    watchdog.disarm();
    const std::string why = std::string(e.what()) + " (" + remote_->epitaph(std::chrono::milliseconds(500)) + ")";
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
  // Everything the child needs is prepared before fork: after fork only
  // async-signal-safe calls are allowed (we may have other threads).
  const pid_t parent = ::getpid();
  std::vector<std::string> args = {config.executable,
                                   "peer",
                                   "--mechanism",
                                   std::string(config.mechanism->name()),
                                   "--address",
                                   address,
                                   "--cpu",
                                   std::to_string(config.peer_cpu),
                                   "--max-message",
                                   std::to_string(std::max(config.max_message, kControlBytes)),
                                   "--verify",
                                   config.verify_full ? "full" : "header",
                                   "--parent",
                                   std::to_string(parent)};
  if (lossy_) args.emplace_back("--lossy");
  if (config.same_cpu) args.emplace_back("--same-cpu");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) posix::throw_errno("cannot create pipe for peer stderr");
  posix::Fd err_read(err_pipe[0]), err_write(err_pipe[1]);

  const pid_t pid = ::fork();
  if (pid < 0) posix::throw_errno("cannot fork the peer process");
  if (pid == 0) {
    // Child. Die with the thread that spawned us (it stays alive for the
    // whole run); if the parent is already gone, give up at once.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(kPeerExitRunnerLost);
    // Own process group: a terminal's Ctrl-C reaches only the runner, which
    // then tears the case down in order.
    ::setpgid(0, 0);
    ::dup2(err_write.get(), STDERR_FILENO);
    for (int fd : inherited) ::fcntl(fd, F_SETFD, 0);  // keep across exec
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  pidfd_ = posix::pidfd_open(pid);
  if (!pidfd_) {
    const int e = errno;
    ::kill(pid, SIGKILL);
    wait_exit(std::chrono::milliseconds(1000));
    posix::throw_errno(e, "pidfd_open failed for the peer");
  }
  ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);
  stderr_ = std::move(err_read);
}

const std::byte* PeerSession::control_round_trip(Kind request, Kind reply) {
  if (!lossy_) {
    const std::uint32_t seq = next_seq++;
    write_header(control_.data(), seq, kControlBytes, request);
    channel_->send({control_.data(), kControlBytes});
    receive_control(*channel_, control_, seq, reply);
    return control_.data() + kHeaderBytes;
  }
  // Lossy: a request or its reply may be dropped. Ask again (a fresh seq
  // each time); replies to older requests, and late acknowledgements of
  // data, are skipped.
  constexpr int kAttempts = 20;
  constexpr auto kWait = std::chrono::milliseconds(100);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const std::uint32_t seq = next_seq++;
    write_header(control_.data(), seq, kControlBytes, request);
    channel_->send({control_.data(), kControlBytes});
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    for (;;) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) break;
      const auto n = channel_->receive_for(control_, left);
      if (!n) break;
      const MessageHeader h = read_header(control_.data());
      if (*n == kControlBytes && h.seq == seq && kind_of(h) == reply && length_of(h) == kControlBytes) {
        return control_.data() + kHeaderBytes;
      }
      // Older than our request: a late reply or echo. Anything else is wrong.
      if (*n < kHeaderBytes || static_cast<std::int32_t>(h.seq - seq) >= 0) {
        throw ProtocolError("unexpected reply to a control request (seq " +
                            std::to_string(h.seq) + ")");
      }
    }
  }
  throw PeerLost("peer did not answer " + std::to_string(kAttempts) + " control requests");
}

StatsPayload PeerSession::peer_stats() {
  const std::byte* p = control_round_trip(Kind::kStats, Kind::kStatsReply);
  StatsPayload s;
  std::memcpy(&s, p, sizeof s);
  return s;
}

OneWayPayload PeerSession::peer_oneway() {
  const std::byte* p = control_round_trip(Kind::kOneWay, Kind::kOneWayReply);
  OneWayPayload o;
  std::memcpy(&o, p, sizeof o);
  return o;
}

AckPayload PeerSession::peer_count() {
  const std::byte* p = control_round_trip(Kind::kCount, Kind::kAck);
  AckPayload a;
  std::memcpy(&a, p, sizeof a);
  return a;
}

void PeerSession::say_bye() noexcept {
  try {
    if (channel_) {
      // Never block here: the watchdog is disarmed, and a hung peer with a
      // full queue would otherwise hold us forever.
      write_header(control_.data(), next_seq++, kControlBytes, Kind::kBye);
      const std::span<const std::byte> bye(control_.data(), kControlBytes);
      if (!channel_->try_send(bye) && channel_->wait_sendable(std::chrono::milliseconds(200))) {
        (void)channel_->try_send(bye);
      }
    }
  } catch (...) {
  }
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

std::string PeerSession::read_peer_stderr() noexcept {
  std::string text;
  if (!stderr_) return text;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(stderr_.get(), buf, sizeof buf);
    if (n <= 0 || text.size() > 4096) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::string PeerSession::peer_epitaph() {
  if (remote_ != nullptr) return remote_->epitaph(std::chrono::milliseconds(500));
  if (pid_ < 0) return "peer was never started";
  if (!wait_exit(std::chrono::milliseconds(500))) return "peer is still running";
  std::string what;
  if (WIFEXITED(wait_status_)) {
    what = "peer exited with status " + std::to_string(WEXITSTATUS(wait_status_));
  } else if (WIFSIGNALED(wait_status_)) {
    const int sig = WTERMSIG(wait_status_);
    what = "peer was killed by signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
  } else {
    what = "peer ended";
  }
  const std::string err = read_peer_stderr();
  if (!err.empty()) what += ": " + err;
  return what;
}

PeerSession::~PeerSession() {
  if (remote_ != nullptr) {
    say_bye();
    channel_.reset();
    (void)remote_->teardown();  // the server reaps its peer (or kills it)
    return;
  }
  if (pid_ > 0 && !reaped_) {
    say_bye();  // a clean goodbye first; on any failure fall through to SIGKILL
    if (!wait_exit(std::chrono::milliseconds(channel_ ? 2000 : 0))) {
      ::kill(pid_, SIGKILL);
      wait_exit(std::chrono::milliseconds(5000));
      if (!reaped_) {
        ::waitpid(pid_, &wait_status_, 0);  // SIGKILL cannot be ignored
        reaped_ = true;
      }
    }
  }
  channel_.reset();
  endpoint_.reset();
}

}  // namespace ipcbench
