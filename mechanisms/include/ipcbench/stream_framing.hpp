// Framing for byte-stream mechanisms (pipes, FIFOs, stream sockets): each
// message travels as a 4-byte little-endian length followed by the payload,
// so the receiver gets whole messages back.
#pragma once

#include <cstdint>
#include <memory>
#include <sys/uio.h>

#include <span>

#include "ipcbench/mechanism.hpp"
#include "ipcbench/posix/fd.hpp"

namespace ipcbench {

inline constexpr std::size_t kFrameHeaderBytes = 4;

// Decodes a frame header; throws ProtocolError when the length is zero or
// above max_message (a corrupt or hostile stream never makes us overrun).
std::size_t decode_frame_length(std::span<const std::byte, kFrameHeaderBytes> header,
                                std::size_t max_message);

// A Channel over one or two stream descriptors. read_fd and write_fd may be
// the same socket (pass an empty write_fd). Small messages cost one read(2)
// and one writev(2): reads go through a buffer so that length and payload
// usually arrive in one call; the rest of a large message is read straight
// into the caller's buffer.
class FramedStreamChannel : public Channel {
 public:
  // Takes ownership of the descriptors. `is_socket` selects sendmsg with
  // MSG_NOSIGNAL (pipes rely on SIGPIPE being ignored; see ignore_sigpipe()).
  FramedStreamChannel(posix::Fd read_fd, posix::Fd write_fd, std::size_t max_message,
                      bool is_socket);

  void send(std::span<const std::byte> message) override;
  std::size_t receive(std::span<std::byte> buffer) override;

 private:
  // Reads more bytes into the buffer; throws PeerLost on end of file.
  void fill(bool mid_frame);
  ssize_t write_some(const ::iovec* iov, int iovcnt);

  posix::Fd read_fd_;
  posix::Fd write_fd_;  // empty when read_fd_ is a bidirectional socket
  std::size_t max_message_;
  bool is_socket_;
  std::unique_ptr<std::byte[]> buf_;
  std::size_t cap_ = 0;
  std::size_t pos_ = 0;  // first unread byte in buf_
  std::size_t end_ = 0;  // one past the last buffered byte
};

// Makes writes to a closed pipe fail with EPIPE instead of killing the
// process. Process-wide and idempotent.
void ignore_sigpipe() noexcept;

}  // namespace ipcbench
