// Length-prefixed framing over stream descriptors.
#include "mechanisms/channels/stream_framing.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/socket.hpp"

namespace ipcbench {
namespace {

// Big enough that a small message (and several queued ones) arrive in one
// read; large messages bypass it.
constexpr std::size_t kReadBuffer = 64 * 1024;
// From this message size on, receive() reads a frame straight into the
// caller's buffer when nothing is buffered (see receive_direct).
constexpr std::size_t kDirectRead = 8 * 1024;

bool is_peer_gone(int err) { return err == EPIPE || err == ECONNRESET || err == ENOTCONN; }
bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

[[noreturn]] void throw_io(const char* what) {
  if (is_peer_gone(errno)) throw PeerLost(std::string("peer closed the connection (") + what + ")");
  posix::throw_errno(std::string(what) + " failed");
}

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

namespace {
void check_fits(std::size_t len, std::size_t capacity) {
  if (len > capacity) {
    throw ProtocolError("message of " + std::to_string(len) + " bytes does not fit the " +
                        std::to_string(capacity) + "-byte receive buffer");
  }
}
}  // namespace

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
  if (!is_socket_ && write_fd_) fit_pipe_to_frame(write_fd_.get());
}

void FramedStreamChannel::fit_pipe_to_frame(int fd) const {
  // A message that fills the default 64 KiB pipe no longer fits once its
  // 4-byte length is added: the writer would block in the middle of every
  // such message and need a wake-up that a plain write of the same message
  // does not. The pipe grows to hold one whole frame (the kernel rounds up
  // to a power of two of pages); where the system refuses (pipe-max-size,
  // a user's pipe quota) it keeps its size: slower, never wrong.
  const int capacity = ::fcntl(fd, F_GETPIPE_SZ);
  const std::size_t frame = kFrameHeaderBytes + max_message_;
  if (capacity <= 0 || frame <= static_cast<std::size_t>(capacity) || frame > (1u << 30)) return;
  (void)::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(frame));
}

void FramedStreamChannel::set_mode(bool nonblocking) {
  if (nonblocking == nonblocking_) return;
  nonblocking_ = nonblocking;
  if (is_socket_) return;  // sockets use MSG_DONTWAIT per call
  for (int fd : {read_fd_.get(), write_fd_.get()}) {
    if (fd < 0) continue;
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 ||
        ::fcntl(fd, F_SETFL, nonblocking ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) != 0) {
      posix::throw_errno("cannot change blocking mode");
    }
  }
}

ssize_t FramedStreamChannel::write_some(const ::iovec* iov, int iovcnt) {
  const int fd = send_fd();
  if (is_socket_) {
    ::msghdr msg{};
    msg.msg_iov = const_cast<::iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(iovcnt);
    return ::sendmsg(fd, &msg, MSG_NOSIGNAL | (nonblocking_ ? MSG_DONTWAIT : 0));
  }
  return ::writev(fd, iov, iovcnt);
}

void FramedStreamChannel::check_send_size(std::size_t size) const {
  if (size == 0 || size > max_message_) {
    throw std::invalid_argument("message of " + std::to_string(size) + " bytes outside 1.." +
                                std::to_string(max_message_));
  }
}

bool FramedStreamChannel::flush_pending() {
  while (pending_off_ < pending_.size()) {
    ::iovec iov{pending_.data() + pending_off_, pending_.size() - pending_off_};
    const ssize_t n = posix::retry_eintr([&] { return write_some(&iov, 1); });
    if (n < 0) {
      if (would_block(errno)) return false;
      throw_io("send");
    }
    pending_off_ += static_cast<std::size_t>(n);
  }
  pending_.clear();
  pending_off_ = 0;
  return true;
}

void FramedStreamChannel::send(std::span<const std::byte> message) {
  check_send_size(message.size());
  set_mode(false);
  if (!pending_.empty()) flush_pending();  // blocking mode: completes
  const std::uint32_t len = htole32(static_cast<std::uint32_t>(message.size()));
  ::iovec iov[2];
  iov[0] = {const_cast<std::uint32_t*>(&len), sizeof len};
  iov[1] = {const_cast<std::byte*>(message.data()), message.size()};
  ::iovec* cur = iov;
  int count = 2;
  while (count > 0) {
    const ssize_t n = posix::retry_eintr([&] { return write_some(cur, count); });
    if (n < 0) throw_io("send");
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

bool FramedStreamChannel::try_send(std::span<const std::byte> message) {
  check_send_size(message.size());
  set_mode(true);
  if (!flush_pending()) return false;
  const std::uint32_t len = htole32(static_cast<std::uint32_t>(message.size()));
  ::iovec iov[2];
  iov[0] = {const_cast<std::uint32_t*>(&len), sizeof len};
  iov[1] = {const_cast<std::byte*>(message.data()), message.size()};
  const ssize_t n = posix::retry_eintr([&] { return write_some(iov, 2); });
  if (n < 0) {
    if (would_block(errno)) return false;
    throw_io("send");
  }
  const std::size_t total = sizeof len + message.size();
  const auto sent = static_cast<std::size_t>(n);
  if (sent < total) {
    // Part of the message is in the kernel: it is ours to finish.
    const std::size_t from = sent > sizeof len ? sent - sizeof len : 0;
    pending_.clear();
    if (sent < sizeof len) {
      const auto* h = reinterpret_cast<const std::byte*>(&len);
      pending_.insert(pending_.end(), h + sent, h + sizeof len);
    }
    pending_.insert(pending_.end(), message.begin() + static_cast<std::ptrdiff_t>(from),
                    message.end());
    pending_off_ = 0;
  }
  return true;
}

bool FramedStreamChannel::fill(bool mid_frame) {
  if (pos_ == end_) {
    pos_ = end_ = 0;
  } else if (end_ == cap_) {
    std::memmove(buf_.get(), buf_.get() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  const int fd = read_fd_.get();
  const ssize_t n = posix::retry_eintr([&]() -> ssize_t {
    if (is_socket_)
      return ::recv(fd, buf_.get() + end_, cap_ - end_, nonblocking_ ? MSG_DONTWAIT : 0);
    return ::read(fd, buf_.get() + end_, cap_ - end_);
  });
  if (n > 0) {
    end_ += static_cast<std::size_t>(n);
    return true;
  }
  if (n == 0) {
    throw PeerLost(mid_frame ? "peer closed the connection in the middle of a message"
                             : "peer closed the connection");
  }
  if (nonblocking_ && would_block(errno)) return false;
  if (is_peer_gone(errno)) throw PeerLost("peer reset the connection");
  posix::throw_errno("receive failed");
}

std::size_t FramedStreamChannel::receive(std::span<std::byte> buffer) {
  set_mode(false);
  // The answer we wait for may depend on the tail of a message try_send
  // accepted: push it first (blocking, as send() does).
  if (!pending_.empty()) flush_pending();
  if (assembly_len_ > 0) {  // finish a frame try_receive started
    while (assembly_got_ < assembly_len_) {
      const ssize_t n = posix::retry_eintr([&] {
        return ::read(read_fd_.get(), assembly_.data() + assembly_got_,
                      assembly_len_ - assembly_got_);
      });
      if (n == 0) throw PeerLost("peer closed the connection in the middle of a message");
      if (n < 0) throw_io("receive");
      assembly_got_ += static_cast<std::size_t>(n);
    }
    const std::size_t len = assembly_len_;
    assembly_len_ = assembly_got_ = 0;
    check_fits(len, buffer.size());
    std::memcpy(buffer.data(), assembly_.data(), len);
    return len;
  }
  if (pos_ == end_ && last_len_ >= kDirectRead && last_len_ <= buffer.size()) {
    if (const std::size_t len = receive_direct(buffer)) return last_len_ = len;
  }
  while (end_ - pos_ < kFrameHeaderBytes) fill(end_ != pos_);
  const std::size_t len = decode_frame_length(
      std::span<const std::byte, kFrameHeaderBytes>(buf_.get() + pos_, kFrameHeaderBytes),
      max_message_);
  check_fits(len, buffer.size());
  pos_ += kFrameHeaderBytes;
  std::size_t got = std::min(len, end_ - pos_);
  std::memcpy(buffer.data(), buf_.get() + pos_, got);
  pos_ += got;
  // The rest of a large message goes straight into the caller's buffer;
  // asking for exactly what is missing never reads into the next frame.
  read_rest(buffer, got, len);
  return last_len_ = len;
}

// The rest of a message, straight into the caller's buffer (blocking).
void FramedStreamChannel::read_rest(std::span<std::byte> buffer, std::size_t got, std::size_t len) {
  while (got < len) {
    const ssize_t n =
        posix::retry_eintr([&] { return ::read(read_fd_.get(), buffer.data() + got, len - got); });
    if (n == 0) throw PeerLost("peer closed the connection in the middle of a message");
    if (n < 0) throw_io("receive");
    got += static_cast<std::size_t>(n);
  }
}

std::size_t FramedStreamChannel::receive_direct(std::span<std::byte> buffer) {
  // Header into its own bytes, payload into the caller's buffer, reading no
  // more than a frame of the last length: a benchmark's next message is
  // usually as long as the last, and then nothing is copied twice.
  // At most buf_'s capacity, so what belongs to the next message fits there.
  ::iovec iov[2] = {{direct_header_, kFrameHeaderBytes},
                    {buffer.data(), std::min(last_len_, cap_)}};
  const ssize_t n = posix::retry_eintr([&] { return ::readv(read_fd_.get(), iov, 2); });
  if (n == 0) throw PeerLost("peer closed the connection");
  if (n < 0) throw_io("receive");
  auto got = static_cast<std::size_t>(n);
  if (got < kFrameHeaderBytes) {  // a piece of the header: continue the buffered way
    std::memcpy(buf_.get(), direct_header_, got);
    pos_ = 0;
    end_ = got;
    return 0;
  }
  const std::size_t len = decode_frame_length(
      std::span<const std::byte, kFrameHeaderBytes>(direct_header_, kFrameHeaderBytes),
      max_message_);
  check_fits(len, buffer.size());
  got -= kFrameHeaderBytes;
  if (got > len) {  // a shorter message: what follows it belongs to the next
    pos_ = 0;
    end_ = got - len;
    std::memcpy(buf_.get(), buffer.data() + len, end_);
    got = len;
  }
  read_rest(buffer, got, len);
  return len;
}

std::optional<std::size_t> FramedStreamChannel::try_receive(std::span<std::byte> buffer) {
  set_mode(true);
  // A message try_send accepted must not sit in our buffer while we wait
  // for its answer.
  if (!pending_.empty()) flush_pending();
  if (assembly_len_ == 0) {
    while (end_ - pos_ < kFrameHeaderBytes) {
      if (!fill(end_ != pos_)) return std::nullopt;
    }
    const std::size_t len = decode_frame_length(
        std::span<const std::byte, kFrameHeaderBytes>(buf_.get() + pos_, kFrameHeaderBytes),
        max_message_);
    check_fits(len, buffer.size());
    if (kFrameHeaderBytes + len <= cap_) {
      // Fits the read buffer: fill until whole (fill compacts as needed).
      while (end_ - pos_ < kFrameHeaderBytes + len) {
        if (!fill(true)) return std::nullopt;
      }
      std::memcpy(buffer.data(), buf_.get() + pos_ + kFrameHeaderBytes, len);
      pos_ += kFrameHeaderBytes + len;
      return len;
    }
    // A large frame: collect it in the assembly buffer across calls.
    if (assembly_.size() < max_message_) assembly_.resize(max_message_);
    pos_ += kFrameHeaderBytes;
    assembly_got_ = std::min(len, end_ - pos_);
    std::memcpy(assembly_.data(), buf_.get() + pos_, assembly_got_);
    pos_ += assembly_got_;
    assembly_len_ = len;
  }
  while (assembly_got_ < assembly_len_) {
    const int fd = read_fd_.get();
    const ssize_t n = posix::retry_eintr([&]() -> ssize_t {
      void* at = assembly_.data() + assembly_got_;
      const std::size_t want = assembly_len_ - assembly_got_;
      return is_socket_ ? ::recv(fd, at, want, MSG_DONTWAIT) : ::read(fd, at, want);
    });
    if (n == 0) throw PeerLost("peer closed the connection in the middle of a message");
    if (n < 0) {
      if (would_block(errno)) return std::nullopt;
      throw_io("receive");
    }
    assembly_got_ += static_cast<std::size_t>(n);
  }
  const std::size_t len = assembly_len_;
  check_fits(len, buffer.size());
  assembly_len_ = assembly_got_ = 0;
  std::memcpy(buffer.data(), assembly_.data(), len);
  return len;
}

std::optional<RawIo> FramedStreamChannel::raw_io() const noexcept {
  if (pos_ != end_ || assembly_len_ != 0 || !pending_.empty()) return std::nullopt;
  return RawIo{.read_fd = read_fd_.get(),
               .write_fd = send_fd(),
               .framing = RawIo::Framing::kLengthPrefixed,
               .socket = is_socket_};
}

bool FramedStreamChannel::wait_receivable(std::chrono::nanoseconds timeout) {
  if (end_ - pos_ >= kFrameHeaderBytes) {
    std::uint32_t len = 0;
    std::memcpy(&len, buf_.get() + pos_, sizeof len);
    if (end_ - pos_ >= kFrameHeaderBytes + le32toh(len)) return true;  // already buffered
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // While part of an accepted message is still ours to send, keep pushing
  // it: the answer we wait for may depend on it.
  while (!pending_.empty() && !flush_pending()) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) return false;
    if (posix::poll_for(read_fd_.get(), POLLIN,
                        std::min<std::chrono::nanoseconds>(left, std::chrono::milliseconds(1)))) {
      return true;
    }
  }
  const auto left = deadline - std::chrono::steady_clock::now();
  return posix::poll_for(read_fd_.get(), POLLIN, std::max(left, std::chrono::nanoseconds::zero()));
}

bool FramedStreamChannel::wait_sendable(std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pending_.empty()) {  // room means room after our own backlog
    if (flush_pending()) break;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero() || !posix::poll_for(send_fd(), POLLOUT, left)) {
      return false;
    }
  }
  const auto left = deadline - std::chrono::steady_clock::now();
  return posix::poll_for(send_fd(), POLLOUT, std::max(left, std::chrono::nanoseconds::zero()));
}

}  // namespace ipcbench
