// The datagram channel shared by udp and uds-dgram: both mechanisms move
// messages the same way (one datagram per message, zero-length datagrams as
// hellos and liveness probes) and differ only in addressing and the
// handshake. Defined in datagram_channel.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/fd.hpp"

namespace ipcbench::mech::datagram {

// Sets SO_SNDBUF and SO_RCVBUF to the largest sizes allowed without
// privileges (net.core.wmem_max / rmem_max); throws std::system_error naming
// `what`.
void enlarge_buffers(int fd, const std::string& what);

// A channel on a connected datagram socket (one datagram per message, at most
// `max_message` bytes); removes `socket_file` (if not empty) when destroyed.
// `name` is the mechanism's name, used in error messages.
std::unique_ptr<Channel> make_channel(posix::Fd fd, std::size_t max_message, std::string name,
                                      std::string socket_file);

// Sends the zero-length hello on connected socket `fd`, waiting at most
// `timeout` for room (a unix listener's queue may be full); throws Timeout.
void send_hello(int fd, std::chrono::milliseconds timeout, const std::string& what);

}  // namespace ipcbench::mech::datagram
