// A seccomp filter for a test's child process: the listed system calls fail
// with a chosen errno, every other one is allowed. Installed in run_command's
// before_exec hook (tests/support/run.hpp), it stands for a container's or a
// service's system-call policy, so a test can check that a mechanism the
// policy refuses is skipped with a reason, never failed. The filter is
// inherited by everything the child starts (the peer too) and cannot be
// removed.
#pragma once

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace testproc {

#if defined(__x86_64__)
inline constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
inline constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "tests/support/seccomp.hpp knows no audit architecture for this CPU"
#endif

// Most system calls one filter denies.
inline constexpr std::size_t kMaxDenied = 16;

// Makes each system call of `numbers` (SYS_...) fail with `err` in this
// process and its future children: PR_SET_NO_NEW_PRIVS, then a BPF filter
// that first checks the architecture (a call made under another ABI, whose
// numbers mean other calls, kills the process: another architecture, or
// x32 on x86-64) and then the number. Makes
// no allocation, so it may run between fork and exec. False, with errno
// set, when the kernel refuses either prctl (E2BIG: more than kMaxDenied).
inline bool deny_syscalls(std::initializer_list<int> numbers, int err) noexcept {
  if (numbers.size() > kMaxDenied) {
    errno = E2BIG;
    return false;
  }
  // Up to 6 to check the architecture (and x32) and load the number, one
  // jump per denied call, then "allow" and "fail with err".
  std::array<sock_filter, 6 + kMaxDenied + 2> program{};
  std::size_t n = 0;
  program[n++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
  program[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0);
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  program[n++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
#if defined(__x86_64__)
  // x32 calls share the architecture but not the numbers: kill them too.
  program[n++] = BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1);
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
  std::size_t left = numbers.size();
  for (const int number : numbers) {
    // Past the jumps still to come and the "allow": to "fail with err".
    const auto to_deny = static_cast<unsigned char>(left);
    program[n++] =
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(number), to_deny, 0);
    --left;
  }
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  program[n++] = BPF_STMT(BPF_RET | BPF_K,
                          SECCOMP_RET_ERRNO | (static_cast<std::uint32_t>(err) & SECCOMP_RET_DATA));
  const sock_fprog filter{static_cast<unsigned short>(n), program.data()};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) != 0) return false;
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter, 0UL, 0UL) == 0;
}

}  // namespace testproc
