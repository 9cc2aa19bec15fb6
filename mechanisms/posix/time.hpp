// Small process and time helpers shared by mechanisms and the harness.
#pragma once

#include <poll.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "mechanisms/posix/fd.hpp"

namespace ipcbench::posix {

// A duration as the timespec that ppoll, futex and nanosleep take; negative
// durations become zero.
inline timespec to_timespec(std::chrono::nanoseconds d) noexcept {
  const std::int64_t ns = std::max<std::int64_t>(d.count(), 0);
  return {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// A pidfd for `pid` (readable once the process has exited); empty when the
// kernel has none or the process is gone.
inline Fd pidfd_open(pid_t pid) noexcept {
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

// Whether the process behind `pidfd` has exited (a poll that does not wait;
// one system call, which the caller counts where it counts them).
inline bool pidfd_exited(int pidfd) noexcept {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace ipcbench::posix
