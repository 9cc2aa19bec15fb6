// The peer's end of the wire protocol: echoes, sinks, acknowledgements,
// statistics and the one-way spectrum, until the runner says goodbye. The
// peer process runs it over its mechanism's channel; a unit test runs it in
// a thread over an in-process loopback, against the same patterns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "bench/core/clock.hpp"
#include "bench/core/histogram.hpp"
#include "bench/core/protocol.hpp"
#include "bench/core/syscall_count.hpp"
#include "mechanisms/mechanism.hpp"

namespace ipcbench {

struct EchoOptions {
  std::size_t max_message = 0;
  bool verify_full = false;  // check every payload byte (--verify full)
  bool lossy = false;        // the mechanism may drop messages: accept gaps
};

class EchoServer {
 public:
  // Allocates (and touches) its buffers. The channel must outlive this.
  EchoServer(Channel& channel, const EchoOptions& options);

  // Sends the hello the runner waits for: our pid and CPU, seq 0.
  void say_hello();
  // Serves until the runner's goodbye. Throws ProtocolError for a message
  // that fails verification (sequence, length, kind, payload), PeerLost when
  // the runner is gone.
  void serve();

 private:
  template <typename Payload>
  void reply(std::uint32_t seq, Kind kind, const Payload& payload);
  void echo_or_sink(std::span<const std::byte> in, const MessageHeader& h, Kind kind);
  void send_stats(std::uint32_t seq);
  void send_oneway(std::uint32_t seq);

  Channel& channel_;
  EchoOptions options_;
  std::vector<std::byte> buffer_;  // zero-filled: pages are touched now
  std::vector<std::byte> control_;
  std::uint32_t expected_ = 1;  // seq 0 is the hello; the runner starts at 1
  std::uint64_t received_ = 0;
  std::uint64_t verify_ns_ = 0;
  Histogram oneway_;
  DeferredStamp arrival_;
  std::unique_ptr<SyscallCounter> syscalls_;  // since the last kStats
  std::uint64_t own_mark_ = 0;                // the same, ipcbench's own calls
};

}  // namespace ipcbench
