#include "bench/wire/echo_server.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "bench/core/sysinfo.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/syscall_tally.hpp"

namespace ipcbench {

EchoServer::EchoServer(Channel& channel, const EchoOptions& options)
    : channel_(channel),
      options_(options),
      buffer_(std::max(options.max_message, kControlBytes)),
      control_(kControlBytes),
      oneway_(make_latency_histogram()),
      own_mark_(posix::own_syscall_count) {}

template <typename Payload>
void EchoServer::reply(std::uint32_t seq, Kind kind, const Payload& payload) {
  static_assert(kHeaderBytes + sizeof(Payload) <= kControlBytes);
  write_header(control_.data(), seq, kControlBytes, kind);
  std::memcpy(control_.data() + kHeaderBytes, &payload, sizeof payload);
  channel_.send({control_.data(), kControlBytes});
}

void EchoServer::say_hello() {
  reply(0, Kind::kHello, HelloPayload{static_cast<std::int32_t>(getpid()), current_cpu()});
}

void EchoServer::serve() {
  for (;;) {
    // Read where it arrived (a loan API's memory, else buffer_).
    const std::span<const std::byte> in = channel_.receive_view(buffer_);
    const std::size_t n = in.size();
    if (n < kHeaderBytes) {
      throw ProtocolError("truncated message of " + std::to_string(n) + " bytes");
    }
    const MessageHeader h = read_header(in.data());
    const Kind kind = kind_of(h);
    // A lossy mechanism may skip sequence numbers (counted), but never
    // repeat or reorder them; anything else must arrive exactly in order.
    const bool gap = options_.lossy && static_cast<std::int32_t>(h.seq - expected_) > 0;
    if ((h.seq != expected_ && !gap) || length_of(h) != n) {
      throw ProtocolError(std::string(h.seq != expected_ ? "sequence error" : "length error") +
                          ": expected seq " + std::to_string(expected_) + ", got " +
                          std::to_string(h.seq) + "; header length " +
                          std::to_string(length_of(h)) + ", received " + std::to_string(n));
    }
    expected_ = h.seq + 1;
    switch (kind) {
      case Kind::kEcho:
      case Kind::kEchoStamped:
      case Kind::kSink:
      case Kind::kSinkAck:
        echo_or_sink(in, h, kind);
        break;
      case Kind::kCount:
        reply(h.seq, Kind::kAck, AckPayload{received_});
        break;
      case Kind::kOneWay:
        send_oneway(h.seq);
        break;
      case Kind::kStats:
        send_stats(h.seq);
        break;
      case Kind::kBye:
        return;  // the channel gives the view back as it closes
      default:
        throw ProtocolError("unexpected message kind " + std::to_string(static_cast<int>(kind)) +
                            " (seq " + std::to_string(h.seq) + ")");
    }
    channel_.release_view();
  }
}

// An echo goes back before its payload is checked, so the check is not
// inside the runner's round trip (the runner checks the echo too); a sink's
// check is timed and reported (verify_ns). The echo is written where the
// channel lends it: with a loan API, a new chunk into which only the header
// is copied (the payload too with --verify full, the only time it is
// read), else where the message arrived, which holds it already.
void EchoServer::echo_or_sink(std::span<const std::byte> in, const MessageHeader& h, Kind kind) {
  const std::size_t n = in.size();
  const bool echo = kind == Kind::kEcho || kind == Kind::kEchoStamped;
  ++received_;
  // Both processes read the same CLOCK_MONOTONIC: the one-way time is our
  // receive time minus the sender's (or, open loop, the intended) send
  // time. Marked now, read after the echo is sent.
  if (kind == Kind::kEchoStamped) arrival_.mark();
  if (echo) {
    const std::span<std::byte> out = channel_.loan(buffer_, n);
    if (out.data() != in.data()) {
      std::memcpy(out.data(), in.data(), options_.verify_full ? n : kHeaderBytes);
    }
    channel_.send_loaned(out);
  }
  if (kind == Kind::kEchoStamped) {
    const std::uint64_t at = arrival_.monotonic_at_mark();
    oneway_.record(at > h.stamp ? at - h.stamp : 0);
  }
  if (options_.verify_full) {
    const std::uint64_t v0 = echo ? 0 : Clock::monotonic_ns();
    const std::size_t bad = check_pattern(in, h.seq);
    if (!echo) verify_ns_ += Clock::monotonic_ns() - v0;
    if (bad != n) {
      throw ProtocolError("corrupted payload at byte " + std::to_string(bad) + " (seq " +
                          std::to_string(h.seq) + ")");
    }
  }
  if (kind == Kind::kSinkAck) reply(h.seq, Kind::kAck, AckPayload{received_});
}

void EchoServer::send_stats(std::uint32_t seq) {
  received_ = 0;
  oneway_.reset();
  StatsPayload stats = process_usage();
  stats.verify_ns = std::exchange(verify_ns_, 0);
  if (syscalls_) stats.syscalls = syscalls_->read();
  stats.own_syscalls = posix::own_syscall_count - own_mark_;
  own_mark_ = posix::own_syscall_count;
  // A new count from here, on the threads we have now (a mechanism's own
  // threads start when it connects, before the first kStats).
  syscalls_.reset();
  syscalls_ = SyscallCounter::open(nullptr);
  reply(seq, Kind::kStatsReply, stats);
}

void EchoServer::send_oneway(std::uint32_t seq) {
  OneWayPayload p{};
  p.count = oneway_.count();
  p.min_ns = oneway_.min();
  p.max_ns = oneway_.max();
  p.mean_ns = oneway_.mean();
  for (std::size_t i = 0; i < kSpectrumPoints; ++i) {
    p.value_ns[i] = oneway_.value_at_percentile(kSpectrumPercentiles[i]);
  }
  reply(seq, Kind::kOneWayReply, p);
}

}  // namespace ipcbench
