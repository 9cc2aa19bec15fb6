// Length-prefixed framing over stream descriptors.
#include "ipcbench/stream_framing.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ipcbench/errors.hpp"
#include "ipcbench/posix/retry.hpp"

namespace ipcbench {
namespace {

// Big enough that a small message (and several queued ones) arrive in one
// read; large messages bypass it.
constexpr std::size_t kReadBuffer = 64 * 1024;

bool is_peer_gone(int err) { return err == EPIPE || err == ECONNRESET || err == ENOTCONN; }

}  // namespace

std::size_t decode_frame_length(std::span<const std::byte, kFrameHeaderBytes> header,
                                std::size_t max_message) {
  std::uint32_t len = 0;
  std::memcpy(&len, header.data(), sizeof len);
  len = le32toh(len);
  if (len == 0 || len > max_message) {
    throw ProtocolError("bad frame length " + std::to_string(len) + " (limit " +
                        std::to_string(max_message) + " bytes)");
  }
  return len;
}

void ignore_sigpipe() noexcept { ::signal(SIGPIPE, SIG_IGN); }

FramedStreamChannel::FramedStreamChannel(posix::Fd read_fd, posix::Fd write_fd,
                                         std::size_t max_message, bool is_socket)
    : read_fd_(std::move(read_fd)),
      write_fd_(std::move(write_fd)),
      max_message_(max_message),
      is_socket_(is_socket),
      buf_(new std::byte[kReadBuffer]),
      cap_(kReadBuffer) {
  // Touch the buffer now so its page faults are not measured later.
  std::memset(buf_.get(), 0, cap_);
}

ssize_t FramedStreamChannel::write_some(const ::iovec* iov, int iovcnt) {
  const int fd = write_fd_ ? write_fd_.get() : read_fd_.get();
  if (is_socket_) {
    ::msghdr msg{};
    msg.msg_iov = const_cast<::iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(iovcnt);
    return ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  }
  return ::writev(fd, iov, iovcnt);
}

void FramedStreamChannel::send(std::span<const std::byte> message) {
  if (message.empty() || message.size() > max_message_) {
    throw std::invalid_argument("message of " + std::to_string(message.size()) +
                                " bytes outside 1.." + std::to_string(max_message_));
  }
  const std::uint32_t len = htole32(static_cast<std::uint32_t>(message.size()));
  ::iovec iov[2];
  iov[0] = {const_cast<std::uint32_t*>(&len), sizeof len};
  iov[1] = {const_cast<std::byte*>(message.data()), message.size()};
  ::iovec* cur = iov;
  int count = 2;
  while (count > 0) {
    const ssize_t n = posix::retry_eintr([&] { return write_some(cur, count); });
    if (n < 0) {
      if (is_peer_gone(errno)) throw PeerLost("peer closed the connection (send)");
      posix::throw_errno("send failed");
    }
    // Advance past what was written (partial writes happen for large messages).
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= cur->iov_len) {
      left -= cur->iov_len;
      ++cur;
      --count;
    }
    if (count > 0) {
      cur->iov_base = static_cast<char*>(cur->iov_base) + left;
      cur->iov_len -= left;
    }
  }
}

void FramedStreamChannel::fill(bool mid_frame) {
  if (pos_ == end_) {
    pos_ = end_ = 0;
  } else if (end_ == cap_) {
    std::memmove(buf_.get(), buf_.get() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  const ssize_t n =
      posix::retry_eintr([&] { return ::read(read_fd_.get(), buf_.get() + end_, cap_ - end_); });
  if (n > 0) {
    end_ += static_cast<std::size_t>(n);
    return;
  }
  if (n == 0) {
    throw PeerLost(mid_frame ? "peer closed the connection in the middle of a message"
                             : "peer closed the connection");
  }
  if (is_peer_gone(errno)) throw PeerLost("peer reset the connection");
  posix::throw_errno("receive failed");
}

std::size_t FramedStreamChannel::receive(std::span<std::byte> buffer) {
  while (end_ - pos_ < kFrameHeaderBytes) fill(end_ != pos_);
  const std::size_t len = decode_frame_length(
      std::span<const std::byte, kFrameHeaderBytes>(buf_.get() + pos_, kFrameHeaderBytes),
      max_message_);
  if (len > buffer.size()) {
    throw ProtocolError("message of " + std::to_string(len) + " bytes does not fit the " +
                        std::to_string(buffer.size()) + "-byte receive buffer");
  }
  pos_ += kFrameHeaderBytes;
  std::size_t got = std::min(len, end_ - pos_);
  std::memcpy(buffer.data(), buf_.get() + pos_, got);
  pos_ += got;
  // The rest of a large message goes straight into the caller's buffer;
  // asking for exactly what is missing never reads into the next frame.
  while (got < len) {
    const ssize_t n = posix::retry_eintr(
        [&] { return ::read(read_fd_.get(), buffer.data() + got, len - got); });
    if (n == 0) throw PeerLost("peer closed the connection in the middle of a message");
    if (n < 0) {
      if (is_peer_gone(errno)) throw PeerLost("peer reset the connection");
      posix::throw_errno("receive failed");
    }
    got += static_cast<std::size_t>(n);
  }
  return len;
}

}  // namespace ipcbench
