// System-call helpers: EINTR retry that honours an interrupt request, and
// errno -> exception conversion for setup paths.
#pragma once

#include <atomic>
#include <cerrno>
#include <string>
#include <system_error>

#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/syscall_tally.hpp"

namespace ipcbench::posix {

// Set by the harness's watchdog (or a signal handler) when blocking calls of
// the current case must stop: the peer died, hung, or the user interrupted.
// Blocking calls are woken by a signal (EINTR); the retry loop below then
// throws instead of retrying. The hot path never reads it unless a syscall
// returned EINTR.
std::atomic<bool>& interrupt_flag() noexcept;

// Why the interrupt was requested, for the error message. Set before the flag.
const char* interrupt_reason() noexcept;
void request_interrupt(const char* reason) noexcept;
void clear_interrupt() noexcept;

// A stop asked by SIGINT/SIGTERM (set from the signal handler): the case in
// progress is interrupted and the remaining cases are not run. 0: none.
void request_stop(int signal) noexcept;
int stop_signal() noexcept;

// Throws PeerLost with the interrupt reason if an interrupt was requested.
void throw_if_interrupted();

// Calls fn() until it does not fail with EINTR; if an interrupt was requested
// meanwhile, throws PeerLost instead of retrying. Returns fn's result.
// Each attempt counts as one system call (fn makes one).
template <typename Fn>
auto retry_eintr(Fn&& fn) -> decltype(fn()) {
  for (;;) {
    count_syscall();
    auto r = fn();
    if (r != -1 || errno != EINTR) return r;
    throw_if_interrupted();
  }
}

// Throws std::system_error(errno, what).
[[noreturn]] void throw_errno(const std::string& what);
[[noreturn]] void throw_errno(int err, const std::string& what);

}  // namespace ipcbench::posix
