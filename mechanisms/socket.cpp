// Socket helpers shared by the socket mechanisms.
#include "ipcbench/posix/socket.hpp"

#include <poll.h>
#include <sys/socket.h>

#include "ipcbench/errors.hpp"
#include "ipcbench/posix/retry.hpp"

namespace ipcbench::posix {

Fd accept_with_timeout(int listen_fd, std::chrono::milliseconds timeout, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw Timeout("peer did not connect to " + what + " within " +
                    std::to_string(timeout.count()) + " ms");
    }
    struct pollfd p {listen_fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0) {
      if (errno == EINTR) {
        throw_if_interrupted();
        continue;
      }
      throw_errno("poll on " + what + " failed");
    }
    if (r == 0) continue;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return Fd(fd);
    if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
    throw_errno("accept on " + what + " failed");
  }
}

void set_socket_option(int fd, int level, int option, int value, const char* what) {
  if (::setsockopt(fd, level, option, &value, sizeof value) != 0) {
    throw_errno(std::string("cannot set ") + what);
  }
}

}  // namespace ipcbench::posix
