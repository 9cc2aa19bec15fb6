// Open-loop send schedule: message i is due at t0 + i * 1e9 / rate ns,
// computed exactly in integers (no accumulated rounding), so message number
// one billion is as punctual as message ten.
#pragma once

#include <cstdint>
#include <stdexcept>

namespace ipcbench {

class OpenLoopSchedule {
 public:
  // `start_ns`: when message 0 is due (CLOCK_MONOTONIC ns); `rate`: messages
  // per second, >= 1 (throws std::invalid_argument otherwise).
  OpenLoopSchedule(std::uint64_t start_ns, std::uint64_t rate) : start_ns_(start_ns), rate_(rate) {
    if (rate == 0) throw std::invalid_argument("open-loop rate must be at least 1 per second");
  }

  // When message `i` is due, in ns on the same clock as start_ns (rounded
  // down to the ns).
  std::uint64_t due_ns(std::uint64_t i) const noexcept {
    return start_ns_ + static_cast<std::uint64_t>(static_cast<Wide>(i) * 1'000'000'000u / rate_);
  }

  std::uint64_t start_ns() const noexcept { return start_ns_; }
  std::uint64_t rate() const noexcept { return rate_; }

 private:
  __extension__ typedef unsigned __int128 Wide;  // GCC/Clang builtin: i * 1e9 never overflows

  std::uint64_t start_ns_;
  std::uint64_t rate_;
};

}  // namespace ipcbench
