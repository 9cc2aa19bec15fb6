// The one futex wrapper: the shared-memory ring's waits and wake-ups, and
// the calibration's futex round trip. Not FUTEX_PRIVATE: the words live in
// memory shared between processes. Each call is one of ipcbench's own
// system calls (syscall_tally.hpp).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "mechanisms/posix/syscall_tally.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench::posix {

inline long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value,
                  const timespec* timeout) noexcept {
  count_syscall();
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr,
                   0);
}

// Wakes one waiter on `word`.
inline void futex_wake(std::atomic<std::uint32_t>* word) noexcept {
  futex(word, FUTEX_WAKE, 1, nullptr);
}

// Sleeps while *word == expected, at most `timeout`: 0 after a wake-up,
// else -1 with errno ETIMEDOUT, EAGAIN (the value had already changed) or
// EINTR (a signal).
inline long futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) noexcept {
  const timespec ts = to_timespec(timeout);
  return futex(word, FUTEX_WAIT, expected, &ts);
}

}  // namespace ipcbench::posix
