#include "bench/measure/trial.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "bench/core/sysinfo.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/syscall_tally.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench::trial {

void fail_message(std::span<const std::byte> buf, std::size_t n, std::uint32_t seq,
                  std::size_t size, Kind kind, bool full) {
  std::string bad = check_message(buf, n, seq, size, kind, full);
  if (bad.empty()) bad = "unexpected reply";
  throw ProtocolError(bad);
}

AckPayload check_ack(std::span<const std::byte> buf, std::size_t n, std::uint32_t expected_seq) {
  const std::string bad = check_message(buf, n, expected_seq, kControlBytes, Kind::kAck, false);
  if (!bad.empty()) throw ProtocolError("acknowledgement: " + bad);
  AckPayload ack;
  std::memcpy(&ack, buf.data() + kHeaderBytes, sizeof ack);
  return ack;
}

namespace {

bool is_control_reply(const MessageHeader& h, std::size_t n) noexcept {
  const Kind k = kind_of(h);
  return n == kControlBytes && length_of(h) == kControlBytes &&
         (k == Kind::kAck || k == Kind::kStatsReply || k == Kind::kOneWayReply);
}

}  // namespace

bool LateReplies::skip(std::span<const std::byte> buf, std::size_t n,
                       std::uint32_t awaited) noexcept {
  if (n < kHeaderBytes) return false;
  const MessageHeader h = read_header(buf.data());
  if (static_cast<std::int32_t>(h.seq - awaited) >= 0) return false;
  if (any_ && static_cast<std::int32_t>(h.seq - newest_) <= 0) return false;
  if (!(n == size_ && h.length_kind == echo_lk_) && !is_control_reply(h, n)) return false;
  seen(h.seq);
  return true;
}

void GivenUp::add(std::uint32_t seq, std::uint64_t sent_at) noexcept {
  if (count_ == kCapacity) {
    first_ = (first_ + 1) % kCapacity;
    --count_;
  }
  entries_[(first_ + count_) % kCapacity] = {seq, sent_at};
  ++count_;
}

std::optional<std::uint64_t> GivenUp::take(std::uint32_t seq) noexcept {
  for (std::size_t i = 0; i < count_; ++i) {
    const Entry& e = entries_[(first_ + i) % kCapacity];
    if (e.seq != seq) continue;
    const std::uint64_t at = e.sent_at;
    first_ = (first_ + i + 1) % kCapacity;
    count_ -= i + 1;
    return at;
  }
  return std::nullopt;
}

void wait_ready(Channel& ch, bool want_send, std::chrono::nanoseconds timeout) {
  want_send = want_send || ch.send_pending();  // our own backlog must drain too
  const int rfd = ch.receive_fd();
  const int sfd = ch.send_fd();
  if (want_send && rfd >= 0 && sfd >= 0) {
    pollfd fds[2] = {{rfd, POLLIN, 0}, {sfd, POLLOUT, 0}};
    const timespec ts = posix::to_timespec(timeout);
    if (::ppoll(fds, 2, &ts, nullptr) < 0) {
      if (errno != EINTR) posix::throw_errno("poll failed");
      posix::throw_if_interrupted();
    }
    return;
  }
  if (want_send) {
    ch.wait_either(timeout);  // no descriptors: the channel's own wait for both
    return;
  }
  ch.wait_receivable(timeout);
}

TrialUsage::TrialUsage(PeerLink& link) : link_(link) {
  peer0_ = link.peer_stats();  // the peer's counts restart here
  self0_ = process_usage();
  syscalls_ = SyscallCounter::open(nullptr);  // last: its own setup is not counted
  own0_ = posix::own_syscall_count;
}

TrialUsage::~TrialUsage() = default;

void TrialUsage::finish(TrialResult& r) {
  // First: nothing of ours after the span.
  r.runner_own_syscalls = posix::own_syscall_count - own0_;
  if (syscalls_) r.runner_syscalls = syscalls_->read();
  const StatsPayload self1 = process_usage();
  const StatsPayload peer1 = link_.peer_stats();
  if (peer1.syscalls != StatsPayload::kNotCounted) r.peer_syscalls = peer1.syscalls;
  r.peer_own_syscalls = peer1.own_syscalls;
  r.runner_cpu_ns = self1.cpu_ns - self0_.cpu_ns;
  r.runner_context_switches = self1.context_switches - self0_.context_switches;
  r.peer_cpu_ns = peer1.cpu_ns - peer0_.cpu_ns;
  r.peer_context_switches = peer1.context_switches - peer0_.context_switches;
  r.peer_verify_ns = peer1.verify_ns;  // the peer's count restarts at each stats request
}

void finish_trial(TrialResult& r, TrialUsage& usage, const TrialFigures& f) {
  usage.finish(r);
  r.messages = f.messages;
  r.seconds = f.seconds;
  double per_iteration = 0;  // seconds
  if (f.round_trip_sum_ns) {
    r.mean_ns = f.messages > 0 ? *f.round_trip_sum_ns / static_cast<double>(f.messages) : 0.0;
    per_iteration = r.mean_ns * 1e-9;
  } else {
    per_iteration = f.seconds / static_cast<double>(std::max<std::uint64_t>(f.messages, 1));
  }
  // Google Benchmark divides the manual time by the iterations; a trial
  // that measured nothing still reports a positive time.
  r.iteration_seconds = std::max(per_iteration, 1e-9) * static_cast<double>(f.iterations);
}

}  // namespace ipcbench::trial
