// Fd: the one owner of a file descriptor (modelled on fmt::file).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace ipcbench::posix {

// Move-only owner of a file descriptor; -1 means empty. The destructor closes
// it and reports (never throws) a failed close. close() is not retried on
// EINTR: on Linux the descriptor is released even then.
class Fd {
 public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }

  // The raw descriptor, -1 when empty. Ownership stays here.
  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

  // Gives up ownership without closing; returns the descriptor.
  int release() noexcept { return std::exchange(fd_, -1); }

  // Closes the descriptor now (if any). Errors are reported on stderr.
  void reset() noexcept {
    if (fd_ >= 0) {
      if (::close(fd_) != 0 && errno != EINTR) {
        std::fprintf(stderr, "ipcbench: close(%d) failed: %s\n", fd_, std::strerror(errno));
      }
      fd_ = -1;
    }
  }

 private:
  int fd_ = -1;
};

}  // namespace ipcbench::posix
