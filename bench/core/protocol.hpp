// The harness's wire format: every message starts with a 16-byte header that
// the receiver checks, so a lost, duplicated, reordered or corrupted message
// fails the case instead of being counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <span>
#include <string>

namespace ipcbench {

// Smallest message a run accepts: the header must fit.
inline constexpr std::size_t kHeaderBytes = 16;
// Size of control messages (handshake, statistics, the peer's one-way
// spectrum), independent of the case. Never timed.
inline constexpr std::size_t kControlBytes = 512;

// What the receiver of a message must do with it.
enum class Kind : std::uint8_t {
  kHello = 1,         // peer -> runner: connected; payload HelloPayload
  kEcho = 2,          // runner -> peer: send this message back unchanged
  kSink = 3,          // runner -> peer: verify and drop
  kSinkAck = 4,       // runner -> peer: verify, then reply kAck
  kAck = 5,           // peer -> runner: payload AckPayload
  kStats = 6,         // runner -> peer: reply kStatsReply with resource usage
  kStatsReply = 7,    // peer -> runner: payload StatsPayload
  kBye = 8,           // runner -> peer: exit cleanly
  kCount = 9,         // runner -> peer: reply kAck with the count (lossy mechanisms:
                      // asks again when an acknowledgement was lost)
  kEchoStamped = 10,  // runner -> peer (async): record one-way latency from the
                      // stamp (CLOCK_MONOTONIC ns), then echo unchanged
  kOneWay = 11,       // runner -> peer: reply kOneWayReply with the one-way spectrum
  kOneWayReply = 12,  // peer -> runner: payload OneWayPayload
};

// Layout at offset 0 of every message (host byte order: both ends are on
// hosts of the same kind; a mismatch shows up as a failed check).
struct MessageHeader {
  std::uint32_t seq;          // runner's sequence number, +1 per message
  std::uint32_t length_kind;  // message length (low 28 bits) | kind << 28
  std::uint64_t stamp;        // send timestamp (async mode); 0 otherwise
};
static_assert(sizeof(MessageHeader) == kHeaderBytes);

inline constexpr std::uint32_t kLengthMask = (1u << 28) - 1;

// The header's length_kind word for a message of `length` bytes and `kind`.
inline std::uint32_t pack_length_kind(std::size_t length, Kind kind) noexcept {
  return static_cast<std::uint32_t>(length) | (static_cast<std::uint32_t>(kind) << 28);
}

inline void write_header(std::byte* msg, std::uint32_t seq, std::size_t length, Kind kind,
                         std::uint64_t stamp = 0) noexcept {
  const MessageHeader h{seq, pack_length_kind(length, kind), stamp};
  std::memcpy(msg, &h, sizeof h);
}

inline MessageHeader read_header(const std::byte* msg) noexcept {
  MessageHeader h;
  std::memcpy(&h, msg, sizeof h);
  return h;
}

inline Kind kind_of(const MessageHeader& h) noexcept {
  return static_cast<Kind>(h.length_kind >> 28);
}
inline std::size_t length_of(const MessageHeader& h) noexcept {
  return h.length_kind & kLengthMask;
}

struct HelloPayload {
  std::int32_t pid;
  std::int32_t cpu;  // CPU the peer runs on, read back after pinning
};

struct StatsPayload {
  std::uint64_t cpu_ns;            // user + system CPU time of the peer
  std::uint64_t context_switches;  // voluntary + involuntary
  std::uint64_t verify_ns = 0;     // --verify full: checking sinks since the last kStats
  // System calls of the peer's threads since the last kStats
  // (SyscallCounter); kNotCounted where they cannot be counted.
  std::uint64_t syscalls = kNotCounted;
  // ipcbench's own system calls on the peer's echo thread since the
  // last kStats (posix::own_syscall_count): counted everywhere.
  std::uint64_t own_syscalls = 0;
  static constexpr std::uint64_t kNotCounted = ~std::uint64_t{0};
};

struct AckPayload {
  std::uint64_t received;  // data messages received since the last kStats
};

// Percentiles of every spectrum the suite writes (the "histogram" and
// "oneway_histogram" fields; reports draw percentile curves from them).
inline constexpr double kSpectrumPercentiles[] = {
    0,     10,   20, 25,   30, 40,    50,   60,    70,   75,    80,    85,     90,     92.5, 95,
    96.25, 97.5, 98, 98.5, 99, 99.25, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999, 100};
inline constexpr std::size_t kSpectrumPoints = std::size(kSpectrumPercentiles);

// The peer's one-way latency distribution since the last kStats: count,
// min, max, mean and the value at each of kSpectrumPercentiles.
struct OneWayPayload {
  std::uint64_t count;
  std::uint64_t min_ns;
  std::uint64_t max_ns;
  double mean_ns;
  std::uint64_t value_ns[kSpectrumPoints];
};
static_assert(kHeaderBytes + sizeof(OneWayPayload) <= kControlBytes);

// Payload pattern for --verify full: every byte after the header depends on
// the sequence number and its offset, so a stale or shifted buffer fails.
inline std::byte pattern_byte(std::uint32_t seq, std::size_t offset) noexcept {
  return static_cast<std::byte>((seq * 131u + static_cast<std::uint32_t>(offset) * 7u) >> 3);
}

void fill_pattern(std::span<std::byte> msg, std::uint32_t seq) noexcept;
// Returns the offset of the first wrong byte, or msg.size() when all match.
std::size_t check_pattern(std::span<const std::byte> msg, std::uint32_t seq) noexcept;

// Checks a received data message; returns an empty string when it is the
// expected one, else what is wrong.
std::string check_message(std::span<const std::byte> msg, std::size_t received,
                          std::uint32_t expected_seq, std::size_t expected_size, Kind expected_kind,
                          bool full);

}  // namespace ipcbench
