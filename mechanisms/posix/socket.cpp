// Socket helpers shared by the socket mechanisms.
#include "mechanisms/posix/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/time.hpp"

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
    struct pollfd p {
      listen_fd, POLLIN, 0
    };
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0) {
      if (errno == EINTR) {
        throw_if_interrupted();
        continue;
      }
      throw_errno("poll on " + what + " failed");
    }
    if (r == 0) continue;
    // Non-blocking: the connection poll saw may be gone by now.
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      const int flags = ::fcntl(fd, F_GETFL);
      ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
      return Fd(fd);
    }
    if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
    throw_errno("accept on " + what + " failed");
  }
}

void connect_with_timeout(int fd, const sockaddr* addr, unsigned addr_len,
                          std::chrono::milliseconds timeout, const std::string& what) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw_errno("cannot make socket non-blocking");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int rc = ::connect(fd, addr, addr_len);
  // A Unix socket whose listener's backlog is full says EAGAIN: that means
  // "not connected, try again", not "in progress". Retry until the deadline.
  while (rc != 0 && errno == EAGAIN && addr->sa_family == AF_UNIX) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Timeout("cannot connect to " + what + " within " + std::to_string(timeout.count()) +
                    " ms (its backlog is full)");
    }
    throw_if_interrupted();
    ::usleep(1000);
    rc = ::connect(fd, addr, addr_len);
  }
  if (rc != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      throw_errno("cannot connect to " + what);
    }
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        throw Timeout("cannot connect to " + what + " within " + std::to_string(timeout.count()) +
                      " ms");
      }
      struct pollfd p {
        fd, POLLOUT, 0
      };
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) {
        throw_if_interrupted();
        continue;
      }
      if (r < 0) throw_errno("poll while connecting to " + what + " failed");
      if (r > 0) break;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) throw_errno(err, "cannot connect to " + what);
  }
  if (::fcntl(fd, F_SETFL, flags) != 0) throw_errno("cannot make socket blocking");
}

bool poll_for(int fd, short events, std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pollfd p{fd, events, 0};
    const timespec ts = to_timespec(deadline - std::chrono::steady_clock::now());
    count_syscall();
    const int r = ::ppoll(&p, 1, &ts, nullptr);
    if (r >= 0) return r > 0;
    if (errno != EINTR) throw_errno("poll failed");
    throw_if_interrupted();  // a stray signal: wait out the rest
  }
}

void set_socket_option(int fd, int level, int option, int value, const char* what) {
  if (::setsockopt(fd, level, option, &value, sizeof value) != 0) {
    throw_errno(std::string("cannot set ") + what);
  }
}

HostPort split_host_port(std::string_view address, std::string_view what) {
  const auto colon = address.rfind(':');
  if (address.find('\0') != std::string_view::npos || colon == std::string_view::npos ||
      colon == 0 || colon + 1 == address.size()) {
    throw std::invalid_argument("malformed " + std::string(what) + " address '" +
                                std::string(address.substr(0, 100)) + "' (expected HOST:PORT)");
  }
  std::string host(address.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {host, std::string(address.substr(colon + 1))};
}

std::string numeric_host(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, host,
                sizeof host);
  } else {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, host, sizeof host);
  }
  return host;
}

std::string format_address(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6) {
    const auto port = ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
    std::string out(1, '[');  // (append: GCC 12 warns falsely on "[" + string)
    out.append(numeric_host(ss)).append("]:").append(std::to_string(port));
    return out;
  }
  const auto port = ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  return numeric_host(ss) + ":" + std::to_string(port);
}

ssize_t send_byte_with_fd(int sock, int fd) noexcept {
  char byte = 'f';
  iovec iov{.iov_base = &byte, .iov_len = 1};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  return retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL); });
}

ReceivedFd receive_byte_with_fd(int sock) noexcept {
  char byte = 0;
  iovec iov{.iov_base = &byte, .iov_len = 1};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ReceivedFd out;
  out.bytes = retry_eintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); });
  if (out.bytes < 0) return out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int received = -1;
      std::memcpy(&received, CMSG_DATA(c), sizeof(int));
      out.fd = Fd(received);
    }
  }
  out.truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  return out;
}

}  // namespace ipcbench::posix
