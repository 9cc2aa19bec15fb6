// Busy-waiting, in one place for every spinner (shared memory's waits, the
// queues without a readiness source, the open loop's pacing, calibration):
// a pause between tries, and the CPU yielded on every try when both sides
// share one CPU (a spinner would otherwise wait out the other side's time
// slice).
#pragma once

#include <sched.h>

#include <atomic>
#include <chrono>

#include "mechanisms/posix/retry.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ipcbench::posix {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// One pause of a spin loop: yield the CPU when the side we wait for shares
// it, pause otherwise.
inline void relax(bool same_cpu) noexcept {
  if (same_cpu) {
    count_syscall();
    ::sched_yield();
  } else {
    cpu_relax();
  }
}

// Retries `ready()` until it returns true (true) or `timeout` passes
// (false). `check()` runs every 64 tries (interrupt flag, peer alive) and
// may throw. A fixed sleep would be cheaper for the CPU but would set the
// figure: a 50 us sleep on a ~80 us round trip doubled it.
template <typename Ready, typename Check>
bool spin_until(std::chrono::nanoseconds timeout, bool same_cpu, Ready ready, Check check) {
  using SteadyClock = std::chrono::steady_clock;
  const auto now = SteadyClock::now();
  const auto deadline = timeout >= SteadyClock::time_point::max() - now
                            ? SteadyClock::time_point::max()
                            : now + std::chrono::duration_cast<SteadyClock::duration>(timeout);
  for (unsigned tries = 0;; ++tries) {
    if (ready()) return true;
    if (tries % 64 == 0) {
      check();
      if (SteadyClock::now() >= deadline) return false;
    }
    relax(same_cpu);
  }
}

}  // namespace ipcbench::posix
