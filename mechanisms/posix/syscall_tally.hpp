// The system calls ipcbench's own code makes (the adapters and the
// harness's loops), counted on the calling thread where it makes them: in
// retry_eintr (each attempt), poll_for, the shared-memory ring's futex, the
// spinners' yields, the queues' status reads, the liveness polls and the
// open loop's sleeps. It works everywhere, unlike the kernel's tracepoint
// (bench/core/syscall_count.hpp), which needs perf_event_open; it does not see a
// library's own calls (ZeroMQ, Boost's mutexes) nor other threads' calls.
// A thread-local add: no atomic, no lock.
#pragma once

#include <cstdint>

namespace ipcbench::posix {

inline thread_local std::uint64_t own_syscall_count = 0;

inline void count_syscall() noexcept { ++own_syscall_count; }

}  // namespace ipcbench::posix
