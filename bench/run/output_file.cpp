#include "bench/run/output_file.hpp"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace ipcbench {
namespace {

constexpr long kProcSuperMagic = 0x9fa0;  // PROC_SUPER_MAGIC (linux/magic.h)
constexpr int kMaxLinks = 40;             // as the kernel's path walk

std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string quoted(const std::string& path) { return "'" + path + "'"; }

// The descriptor a /dev/stdout-style path names: /dev/stdin|stdout|stderr,
// /dev/fd/N, /proc/self/fd/N, /proc/thread-self/fd/N, /proc/<our pid>/fd/N.
// Written through the descriptor itself, so a pipe, a socket or a file
// opened for appending behaves as the shell set it up.
std::optional<int> descriptor_path(std::string_view path) {
  if (path == "/dev/stdin") return 0;
  if (path == "/dev/stdout") return 1;
  if (path == "/dev/stderr") return 2;
  const std::string own = "/proc/" + std::to_string(::getpid()) + "/fd/";
  for (const std::string_view prefix :
       {std::string_view("/dev/fd/"), std::string_view("/proc/self/fd/"),
        std::string_view("/proc/thread-self/fd/"), std::string_view(own)}) {
    if (!path.starts_with(prefix)) continue;
    const std::string_view digits = path.substr(prefix.size());
    int fd = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), fd);
    if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty()) return fd;
  }
  return std::nullopt;
}

bool on_procfs(const std::string& path) {
  struct statfs fs {};
  return ::statfs(directory_of(path).c_str(), &fs) == 0 &&
         static_cast<long>(fs.f_type) == kProcSuperMagic;
}

// Probes that a new file can be made in `dir` (and removed again).
void check_directory_writable(const std::string& dir, const std::string& shown) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    throw std::invalid_argument("cannot write output file " + quoted(shown) + ": directory " +
                                quoted(dir) + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    throw std::invalid_argument("cannot write output file " + quoted(shown) + ": " + quoted(dir) +
                                " is not a directory");
  }
  std::string probe = dir + "/.ipcbench-probe-XXXXXX";
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) {
    throw std::invalid_argument("cannot write output file " + quoted(shown) + ": " +
                                std::strerror(errno));
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

// Clears O_NONBLOCK (needed only to open a FIFO without hanging).
void make_blocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0 && (flags & O_NONBLOCK) != 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

}  // namespace

OutputFile OutputFile::open(const std::string& path) {
  if (path.empty()) throw std::invalid_argument("output path is empty");
  OutputFile out;
  out.name_ = path == "-" ? std::string("standard output") : path;

  // Standard output, or a descriptor named by path.
  auto use_descriptor = [&](int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) {
      throw std::invalid_argument("cannot write output " + quoted(path) + ": descriptor " +
                                  std::to_string(fd) + " is not open");
    }
    if ((flags & O_ACCMODE) == O_RDONLY) {
      throw std::invalid_argument("cannot write output " + quoted(path) + ": descriptor " +
                                  std::to_string(fd) + " is open for reading only");
    }
    out.stream_ = posix::Fd(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
    if (!out.stream_) {
      throw std::invalid_argument("cannot write output " + quoted(path) + ": " +
                                  std::strerror(errno));
    }
    out.is_stdout_ = fd == STDOUT_FILENO;
    return std::move(out);
  };
  if (path == "-") return use_descriptor(STDOUT_FILENO);

  // Follow symlinks by hand: the link stays, its final target is what we
  // write. A link on /proc (a process's fd) is the kernel's to follow.
  std::string current = path;
  for (int hop = 0;; ++hop) {
    if (const auto fd = descriptor_path(current)) return use_descriptor(*fd);
    struct stat st {};
    if (::lstat(current.c_str(), &st) != 0) {
      if (errno != ENOENT) {
        throw std::invalid_argument("cannot write output file " + quoted(path) + ": " +
                                    std::strerror(errno));
      }
      // A new file (or a dangling link's target): it is created at the end.
      check_directory_writable(directory_of(current), path);
      out.target_ = current;
      return out;
    }
    if (S_ISLNK(st.st_mode) && !on_procfs(current)) {
      if (hop == kMaxLinks) {
        throw std::invalid_argument("output path " + quoted(path) +
                                    ": too many levels of symbolic links");
      }
      char buf[PATH_MAX];
      const ssize_t n = ::readlink(current.c_str(), buf, sizeof buf);
      if (n < 0 || static_cast<std::size_t>(n) >= sizeof buf) {
        throw std::invalid_argument("cannot read symbolic link " + quoted(current) + ": " +
                                    std::strerror(n < 0 ? errno : ENAMETOOLONG));
      }
      const std::string link(buf, static_cast<std::size_t>(n));
      current = link.starts_with('/') ? link : directory_of(current).append("/").append(link);
      continue;
    }
    if (S_ISREG(st.st_mode)) {
      check_directory_writable(directory_of(current), path);
      out.target_ = current;
      return out;
    }
    if (S_ISDIR(st.st_mode)) {
      throw std::invalid_argument("output path " + quoted(path) + " is a directory");
    }
    if (S_ISBLK(st.st_mode)) {
      throw std::invalid_argument("output path " + quoted(path) +
                                  " is a block device: give a file, a FIFO or '-'");
    }
    if (S_ISSOCK(st.st_mode)) {
      throw std::invalid_argument("output path " + quoted(path) +
                                  " is a socket: give a file, a FIFO or '-'");
    }
    // A character device, a FIFO or a /proc link: write through it. Opened
    // non-blocking, so a FIFO without a reader fails now (ENXIO) instead of
    // blocking; O_TRUNC does nothing to a device or FIFO and empties a file
    // reached through /proc, as the shell's '>' would.
    out.stream_ =
        posix::Fd(::open(current.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_TRUNC));
    if (!out.stream_) {
      if (errno == ENXIO && S_ISFIFO(st.st_mode)) {
        throw std::invalid_argument("output FIFO " + quoted(path) +
                                    " has no reader: start its reader first");
      }
      throw std::invalid_argument("cannot open output " + quoted(path) + ": " +
                                  std::strerror(errno));
    }
    make_blocking(out.stream_.get());
    return out;
  }
}

void OutputFile::write(const std::string& text) {
  if (stream_) {
    write_through(text);
  } else {
    replace(text);
  }
}

void OutputFile::write_through(const std::string& text) {
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(stream_.get(), text.data() + off, text.size() - off);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {  // an inherited non-blocking descriptor
      pollfd p{.fd = stream_.get(), .events = POLLOUT, .revents = 0};
      (void)::poll(&p, 1, -1);
      continue;
    }
    const int e = n < 0 ? errno : EIO;
    stream_.reset();
    throw std::runtime_error("cannot write " + name_ + ": " + std::strerror(e));
  }
  const int fd = stream_.release();
  if (::close(fd) != 0 && errno != EINTR) {
    throw std::runtime_error("cannot write " + name_ + ": " + std::strerror(errno));
  }
}

void OutputFile::replace(const std::string& text) {
  const std::string dir = directory_of(target_);
  std::string tmp = dir + "/.ipcbench-out-XXXXXX";
  posix::Fd fd(::mkstemp(tmp.data()));
  auto fail = [&](int e) {
    fd.reset();
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + name_ + ": " + std::strerror(e));
  };
  if (!fd) throw std::runtime_error("cannot write " + name_ + ": " + std::strerror(errno));
  // Keep an existing file's permissions; a new one gets rw-r--r--.
  struct stat st {};
  const mode_t mode = ::stat(target_.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
  if (::fchmod(fd.get(), mode) != 0) fail(errno);
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(n < 0 ? errno : EIO);
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) fail(errno);
  if (::close(fd.release()) != 0) fail(errno);
  if (::rename(tmp.c_str(), target_.c_str()) != 0) fail(errno);
}

void redirect_stdout_to_stderr() {
  std::cout.flush();
  std::fflush(stdout);
  ::dup2(STDERR_FILENO, STDOUT_FILENO);
}

}  // namespace ipcbench
