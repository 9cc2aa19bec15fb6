// Shared POSIX helpers: interrupt flag, errno conversion and the texts that
// name an exhausted limit.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <string>
#include <system_error>

#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/limits.hpp"
#include "mechanisms/posix/retry.hpp"

namespace ipcbench {
namespace posix {
namespace {
std::atomic<bool> g_interrupt{false};
std::atomic<const char*> g_reason{"interrupted"};
std::atomic<int> g_stop_signal{0};
}  // namespace

void request_stop(int signal) noexcept {
  g_stop_signal.store(signal);
  request_interrupt("interrupted by a signal");
}

int stop_signal() noexcept { return g_stop_signal.load(); }

std::atomic<bool>& interrupt_flag() noexcept { return g_interrupt; }

const char* interrupt_reason() noexcept { return g_reason.load(std::memory_order_acquire); }

void request_interrupt(const char* reason) noexcept {
  g_reason.store(reason, std::memory_order_release);
  g_interrupt.store(true, std::memory_order_release);
}

void clear_interrupt() noexcept { g_interrupt.store(false, std::memory_order_release); }

void throw_if_interrupted() {
  if (g_interrupt.load(std::memory_order_acquire)) throw PeerLost(interrupt_reason());
}

void throw_errno(const std::string& what) { throw_errno(errno, what); }

void throw_errno(int err, const std::string& what) {
  // Any descriptor may be the one over the limit: say which limit, unless
  // the caller already did (mq_open's EMFILE can also mean RLIMIT_MSGQUEUE).
  const bool named =
      what.find("RLIMIT_") != std::string::npos || what.find("fs.file-max") != std::string::npos;
  throw std::system_error(err, std::generic_category(), named ? what : what + fd_limit_hint(err));
}

namespace {

std::string format_bytes(unsigned long long bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char text[32];
  if (unit == 0) {
    std::snprintf(text, sizeof text, "%llu B", bytes);
  } else {
    std::snprintf(text, sizeof text, "%.1f %s", v, kUnits[unit]);
  }
  return text;
}

std::string rlimit_text(int resource) {
  rlimit rl{};
  if (::getrlimit(resource, &rl) != 0) return "?";
  if (rl.rlim_cur == RLIM_INFINITY) return "unlimited";
  return std::to_string(rl.rlim_cur);
}

std::string proc_text(const char* path) {
  std::ifstream in(path);
  std::string value;
  if (!(in >> value)) return "?";
  return value;
}

// Whether this process can open one more descriptor (EMFILE from mq_open is
// then RLIMIT_MSGQUEUE, not RLIMIT_NOFILE).
bool descriptor_available() {
  const int fd = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return errno != EMFILE;
  ::close(fd);
  return true;
}

}  // namespace

std::string fd_limit_hint(int err) {
  if (err == EMFILE) {
    return " (the open-file limit (RLIMIT_NOFILE, " + rlimit_text(RLIMIT_NOFILE) +
           ") is reached: raise it with `ulimit -n`)";
  }
  if (err == ENFILE) {
    return " (the system-wide open-file limit (fs.file-max, " + proc_text("/proc/sys/fs/file-max") +
           ") is reached: close files or raise it with `sysctl fs.file-max`)";
  }
  return "";
}

std::string dev_shm_full(std::size_t needed) {
  std::string text = "/dev/shm is full";
  struct statvfs fs {};
  if (::statvfs("/dev/shm", &fs) == 0) {
    text += " (size " + format_bytes(static_cast<unsigned long long>(fs.f_blocks) * fs.f_frsize) +
            ", free " + format_bytes(static_cast<unsigned long long>(fs.f_bavail) * fs.f_frsize);
    if (needed != 0) text += ", " + format_bytes(needed) + " needed";
    text += ")";
  }
  return text + ": free space or mount it larger";
}

std::string shm_hint(int err, std::size_t bytes) {
  if (err == ENOSPC || err == ENOMEM || err == EFBIG) return " (" + dev_shm_full(bytes) + ")";
  return fd_limit_hint(err);
}

void reserve_shm(int fd, std::size_t size, const std::string& what) {
  int err = EINTR;
  while (err == EINTR) err = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (err == 0 || err == EOPNOTSUPP || err == ENOSYS) return;  // reserved, or cannot be
  throw std::system_error(
      err, std::generic_category(),
      "cannot reserve " + format_bytes(size) + " for " + what + shm_hint(err, size));
}

std::string mq_hint(int err, long maxmsg, long msgsize) {
  switch (err) {
    case EMFILE:
      if (!descriptor_available()) return fd_limit_hint(EMFILE);
      return " (the POSIX message queue limit (RLIMIT_MSGQUEUE, " + rlimit_text(RLIMIT_MSGQUEUE) +
             " bytes per user) is reached: raise it with `ulimit -q` or close other queues)";
    case ENFILE:
      return fd_limit_hint(ENFILE);
    case ENOSPC:
      return " (the POSIX message queue limit (fs.mqueue.queues_max, " +
             proc_text("/proc/sys/fs/mqueue/queues_max") +
             " queues) is reached: remove queues or raise it with `sysctl fs.mqueue.queues_max`)";
    case EINVAL:
      return " (mq_maxmsg " + std::to_string(maxmsg) + " or mq_msgsize " + std::to_string(msgsize) +
             " is above the limit (fs.mqueue.msg_max " + proc_text("/proc/sys/fs/mqueue/msg_max") +
             ", fs.mqueue.msgsize_max " + proc_text("/proc/sys/fs/mqueue/msgsize_max") +
             "): raise it with `sysctl fs.mqueue.msg_max=N fs.mqueue.msgsize_max=N`)";
    case ENOMEM:
      return " (out of memory for the queue)";
    case EEXIST:
      return " (a queue of that name exists: left by a crashed run? try `ipcbench clean`)";
    case ENOSYS:
      return " (this kernel has no POSIX message queues)";
    default:
      return "";
  }
}

std::string sysv_msg_hint(int err) {
  switch (err) {
    case ENOSPC:
      return " (the System V message queue limit (kernel.msgmni, " +
             proc_text("/proc/sys/kernel/msgmni") +
             " queues) is reached: remove queues (ipcs -q, ipcrm; `ipcbench clean` for ours) or "
             "raise it with `sysctl kernel.msgmni`)";
    case ENOMEM:
      return " (out of memory for the queue)";
    case ENOSYS:
      return " (this kernel has no System V IPC)";
    default:
      return fd_limit_hint(err);
  }
}

}  // namespace posix
}  // namespace ipcbench
