// Bare reference loops (issue 15): the plainest two-process ping-pong and
// stream per kernel object family, with none of the suite's machinery in the
// timed loops (no header, framing, virtual call or allocation: plain
// write/read, send/recv for sockets). They measure what the kernel object
// costs, so a case's adapter_ratio shows what the suite's adapter adds:
// adapter p50 / bare p50 for latency, bare bytes/s / adapter bytes/s for
// throughput.
//
// The kernel objects are set up as the mechanisms set them up (pipes at the
// default size, TCP_NODELAY, udp's buffers raised to net.core.[rw]mem_max),
// so only the adapter differs.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bench/core/clock.hpp"
#include "bench/core/histogram.hpp"
#include "mechanisms/posix/fd.hpp"

namespace ipcbench {

enum class BareFamily { kPipe, kUnixStream, kTcp, kUdp };

// The family whose bare loop is the reference for a mechanism: pipe and fifo
// (a FIFO is a pipe in the kernel) -> kPipe, uds-stream -> kUnixStream, tcp,
// udp; nullopt for the others.
std::optional<BareFamily> bare_family_for(std::string_view mechanism_name);

// "pipe", "unix-stream", "tcp", "udp".
const char* bare_family_name(BareFamily family);

// The inverse of bare_family_name; nullopt for anything else.
std::optional<BareFamily> parse_bare_family(std::string_view name);

// Largest message: a datagram over IPv4 for udp, the suite's stream cap else.
std::size_t bare_max_message(BareFamily family);

struct BareLatency {
  double p50_ns = 0;
  double mean_ns = 0;  // the histogram's mean, as the cases report it
  double min_ns = 0;
  std::uint64_t round_trips = 0;  // answered round trips (samples)
  std::uint64_t lost = 0;         // udp: replies missing for 200 ms (no sample)
  double seconds = 0;             // wall time of the block
};

struct BareStream {
  std::uint64_t messages = 0;  // delivered (udp: counted by the peer)
  std::uint64_t sent = 0;
  // From the first write until the ack byte arrives; udp: until the last
  // datagram arrived (the peer's CLOCK_MONOTONIC stamp), so the peer's 20 ms
  // of silence that ends a lossy block is not counted.
  double seconds = 0;
  double bytes_per_second = 0;     // delivered bytes
  double messages_per_second = 0;  // delivered messages
};

// A pair of kernel objects of one family and a forked peer process (fork
// without exec) that serves blocks until the object is destroyed.
//
// Placement: the peer pins itself to peer_cpu (-1: it keeps the affinity it
// inherits from the calling thread, as the suite's peers do when unpinned).
// The calling thread is not touched: the caller pins it first (the runner's
// thread already is, on the case's runner CPU); a runner_cpu >= 0 the thread
// is not pinned to exactly is refused (std::invalid_argument). Run the blocks
// on that thread; the peer is tied to it (PR_SET_PDEATHSIG).
//
// Failures are std::system_error naming the family and what failed ("bare
// tcp loop: connect: ..."); an interrupt the harness requested (the
// watchdog's EINTR) is PeerLost, as everywhere in the suite. After a failed
// block the peer is killed and reaped and every later block throws. A dead
// peer ends a block promptly (end of file, EPIPE, a reset, or udp's 200 ms
// loss timeout followed by a check); a live peer that stops answering is cut
// off after 10 s on sockets (SO_RCVTIMEO/SO_SNDTIMEO), by the harness's
// watchdog on pipes.
class BarePair {
 public:
  BarePair(BareFamily family, std::size_t message_size, int runner_cpu, int peer_cpu,
           const Clock& clock);
  // Asks the peer to quit, reaps it (SIGKILL after 1 s), closes everything.
  ~BarePair();
  BarePair(const BarePair&) = delete;
  BarePair& operator=(const BarePair&) = delete;

  // `round_trips` ping-pongs of message_size bytes each way, one clock read
  // per round trip (consecutive stamps). udp: a reply missing for 200 ms is
  // counted lost and the loop goes on.
  BareLatency run_latency_block(std::uint64_t round_trips);

  // `messages` writes of message_size bytes, then the peer's acknowledgement
  // (udp: the peer's count, after all arrived or 20 ms of silence once
  // everything was sent).
  BareStream run_stream_block(std::uint64_t messages);

  // Blocks of growing count (as Google Benchmark estimates iterations) until
  // one lasts `duration`; returns that block. The shorter blocks before it
  // are warm-up and estimate, and are dropped.
  BareLatency run_latency_for(std::chrono::nanoseconds duration);
  BareStream run_stream_for(std::chrono::nanoseconds duration);

  pid_t peer_pid() const noexcept { return pid_; }
  // A pidfd of the peer (readable once it exits), for the runner's watchdog.
  int peer_pidfd() const noexcept { return pidfd_.get(); }
  // Bumps `progress` after each round trip or message of a block (one
  // relaxed store, as the patterns do for the watchdog).
  void watch_progress(std::atomic<std::uint64_t>& progress) noexcept { progress_ = &progress; }
  BareFamily family() const noexcept { return family_; }
  std::size_t message_size() const noexcept { return size_; }

 private:
  struct Report {
    std::uint64_t value = 0;
    std::uint64_t extra = 0;
  };

  void make_objects(posix::Fd& peer_in, posix::Fd& peer_out);
  void start_peer(int peer_in, int peer_out, int peer_ctl, int peer_report);
  void check_usable() const;
  void send_command(std::uint64_t op, std::uint64_t count);
  Report await_report(std::chrono::milliseconds timeout, const char* what);
  // Kills (if alive) and reaps the peer; returns how it ended, for messages.
  std::string abandon() noexcept;
  [[noreturn]] void fail(const std::string& what, int err);
  [[noreturn]] void io_failed(const char* what, long result);
  std::string prefix() const;

  template <bool kSocket>
  void put(const std::byte* p, std::size_t n);
  template <bool kSocket>
  void get(std::byte* p, std::size_t n);
  template <bool kSocket>
  void latency_loop(std::uint64_t round_trips);
  template <bool kSocket>
  void stream_loop(std::uint64_t messages);
  BareLatency udp_latency_block(std::uint64_t round_trips);
  BareStream udp_stream_block(std::uint64_t messages);

  BareFamily family_;
  std::size_t size_;
  int peer_cpu_;
  const Clock& clock_;
  Histogram hist_;
  std::unique_ptr<std::byte[]> send_buf_;
  std::unique_ptr<std::byte[]> recv_buf_;
  std::size_t recv_cap_ = 0;
  posix::Fd out_;     // data to the peer
  posix::Fd in_;      // data from the peer (empty for sockets: out_ both ways)
  posix::Fd ctl_;     // commands to the peer
  posix::Fd report_;  // the peer's reports
  pid_t pid_ = -1;
  posix::Fd pidfd_;
  std::atomic<std::uint64_t> unwatched_{0};
  std::atomic<std::uint64_t>* progress_ = &unwatched_;
  bool reaped_ = false;
  std::string broken_;     // why no block can run any more; empty while usable
  std::uint64_t seq_ = 0;  // udp: stamped on each request, so a late reply is told apart
};

}  // namespace ipcbench
