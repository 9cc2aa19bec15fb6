// Helpers shared by the Boost.Interprocess mechanisms (boost-shm, boost-mq):
// error conversion, /dev/shm space checks and reservation, a pidfd watch on
// the peer process, the object log calls and a guard that removes a named
// object. Header-only.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <cerrno>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/limits.hpp"
#include "mechanisms/posix/object_log.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench::mech::boost_ipc {

// Setup failures: a system_error naming the object (runtime_error if Boost
// gives no errno); an exhausted limit (full /dev/shm, descriptors) says which
// and what to do.
[[noreturn]] inline void rethrow_setup(const boost::interprocess::interprocess_exception& e,
                                       const std::string& what) {
  const int err = e.get_native_error();
  std::string message = what + " (" + e.what() + ")";
  if (err == ENOSPC || err == ENOMEM) message += ": " + posix::dev_shm_full(0);
  if (err == EMFILE || err == ENFILE) message += posix::fd_limit_hint(err);
  if (err != 0) throw std::system_error(err, std::generic_category(), message);
  throw std::runtime_error(message);
}

// The object log for Boost's named objects, which live in /dev/shm as POSIX
// shared memory ("ipcbench.<pid>...." without the leading slash).
inline objects::Object logged_object(const std::string& name) {
  return objects::posix_shm("/" + name);
}

// Creates a named object with `create()` (Boost's create_only
// constructor), recorded in the object log before it exists. When creation
// fails, a half-made object is removed (not when the name was taken:
// that object is someone else's) and the failure rethrown as rethrow_setup
// does, naming `what`.
template <class Object, class Create>
auto create_logged(const std::string& name, const std::string& what, Create create)
    -> decltype(create()) {
  objects::creating(logged_object(name));
  try {
    return create();
  } catch (const boost::interprocess::interprocess_exception& e) {
    if (e.get_error_code() != boost::interprocess::already_exists_error) {
      Object::remove(name.c_str());
    }
    objects::removed(logged_object(name));
    rethrow_setup(e, what);
  }
}

// Failures after setup: a system_error (EIO if Boost gives no errno) saying
// "<mechanism>: <what> failed (<Boost's message>)".
[[noreturn]] inline void rethrow_runtime(const boost::interprocess::interprocess_exception& e,
                                         std::string_view mechanism, const char* what) {
  const int err = e.get_native_error();
  throw std::system_error(err != 0 ? err : EIO, std::generic_category(),
                          std::string(mechanism) + ": " + what + " failed (" + e.what() + ")");
}

// tmpfs accepts any ftruncate and fails with SIGBUS at the first page it
// cannot back: check that /dev/shm has `bytes` free before creating `what`
// (named in the message), so the error is an exception, not a crash. Throws
// std::system_error(ENOSPC); does nothing if /dev/shm cannot be examined.
inline void check_dev_shm_space(std::size_t bytes, const std::string& what) {
  struct statvfs fs {};
  if (::statvfs("/dev/shm", &fs) != 0) return;  // not a separate mount: nothing to learn
  const auto available = static_cast<std::size_t>(fs.f_bavail) * fs.f_frsize;
  if (available < bytes) {
    throw std::system_error(ENOSPC, std::generic_category(),
                            "cannot create " + what + ": " + posix::dev_shm_full(bytes));
  }
}

// Backs every page of the POSIX shared memory object `name` (no leading
// slash) now (posix_fallocate), so a later access cannot die of SIGBUS when
// /dev/shm fills up. Throws std::system_error when /dev/shm is full; carries
// on unreserved on a file system without fallocate.
inline void reserve_pages(const std::string& name) {
  posix::Fd fd(::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0));
  if (!fd) posix::throw_errno("cannot reopen /dev/shm/" + name);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) posix::throw_errno("cannot stat /dev/shm/" + name);
  posix::reserve_shm(fd.get(), static_cast<std::size_t>(st.st_size), "/dev/shm/" + name);
}

// Watches the other process through a pidfd, readable once it has exited.
// Without one (same process, or pidfd_open unavailable) it never reports.
class PeerWatch {
 public:
  PeerWatch() = default;
  explicit PeerWatch(pid_t pid) : pid_(pid) {
    if (pid > 0 && pid != ::getpid()) {
      fd_ = posix::pidfd_open(pid);
    }
  }
  bool exited() const noexcept {
    if (!fd_) return false;
    posix::count_syscall();
    return posix::pidfd_exited(fd_.get());
  }
  pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_ = 0;
  posix::Fd fd_;
};

// Removes the named object on destruction (with Object::remove, e.g.
// boost::interprocess::shared_memory_object or message_queue) unless already
// removed, and says so in the object log. Arm it once the object exists.
template <class Object>
class NameGuard {
 public:
  NameGuard() = default;
  NameGuard(const NameGuard&) = delete;
  NameGuard& operator=(const NameGuard&) = delete;
  ~NameGuard() { remove(); }
  void arm(std::string name) { name_ = std::move(name); }
  void remove() noexcept {
    if (!name_.empty()) {
      Object::remove(name_.c_str());
      objects::removed(logged_object(name_));
      name_.clear();
    }
  }

 private:
  std::string name_;
};

}  // namespace ipcbench::mech::boost_ipc
