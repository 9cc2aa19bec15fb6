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
  const std::string bad =
      check_message({control_.data(), n}, n, 0, kControlBytes, Kind::kHello, false);
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
    const std::string why =
        std::string(e.what()) + " (" + remote_->epitaph(std::chrono::milliseconds(500)) + ")";
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
      if (*n == kControlBytes && h.seq == seq && kind_of(h) == reply &&
          length_of(h) == kControlBytes) {
        return control_.data() + kHeaderBytes;
      }
      // Older than our request: a late reply or echo. Anything else is wrong.
      if (*n < kHeaderBytes || static_cast<std::int32_t>(h.seq - seq) >= 0) {
        throw ProtocolError("unexpected reply to a control request (seq " + std::to_string(h.seq) +
                            ")");
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

std::string PeerSession::peer_epitaph() {
  if (remote_ != nullptr) return remote_->epitaph(std::chrono::milliseconds(500));
  if (pid_ < 0) return "peer was never started";
  if (!wait_exit(std::chrono::milliseconds(500))) return "peer is still running";
  std::string what = describe_exit(wait_status_);
  const std::string err = read_stderr(stderr_.get(), false);
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
