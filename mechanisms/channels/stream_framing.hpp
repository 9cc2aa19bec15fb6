// Framing for byte-stream mechanisms (pipes, FIFOs, stream sockets): each
// message travels as a 4-byte little-endian length followed by the payload,
// so the receiver gets whole messages back.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/fd.hpp"

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
  bool try_send(std::span<const std::byte> message) override;
  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override;
  // Both wait with poll(2) on the descriptor.
  bool wait_receivable(std::chrono::nanoseconds timeout) override;
  bool wait_sendable(std::chrono::nanoseconds timeout) override;
  bool send_pending() const noexcept override { return !pending_.empty(); }
  int receive_fd() const noexcept override { return read_fd_.get(); }
  int send_fd() const noexcept override { return write_fd_ ? write_fd_.get() : read_fd_.get(); }
  std::optional<RawIo> raw_io() const noexcept override;

 protected:
  // Writes what it can of the frame bytes in `iov` to send_fd(): writev, or
  // sendmsg for a socket; -1 with errno set as those. After a partial write
  // the next call passes the rest of the same frame. A subclass may move
  // the bytes another way (pipe-splice's vmsplice).
  virtual ssize_t write_some(const ::iovec* iov, int iovcnt);
  // True while the descriptors are in non-blocking use (try_send/try_receive).
  bool nonblocking() const noexcept { return nonblocking_; }

 private:
  // Reads more bytes into the buffer; throws PeerLost on end of file.
  // Non-blocking mode: returns false when nothing was available.
  bool fill(bool mid_frame);
  // Pipes have no per-call MSG_DONTWAIT: switch O_NONBLOCK when the channel
  // changes between blocking and non-blocking use (once per case, not per
  // message, since a case uses one mode).
  void set_mode(bool nonblocking);
  // Writes what it can of pending_ without blocking; true when it is empty.
  bool flush_pending();
  void check_send_size(std::size_t size) const;
  void fit_pipe_to_frame(int fd) const;

  posix::Fd read_fd_;
  posix::Fd write_fd_;  // empty when read_fd_ is a bidirectional socket
  std::size_t max_message_;
  bool is_socket_;
  std::unique_ptr<std::byte[]> buf_;
  std::size_t cap_ = 0;
  std::size_t pos_ = 0;  // first unread byte in buf_
  std::size_t end_ = 0;  // one past the last buffered byte
  bool nonblocking_ = false;
  std::vector<std::byte> pending_;  // unsent tail of a message try_send accepted
  std::size_t pending_off_ = 0;
  std::vector<std::byte> assembly_;  // a large frame arriving in pieces (try_receive)
  std::size_t assembly_len_ = 0;     // its length (0: none in progress)
  std::size_t assembly_got_ = 0;
  // The length of the last message receive() returned. When it was large
  // and nothing is buffered, the next frame is read with one readv straight
  // into the caller's buffer (header apart), saving the copy out of buf_.
  std::size_t last_len_ = 0;
  std::byte direct_header_[kFrameHeaderBytes] = {};
  // Returns the message's length, or 0 when it fell back to buf_.
  std::size_t receive_direct(std::span<std::byte> buffer);
  void read_rest(std::span<std::byte> buffer, std::size_t got, std::size_t len);
};

// Makes writes to a closed pipe fail with EPIPE instead of killing the
// process. Process-wide and idempotent.
void ignore_sigpipe() noexcept;

}  // namespace ipcbench
