// Socket helpers shared by the socket mechanisms.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>

struct sockaddr;
struct sockaddr_storage;

#include "mechanisms/posix/fd.hpp"

namespace ipcbench::posix {

// Waits up to `timeout` for a connection on listening socket `listen_fd` and
// returns it (close-on-exec). Throws Timeout naming `what` when nobody came,
// PeerLost when interrupted, std::system_error on failure.
Fd accept_with_timeout(int listen_fd, std::chrono::milliseconds timeout, const std::string& what);

// Connects socket `fd` to `addr`, waiting at most `timeout` (non-blocking
// connect + poll); the socket is blocking again afterwards. Throws Timeout
// naming `what`, PeerLost when interrupted, std::system_error on failure.
void connect_with_timeout(int fd, const struct sockaddr* addr, unsigned addr_len,
                          std::chrono::milliseconds timeout, const std::string& what);

// Waits up to `timeout` (<= 0: just checks) for `events` on `fd` with ppoll;
// true when the fd is ready, false when the time ran out. A stray EINTR is a
// wake-up, not an error: it keeps waiting for the time that is left, unless
// the harness asked for an interrupt (throw_if_interrupted throws PeerLost).
// Throws std::system_error when ppoll fails otherwise.
bool poll_for(int fd, short events, std::chrono::nanoseconds timeout);

// Sends one byte on Unix socket `sock` with descriptor `fd` attached
// (SCM_RIGHTS; nothing attached when fd < 0), retrying on EINTR. Returns
// sendmsg's result: 1, or -1 with errno set.
ssize_t send_byte_with_fd(int sock, int fd) noexcept;

// What receive_byte_with_fd took.
struct ReceivedFd {
  ssize_t bytes = -1;      // recvmsg's result (-1: errno says why)
  Fd fd;                   // the single descriptor that came (close-on-exec), or none
  bool truncated = false;  // MSG_CTRUNC: more came than fits; the kernel closed the rest
};
// Receives one byte on `sock` without waiting, and the descriptor of a
// single SCM_RIGHTS record of one descriptor, if that is what came with it.
ReceivedFd receive_byte_with_fd(int sock) noexcept;

// Sets an int socket option; throws std::system_error naming `what`.
void set_socket_option(int fd, int level, int option, int value, const char* what);

// "HOST:PORT" split at the last colon, brackets of "[v6]:PORT" dropped; the
// port is not checked (getaddrinfo does that). Throws std::invalid_argument
// "malformed <what> address '...' (expected HOST:PORT)" (`what` e.g. "tcp").
struct HostPort {
  std::string host;
  std::string port;
};
HostPort split_host_port(std::string_view address, std::string_view what);

// The numeric host of `ss` ("127.0.0.1", "::1"), without the port.
std::string numeric_host(const sockaddr_storage& ss);

// The numeric host and port of `ss`: "127.0.0.1:5000", "[::1]:5000".
std::string format_address(const sockaddr_storage& ss);

}  // namespace ipcbench::posix
