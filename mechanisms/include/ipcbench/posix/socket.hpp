// Socket helpers shared by the socket mechanisms.
#pragma once

#include <chrono>
#include <string>

#include "ipcbench/posix/fd.hpp"

namespace ipcbench::posix {

// Waits up to `timeout` for a connection on listening socket `listen_fd` and
// returns it (close-on-exec). Throws Timeout naming `what` when nobody came,
// PeerLost when interrupted, std::system_error on failure.
Fd accept_with_timeout(int listen_fd, std::chrono::milliseconds timeout, const std::string& what);

// Sets an int socket option; throws std::system_error naming `what`.
void set_socket_option(int fd, int level, int option, int value, const char* what);

}  // namespace ipcbench::posix
