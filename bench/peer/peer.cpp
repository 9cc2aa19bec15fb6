#include "bench/peer/peer.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "bench/core/clock.hpp"
#include "bench/core/histogram.hpp"
#include "bench/core/protocol.hpp"
#include "bench/core/syscall_count.hpp"
#include "bench/core/sysinfo.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/syscall_tally.hpp"
#include "mechanisms/posix/time.hpp"
#include "mechanisms/registry.hpp"

namespace ipcbench {
namespace {

template <typename Payload>
void send_control(Channel& ch, std::byte* buf, std::uint32_t seq, Kind kind, const Payload& p) {
  static_assert(kHeaderBytes + sizeof(Payload) <= kControlBytes);
  write_header(buf, seq, kControlBytes, kind);
  std::memcpy(buf + kHeaderBytes, &p, sizeof p);
  ch.send({buf, kControlBytes});
}

int serve(Channel& ch, const PeerOptions& options) {
  const std::size_t cap = std::max(options.max_message, kControlBytes);
  std::vector<std::byte> buf(cap);  // zero-filled: pages are touched now
  std::vector<std::byte> control(kControlBytes);

  send_control(ch, control.data(), 0, Kind::kHello,
               HelloPayload{static_cast<std::int32_t>(getpid()), current_cpu()});

  std::uint32_t expected = 1;  // seq 0 is the hello; the runner starts at 1
  std::uint64_t received = 0;
  std::uint64_t verify_ns = 0;
  Histogram oneway = make_latency_histogram();
  DeferredStamp arrival;
  std::unique_ptr<SyscallCounter> syscalls;           // since the last kStats
  std::uint64_t own_mark = posix::own_syscall_count;  // the same, ipcbench's own calls
  for (;;) {
    const std::size_t n = ch.receive(buf);
    if (n < kHeaderBytes) {
      std::fprintf(stderr, "ipcbench peer: truncated message of %zu bytes\n", n);
      return kPeerExitVerify;
    }
    const MessageHeader h = read_header(buf.data());
    const Kind kind = kind_of(h);
    // A lossy mechanism may skip sequence numbers (counted), but never
    // repeat or reorder them; anything else must arrive exactly in order.
    const bool gap = options.lossy && static_cast<std::int32_t>(h.seq - expected) > 0;
    if ((h.seq != expected && !gap) || length_of(h) != n) {
      std::fprintf(
          stderr, "ipcbench peer: %s: expected seq %u, got %u; header length %zu, received %zu\n",
          h.seq != expected ? "sequence error" : "length error", expected, h.seq, length_of(h), n);
      return kPeerExitVerify;
    }
    expected = h.seq + 1;
    switch (kind) {
      case Kind::kEcho:
      case Kind::kEchoStamped:
      case Kind::kSink:
      case Kind::kSinkAck: {
        // An echo goes back before its payload is checked, so the check is
        // not inside the runner's round trip (the runner checks the echo
        // too); a sink's check is timed and reported (verify_ns).
        const bool echo = kind == Kind::kEcho || kind == Kind::kEchoStamped;
        ++received;
        if (kind == Kind::kEchoStamped) {
          // Both processes read the same CLOCK_MONOTONIC: the one-way time is
          // our receive time minus the sender's (or, open loop, the
          // intended) send time. Marked now, read after the echo is sent.
          arrival.mark();
        }
        if (echo) ch.send({buf.data(), n});
        if (kind == Kind::kEchoStamped) {
          const std::uint64_t at = arrival.monotonic_at_mark();
          oneway.record(at > h.stamp ? at - h.stamp : 0);
        }
        if (options.verify_full) {
          const std::uint64_t v0 = echo ? 0 : Clock::monotonic_ns();
          const std::size_t bad = check_pattern({buf.data(), n}, h.seq);
          if (!echo) verify_ns += Clock::monotonic_ns() - v0;
          if (bad != n) {
            std::fprintf(stderr, "ipcbench peer: corrupted payload at byte %zu (seq %u)\n", bad,
                         h.seq);
            return kPeerExitVerify;
          }
        }
        if (kind == Kind::kSinkAck) {
          send_control(ch, control.data(), h.seq, Kind::kAck, AckPayload{received});
        }
        break;
      }
      case Kind::kCount:
        send_control(ch, control.data(), h.seq, Kind::kAck, AckPayload{received});
        break;
      case Kind::kOneWay: {
        OneWayPayload p{};
        p.count = oneway.count();
        p.min_ns = oneway.min();
        p.max_ns = oneway.max();
        p.mean_ns = oneway.mean();
        for (std::size_t i = 0; i < kSpectrumPoints; ++i) {
          p.value_ns[i] = oneway.value_at_percentile(kSpectrumPercentiles[i]);
        }
        send_control(ch, control.data(), h.seq, Kind::kOneWayReply, p);
        break;
      }
      case Kind::kStats: {
        received = 0;
        oneway.reset();
        StatsPayload stats = process_usage();
        stats.verify_ns = verify_ns;
        verify_ns = 0;
        if (syscalls) stats.syscalls = syscalls->read();
        stats.own_syscalls = posix::own_syscall_count - own_mark;
        own_mark = posix::own_syscall_count;
        // A new count from here, on the threads we have now (a mechanism's
        // own threads start when it connects, before the first kStats).
        syscalls.reset();
        syscalls = SyscallCounter::open(nullptr);
        send_control(ch, control.data(), h.seq, Kind::kStatsReply, stats);
        break;
      }
      case Kind::kBye:
        return 0;
      default:
        std::fprintf(stderr, "ipcbench peer: unexpected message kind %d (seq %u)\n",
                     static_cast<int>(kind), h.seq);
        return kPeerExitVerify;
    }
  }
}

}  // namespace

int run_peer(const PeerOptions& options) {
  // Normally set between fork and exec by the runner; set again here for a
  // peer started by hand, then check that the parent did not already die.
  if (options.parent > 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != options.parent) return kPeerExitRunnerLost;
  }
  std::signal(SIGPIPE, SIG_IGN);
  try {
    if (options.cpu >= 0) pin_current_thread(options.cpu);
    Mechanism* mech = find_mechanism(options.mechanism);
    if (mech == nullptr) {
      std::fprintf(stderr, "ipcbench peer: unknown mechanism '%s'\n", options.mechanism.c_str());
      return 1;
    }
    const std::size_t max_message = std::max(options.max_message, kControlBytes);
    std::unique_ptr<Endpoint> endpoint;  // outlives the channel
    std::unique_ptr<Channel> channel;
    if (!options.listen_host.empty()) {
      // The server's side of a case across hosts: listen, tell `serve` where,
      // and take the one client that set up the case.
      endpoint = mech->listen({.run_dir = "/tmp",
                               .tag = "remote-" + std::to_string(getpid()),
                               .max_message = max_message,
                               .bind_host = options.listen_host,
                               .allowed_peer = options.allow_from});
      std::printf("%s\n", endpoint->address().c_str());
      std::fflush(stdout);
      channel = endpoint->accept(options.timeout);
    } else {
      channel = mech->connect(
          options.address,
          {.max_message = max_message, .timeout = options.timeout, .same_cpu = options.same_cpu});
    }
    return serve(*channel, options);
  } catch (const PeerLost&) {
    return kPeerExitRunnerLost;
  } catch (const ProtocolError& e) {
    std::fprintf(stderr, "ipcbench peer: %s\n", e.what());
    return kPeerExitVerify;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench peer: %s\n", e.what());
    return 1;
  }
}

}  // namespace ipcbench
