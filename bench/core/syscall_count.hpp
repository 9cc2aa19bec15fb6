// Counts the system calls of this process's threads through the kernel's
// raw_syscalls:sys_enter tracepoint (perf_event_open, counting mode: no
// samples, no buffer, nothing on the hot path). Every thread the process
// has when the counter is opened is counted (ZeroMQ's I/O threads too),
// except those marked not_measured() (the runner's watchdog). Needs the
// tracepoint's id from tracefs and the permission to count it (root, or
// CAP_PERFMON; perf_event_paranoid 2 keeps others out; container seccomp
// profiles often block perf_event_open): where that is missing, open()
// says why and the figures are left out.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mechanisms/posix/fd.hpp"

namespace ipcbench {

class SyscallCounter {
 public:
  // Counters on every current thread of this process but the not-measured
  // ones, counting from now; nullptr when counting is not possible here,
  // with the reason in *why.
  static std::unique_ptr<SyscallCounter> open(std::string* why);

  // System calls since open(), summed over the threads; the read(2)s of
  // this and earlier read()s are not among them. Call it from the thread
  // that opened the counter.
  std::uint64_t read() const;

  // Whether counting works here, decided once per process (the reason when
  // not, empty when it does).
  static const std::string& unavailable_reason();

  // Marks the calling thread as not measured (a helper thread of the
  // harness whose calls are not the mechanism's).
  static void not_measured();

 private:
  SyscallCounter() = default;
  std::vector<posix::Fd> fds_;
  std::size_t own_index_ = 0;        // the fd that counts the thread calling read()
  mutable std::uint64_t reads_ = 0;  // read() calls so far
};

}  // namespace ipcbench
