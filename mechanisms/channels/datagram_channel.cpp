// The datagram channel shared by udp and uds-dgram (see datagram_channel.hpp).
#include "mechanisms/channels/datagram_channel.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/socket.hpp"

namespace ipcbench::mech::datagram {

namespace {

using Clock = std::chrono::steady_clock;

// A blocking receive that has heard nothing for this long checks that the
// peer's socket still exists: datagram sockets get no end-of-file.
constexpr std::chrono::milliseconds kProbeInterval{1000};

// SO_RCVTIMEO counts in jiffies (up to 10 ms); shorter waits use ppoll.
constexpr std::chrono::milliseconds kShortestTimedReceive{50};

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// ECONNREFUSED: a uds-dgram send to a closed socket, or an ICMP "port
// unreachable" on a connected UDP socket. ENOTCONN: a unix socket that has
// already seen its peer die.
bool is_peer_gone(int err) {
  return err == ECONNREFUSED || err == ENOTCONN || err == ECONNRESET || err == EPIPE;
}

[[noreturn]] void throw_io(int err, const std::string& what) {
  if (is_peer_gone(err)) {
    throw PeerLost("the peer's socket is gone (" + what + ": " + std::strerror(err) + ")");
  }
  posix::throw_errno(err, what + " failed");
}

// The value of a /proc/sys/net/core limit; INT_MAX / 2 (the most setsockopt
// takes) when unreadable, since the kernel clamps a request to the limit anyway.
int read_buffer_limit(const char* path) {
  std::ifstream in(path);
  long long value = 0;
  if (!(in >> value) || value <= 0) return INT_MAX / 2;
  return static_cast<int>(std::min<long long>(value, INT_MAX / 2));
}

class DatagramChannel final : public Channel {
 public:
  DatagramChannel(posix::Fd fd, std::size_t max_message, std::string name, std::string socket_file)
      : fd_(std::move(fd)),
        max_message_(max_message),
        name_(std::move(name)),
        socket_file_(std::move(socket_file)) {
    set_receive_timeout(kProbeInterval);
  }

  ~DatagramChannel() override {
    if (!socket_file_.empty()) ::unlink(socket_file_.c_str());  // gone already if accepted
  }

  void send(std::span<const std::byte> message) override {
    check_size(message.size());
    // One datagram is all or nothing: no partial sends.
    const ssize_t n = posix::retry_eintr(
        [&] { return ::send(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL); });
    if (n < 0) throw_io(errno, name_ + " send");
  }

  // A blocking recv that wakes after kProbeInterval of silence (SO_RCVTIMEO)
  // to check that the peer still exists.
  std::size_t receive(std::span<std::byte> buffer) override {
    set_receive_timeout(kProbeInterval);
    for (;;) {
      const auto n = receive_one(buffer, 0);
      if (!n) {
        probe();
      } else if (*n > 0) {
        return *n;
      }
    }
  }

  bool try_send(std::span<const std::byte> message) override {
    check_size(message.size());
    const ssize_t n = posix::retry_eintr([&] {
      return ::send(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    });
    if (n >= 0) return true;
    if (would_block(errno)) return false;
    throw_io(errno, name_ + " send");
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    for (;;) {
      const auto n = receive_one(buffer, MSG_DONTWAIT);
      if (!n || *n > 0) return n;
    }
  }

  // One blocking recv with SO_RCVTIMEO, set only when the timeout changes
  // (a caller repeating one timeout pays one syscall per message). A timeout
  // probes the peer, so a caller that keeps waiting learns it is gone.
  std::optional<std::size_t> receive_for(std::span<std::byte> buffer,
                                         std::chrono::nanoseconds timeout) override {
    if (timeout < kShortestTimedReceive) return receive_polling(buffer, timeout);
    const auto deadline = Clock::now() + timeout;
    set_receive_timeout(timeout);
    for (;;) {
      const auto n = receive_one(buffer, 0);
      if (!n) {
        probe();
        return std::nullopt;
      }
      if (*n > 0) return n;
      // A hello or probe arrived: wait on for what is left.
      const auto left = deadline - Clock::now();
      if (left < kShortestTimedReceive) return receive_polling(buffer, left);
      set_receive_timeout(left);
    }
  }

  // Both wait with ppoll on the socket. A zero-length probe from the peer
  // makes wait_receivable return true spuriously (try_receive skips it).
  bool wait_receivable(std::chrono::nanoseconds timeout) override {
    return posix::poll_for(fd_.get(), POLLIN, timeout);
  }
  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    return posix::poll_for(fd_.get(), POLLOUT, timeout);
  }

  int receive_fd() const noexcept override { return fd_.get(); }
  int send_fd() const noexcept override { return fd_.get(); }
  std::optional<RawIo> raw_io() const noexcept override {
    return RawIo{.read_fd = fd_.get(),
                 .write_fd = fd_.get(),
                 .framing = RawIo::Framing::kDatagram,
                 .socket = true};
  }

 private:
  void check_size(std::size_t size) const {
    if (size == 0 || size > max_message_) {
      throw std::invalid_argument(name_ + " message of " + std::to_string(size) +
                                  " bytes outside 1.." + std::to_string(max_message_));
    }
  }

  // One recv: the message's size; 0 for a zero-length datagram (a hello or
  // probe, never a message: messages have at least one byte); nullopt when
  // nothing came (MSG_DONTWAIT, or SO_RCVTIMEO expired).
  std::optional<std::size_t> receive_one(std::span<std::byte> buffer, int flags) {
    // MSG_TRUNC: the result is the datagram's real size even if it did not
    // fit; the kernel never writes past buffer.size().
    const ssize_t n = posix::retry_eintr(
        [&] { return ::recv(fd_.get(), buffer.data(), buffer.size(), flags | MSG_TRUNC); });
    if (n < 0) {
      if (would_block(errno)) return std::nullopt;
      throw_io(errno, name_ + " receive");
    }
    const auto size = static_cast<std::size_t>(n);
    if (size > buffer.size()) {
      throw ProtocolError(name_ + " datagram of " + std::to_string(size) +
                          " bytes does not fit the " + std::to_string(buffer.size()) +
                          "-byte receive buffer");
    }
    return size;
  }

  // receive_for with ppoll, precise for waits shorter than a few jiffies.
  // No probe here: a caller polling with tiny timeouts would flood the peer.
  std::optional<std::size_t> receive_polling(std::span<std::byte> buffer,
                                             std::chrono::nanoseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (const auto n = try_receive(buffer)) return n;
      const auto left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) return std::nullopt;
      posix::poll_for(fd_.get(), POLLIN, left);
    }
  }

  void set_receive_timeout(std::chrono::nanoseconds timeout) {
    // Rounded up: a zero timeval would mean "block forever".
    const auto us =
        std::max<std::int64_t>(std::chrono::ceil<std::chrono::microseconds>(timeout).count(), 1);
    if (us == receive_timeout_us_) return;
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(us / 1'000'000);
    tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
    if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
      posix::throw_errno("cannot set SO_RCVTIMEO on the " + name_ + " socket");
    }
    receive_timeout_us_ = us;
  }

  // Sends a zero-length datagram, which the peer skips: a uds-dgram peer that
  // is gone fails it with ECONNREFUSED at once; for udp the kernel answers
  // with an ICMP error that fails the next receive.
  void probe() {
    const ssize_t n = posix::retry_eintr(
        [&] { return ::send(fd_.get(), nullptr, 0, MSG_NOSIGNAL | MSG_DONTWAIT); });
    if (n < 0 && is_peer_gone(errno)) throw_io(errno, name_ + " probe");
  }

  posix::Fd fd_;
  std::size_t max_message_;
  std::string name_;                      // mechanism name, for messages
  std::string socket_file_;               // removed by the destructor if not empty
  std::int64_t receive_timeout_us_ = -1;  // SO_RCVTIMEO as last set
};

}  // namespace

void enlarge_buffers(int fd, const std::string& what) {
  // The largest sizes allowed without privileges (net.core.wmem_max and
  // rmem_max; the kernel doubles them for bookkeeping), so that bursts are
  // less likely to drop. Never SO_*BUFFORCE, never the sysctl.
  static const int send_limit = read_buffer_limit("/proc/sys/net/core/wmem_max");
  static const int receive_limit = read_buffer_limit("/proc/sys/net/core/rmem_max");
  posix::set_socket_option(fd, SOL_SOCKET, SO_SNDBUF, send_limit, ("SO_SNDBUF on " + what).c_str());
  posix::set_socket_option(fd, SOL_SOCKET, SO_RCVBUF, receive_limit,
                           ("SO_RCVBUF on " + what).c_str());
}

std::unique_ptr<Channel> make_channel(posix::Fd fd, std::size_t max_message, std::string name,
                                      std::string socket_file) {
  return std::make_unique<DatagramChannel>(std::move(fd), max_message, std::move(name),
                                           std::move(socket_file));
}

void send_hello(int fd, std::chrono::milliseconds timeout, const std::string& what) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    // Zero bytes: never a message, so the other side can tell a hello apart.
    if (posix::retry_eintr([&] { return ::send(fd, nullptr, 0, MSG_NOSIGNAL | MSG_DONTWAIT); }) ==
        0) {
      return;
    }
    if (!would_block(errno)) posix::throw_errno("cannot send hello to " + what);
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      throw Timeout("cannot say hello to " + what + " within " + std::to_string(timeout.count()) +
                    " ms");
    }
    posix::poll_for(fd, POLLOUT, left);
  }
}

}  // namespace ipcbench::mech::datagram
