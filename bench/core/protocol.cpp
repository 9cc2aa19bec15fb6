#include "bench/core/protocol.hpp"

namespace ipcbench {

void fill_pattern(std::span<std::byte> msg, std::uint32_t seq) noexcept {
  for (std::size_t i = kHeaderBytes; i < msg.size(); ++i) msg[i] = pattern_byte(seq, i);
}

std::size_t check_pattern(std::span<const std::byte> msg, std::uint32_t seq) noexcept {
  for (std::size_t i = kHeaderBytes; i < msg.size(); ++i) {
    if (msg[i] != pattern_byte(seq, i)) return i;
  }
  return msg.size();
}

std::string check_message(std::span<const std::byte> msg, std::size_t received,
                          std::uint32_t expected_seq, std::size_t expected_size, Kind expected_kind,
                          bool full) {
  if (received < kHeaderBytes) {
    return "truncated message: " + std::to_string(received) + " bytes";
  }
  const MessageHeader h = read_header(msg.data());
  if (h.seq != expected_seq) {
    return "sequence error: expected " + std::to_string(expected_seq) + ", got " +
           std::to_string(h.seq);
  }
  if (kind_of(h) != expected_kind) {
    return "unexpected message kind " + std::to_string(static_cast<int>(kind_of(h))) + " (seq " +
           std::to_string(h.seq) + ")";
  }
  if (length_of(h) != received || received != expected_size) {
    return "length error: expected " + std::to_string(expected_size) + " bytes, header says " +
           std::to_string(length_of(h)) + ", received " + std::to_string(received);
  }
  if (full) {
    const std::size_t bad = check_pattern(msg.first(received), h.seq);
    if (bad != received) {
      return "corrupted payload at byte " + std::to_string(bad) + " (seq " + std::to_string(h.seq) +
             ")";
    }
  }
  return {};
}

}  // namespace ipcbench
