#include "bench/wire/peer_link.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "mechanisms/posix/errors.hpp"

namespace ipcbench {
namespace {

template <typename Payload>
Payload payload_at(const std::byte* p) noexcept {
  Payload out;
  std::memcpy(&out, p, sizeof out);
  return out;
}

}  // namespace

PeerLink::PeerLink(Channel& channel, bool lossy, std::size_t max_message)
    : channel_(channel), lossy_(lossy), control_(std::max(max_message, kControlBytes)) {}

HelloPayload PeerLink::receive_hello() {
  const std::size_t n = channel_.receive(control_);
  const std::string bad =
      check_message({control_.data(), n}, n, 0, kControlBytes, Kind::kHello, false);
  if (!bad.empty()) throw ProtocolError("peer hello: " + bad);
  return payload_at<HelloPayload>(control_.data() + kHeaderBytes);
}

StatsPayload PeerLink::peer_stats() {
  return payload_at<StatsPayload>(control_round_trip(Kind::kStats, Kind::kStatsReply));
}

OneWayPayload PeerLink::peer_oneway() {
  return payload_at<OneWayPayload>(control_round_trip(Kind::kOneWay, Kind::kOneWayReply));
}

AckPayload PeerLink::peer_count() {
  return payload_at<AckPayload>(control_round_trip(Kind::kCount, Kind::kAck));
}

void PeerLink::say_bye() noexcept {
  try {
    write_header(control_.data(), next_seq++, kControlBytes, Kind::kBye);
    const std::span<const std::byte> bye(control_.data(), kControlBytes);
    if (!channel_.try_send(bye) && channel_.wait_sendable(std::chrono::milliseconds(200))) {
      (void)channel_.try_send(bye);
    }
  } catch (...) {
  }
}

const std::byte* PeerLink::control_round_trip(Kind request, Kind reply) {
  if (!lossy_) {
    const std::uint32_t seq = next_seq++;
    write_header(control_.data(), seq, kControlBytes, request);
    channel_.send({control_.data(), kControlBytes});
    const std::size_t n = channel_.receive(control_);
    const std::string bad =
        check_message({control_.data(), n}, n, seq, kControlBytes, reply, false);
    if (!bad.empty()) throw ProtocolError("control reply: " + bad);
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
    channel_.send({control_.data(), kControlBytes});
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    for (;;) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) break;
      const auto n = channel_.receive_for(control_, left);
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

}  // namespace ipcbench
