#include "bench/core/syscall_count.hpp"

#include <dirent.h>
#include <linux/perf_event.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>

#include "mechanisms/posix/retry.hpp"

namespace ipcbench {
namespace {

constexpr const char* kIdFiles[] = {"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
                                    "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"};

std::mutex g_mutex;
std::set<pid_t> g_not_measured;  // guarded by g_mutex

long read_id() {
  for (const char* path : kIdFiles) {
    std::ifstream in(path);
    long id = -1;
    if (in >> id && id >= 0) return id;
  }
  return -1;
}

// The tracepoint's id; when root and tracefs is not mounted, mounts it at
// its usual place for the time it takes to read the id (as perf(1) does),
// then unmounts it: counting needs only the id, and a run leaves no mount
// behind.
long tracepoint_id() {
  long id = read_id();
  if (id < 0 && ::geteuid() == 0) {
    struct stat st {};
    if (::stat("/sys/kernel/tracing", &st) == 0 && S_ISDIR(st.st_mode) &&
        ::mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0) {
      id = read_id();
      ::umount2("/sys/kernel/tracing", MNT_DETACH);
    }
  }
  return id;
}

int open_counter(long id, pid_t tid) {
  perf_event_attr attr{};
  attr.type = PERF_TYPE_TRACEPOINT;
  attr.size = sizeof attr;
  attr.config = static_cast<std::uint64_t>(id);
  // Counting only: no sample period, enabled at once, this thread alone.
  return static_cast<int>(::syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
}

std::string paranoid_level() {
  std::ifstream in("/proc/sys/kernel/perf_event_paranoid");
  std::string level;
  return in >> level ? level : "unknown";
}

struct Availability {
  long id = -1;
  std::string reason;
};

const Availability& availability() {
  static const Availability a = [] {
    Availability r;
    r.id = tracepoint_id();
    if (r.id < 0) {
      r.reason =
          "no tracefs with the raw_syscalls:sys_enter tracepoint (as root: mount -t tracefs "
          "nodev /sys/kernel/tracing)";
      return r;
    }
    const int fd = open_counter(r.id, 0);
    if (fd < 0) {
      const int err = errno;
      r.reason = std::string("perf_event_open refused the syscall tracepoint: ") +
                 std::strerror(err) + " (perf_event_paranoid " + paranoid_level() +
                 "; root or CAP_PERFMON can count; container seccomp profiles block it)";
      r.id = -1;
      return r;
    }
    ::close(fd);
    return r;
  }();
  return a;
}

pid_t this_thread() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

}  // namespace

const std::string& SyscallCounter::unavailable_reason() { return availability().reason; }

void SyscallCounter::not_measured() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  g_not_measured.insert(this_thread());
}

std::unique_ptr<SyscallCounter> SyscallCounter::open(std::string* why) {
  const Availability& a = availability();
  if (a.id < 0) {
    if (why) *why = a.reason;
    return nullptr;
  }
  const pid_t self = this_thread();
  std::vector<pid_t> tids;
  {
    DIR* dir = ::opendir("/proc/self/task");
    if (dir == nullptr) {
      if (why) *why = std::string("cannot list /proc/self/task: ") + std::strerror(errno);
      return nullptr;
    }
    const std::lock_guard<std::mutex> lock(g_mutex);
    while (const dirent* e = ::readdir(dir)) {
      const long tid = std::strtol(e->d_name, nullptr, 10);
      if (tid > 0 && tid != self && !g_not_measured.count(static_cast<pid_t>(tid))) {
        tids.push_back(static_cast<pid_t>(tid));
      }
    }
    ::closedir(dir);
  }
  std::unique_ptr<SyscallCounter> c(new SyscallCounter());
  // Ours last: the perf_event_open calls for the other threads then come
  // before our own counter exists, and are not counted.
  tids.push_back(self);
  for (const pid_t tid : tids) {
    posix::Fd fd(open_counter(a.id, tid));
    if (!fd) {
      if (errno == ESRCH && tid != self) continue;  // the thread ended meanwhile
      if (why)
        *why = std::string("perf_event_open on thread ") + std::to_string(tid) + ": " +
               std::strerror(errno);
      return nullptr;
    }
    c->fds_.push_back(std::move(fd));
  }
  c->own_index_ = c->fds_.size() - 1;
  return c;
}

std::uint64_t SyscallCounter::read() const {
  auto value = [](int fd) {
    std::uint64_t v = 0;
    if (::read(fd, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) {
      posix::throw_errno("cannot read a system call counter");
    }
    return v;
  };
  // Our own counter first: it has counted the read(2) that returns it (the
  // tracepoint fires on entry) and every read(2) of earlier calls, but none
  // of this call's reads of the others.
  const std::uint64_t own = value(fds_[own_index_].get());
  const std::uint64_t ours = reads_ * fds_.size() + 1;
  reads_ += 1;
  std::uint64_t total = own > ours ? own - ours : 0;
  for (std::size_t i = 0; i < fds_.size(); ++i) {
    if (i != own_index_) total += value(fds_[i].get());
  }
  return total;
}

}  // namespace ipcbench
