// The runner's end of the wire protocol over an established channel: the
// sequence numbers its messages take, and the control requests it puts to
// the peer (statistics, counts, the one-way spectrum, goodbye). The patterns
// talk to the peer only through this and the channel, so they run the same
// over a spawned peer process (PeerSession owns one of these) and over an
// in-process loopback in a test.
#pragma once

#include <cstdint>
#include <vector>

#include "bench/core/protocol.hpp"
#include "mechanisms/mechanism.hpp"

namespace ipcbench {

class PeerLink {
 public:
  // `max_message`: the case's largest message (a lossy control round trip
  // may meet a late echo of that size). The channel must outlive this.
  PeerLink(Channel& channel, bool lossy, std::size_t max_message);

  Channel& channel() noexcept { return channel_; }
  // True when the mechanism may drop messages.
  bool lossy() const noexcept { return lossy_; }

  // The runner's next sequence number; every message it sends takes one.
  std::uint32_t next_seq = 1;

  // Receives the peer's hello (seq 0, the first message on the channel).
  // Throws ProtocolError for anything else.
  HelloPayload receive_hello();

  // Asks the peer for its CPU time and context switches (a control round
  // trip, outside any timed region); also resets the peer's receive counter.
  StatsPayload peer_stats();
  // Lossy mechanisms: asks the peer how many data messages it has received
  // since the last peer_stats() (retrying if a request or reply is lost).
  AckPayload peer_count();
  // The peer's one-way latency spectrum since the last peer_stats().
  OneWayPayload peer_oneway();

  // Tells the peer to leave, without ever blocking (the peer may be hung
  // with a full queue). Never throws.
  void say_bye() noexcept;

 private:
  // Sends a control request and returns the matching reply's payload start.
  // Over a lossy mechanism a lost request or reply is retried.
  const std::byte* control_round_trip(Kind request, Kind reply);

  Channel& channel_;
  bool lossy_ = false;
  std::vector<std::byte> control_;
};

}  // namespace ipcbench
