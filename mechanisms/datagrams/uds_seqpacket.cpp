// uds-seqpacket: a Unix domain SOCK_SEQPACKET connection in the run's private
// directory. The kernel keeps message boundaries, so a message is exactly one
// send and one recvmsg: no framing.
//
// The socket file exists only between listen() and accept(). The largest
// message is probed once per process (see probe_limits): every socket of the
// mechanism gets the buffer sizes the probe used, so the limit holds.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/socket.hpp"

namespace ipcbench::mech {
namespace {

// What the probe found, and the socket buffer sizes it found it with.
struct SeqpacketLimits {
  int send_buffer = 0;     // SO_SNDBUF request; 0: leave the kernel default
  int receive_buffer = 0;  // SO_RCVBUF request; 0: leave the kernel default
  std::size_t max_message = 0;
};

// Probe results are reported in steps of this size (when at least one step),
// so small differences in the kernel's per-message overhead do not change
// the reported limit.
constexpr std::size_t kLimitStep = 64 * 1024;

// Reads an integer sysctl; 0 if unreadable.
int read_sysctl(const char* path) {
  std::ifstream in(path);
  long long value = 0;
  if (!(in >> value) || value <= 0) return 0;
  return static_cast<int>(std::min<long long>(value, std::numeric_limits<int>::max() / 2));
}

// Raises the socket's buffers to the probe's sizes. SO_SNDBUF bounds the
// largest message (the kernel refuses len > sndbuf - 32 with EMSGSIZE); the
// unprivileged options are capped at net.core.{w,r}mem_max, which we only
// read, never change.
void configure_buffers(int fd, const SeqpacketLimits& limits) {
  if (limits.send_buffer > 0) {
    posix::set_socket_option(fd, SOL_SOCKET, SO_SNDBUF, limits.send_buffer, "SO_SNDBUF");
  }
  if (limits.receive_buffer > 0) {
    posix::set_socket_option(fd, SOL_SOCKET, SO_RCVBUF, limits.receive_buffer, "SO_RCVBUF");
  }
}

// True if a send of `size` bytes on the empty pair succeeds (the message is
// then discarded on the other side).
bool probe_send(int sender, int receiver, const std::byte* payload, std::size_t size) {
  const ssize_t n = posix::retry_eintr(
      [&] { return ::send(sender, payload, size, MSG_DONTWAIT | MSG_NOSIGNAL); });
  if (n < 0) {
    // EMSGSIZE: above sndbuf - 32. ENOBUFS/ENOMEM: the kernel cannot allocate
    // the message's linear part (kmalloc caps it at a few MiB whatever the
    // buffer size), which is just as hard a limit in practice.
    if (errno == EMSGSIZE || errno == ENOBUFS || errno == ENOMEM) return false;
    posix::throw_errno("seqpacket probe: send of " + std::to_string(size) + " bytes failed");
  }
  std::byte sink{};
  // MSG_TRUNC with a 1-byte buffer drops the whole record and returns its size.
  const ssize_t r =
      posix::retry_eintr([&] { return ::recv(receiver, &sink, 1, MSG_TRUNC | MSG_DONTWAIT); });
  if (r < 0) posix::throw_errno("seqpacket probe: receive failed");
  if (r != n) {
    throw std::system_error(
        std::make_error_code(std::errc::io_error),
        "seqpacket probe: sent " + std::to_string(n) + " bytes, received " + std::to_string(r));
  }
  return true;
}

// Finds the largest message a seqpacket socketpair accepts with the largest
// buffers an unprivileged process may set: binary search between a size that
// works (1 byte) and one that cannot (the send buffer itself).
SeqpacketLimits run_probe() {
  SeqpacketLimits limits{.send_buffer = read_sysctl("/proc/sys/net/core/wmem_max"),
                         .receive_buffer = read_sysctl("/proc/sys/net/core/rmem_max")};
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    posix::throw_errno("cannot create seqpacket socketpair for the probe");
  }
  const posix::Fd a(sv[0]);
  const posix::Fd b(sv[1]);
  configure_buffers(a.get(), limits);
  configure_buffers(b.get(), limits);
  int sndbuf = 0;
  socklen_t len = sizeof sndbuf;
  if (::getsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) != 0 || sndbuf <= 0) {
    posix::throw_errno("seqpacket probe: cannot read SO_SNDBUF");
  }
  // No message is larger than the send buffer, nor than any Channel may be.
  const std::size_t bad_size = std::min<std::size_t>(sndbuf, kMaxStreamMessage + 1);
  // The content does not matter: left uninitialised, the untouched pages of
  // a large block cost no resident memory.
  const auto payload = std::make_unique_for_overwrite<std::byte[]>(bad_size);
  std::size_t good = 1;
  std::size_t bad = bad_size;
  if (!probe_send(a.get(), b.get(), payload.get(), good)) {
    throw std::system_error(std::make_error_code(std::errc::message_size),
                            "seqpacket probe: even a 1-byte message was refused");
  }
  if (probe_send(a.get(), b.get(), payload.get(), bad)) {
    good = bad;  // cannot happen (len > sndbuf - 32 is refused); trust it if it does
  }
  while (bad - good > 1) {
    const std::size_t mid = good + (bad - good) / 2;
    if (probe_send(a.get(), b.get(), payload.get(), mid)) {
      good = mid;
    } else {
      bad = mid;
    }
  }
  limits.max_message = good >= kLimitStep ? good / kLimitStep * kLimitStep : good;
  return limits;
}

// Probed on first use, then cached for the process.
const SeqpacketLimits& probe_limits() {
  static const SeqpacketLimits limits = run_probe();
  return limits;
}

bool is_peer_gone(int err) {
  return err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == ECONNREFUSED;
}
bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

class SeqpacketChannel : public Channel {
 public:
  SeqpacketChannel(posix::Fd fd, std::size_t max_message)
      : fd_(std::move(fd)), max_message_(max_message) {}

  void send(std::span<const std::byte> message) override { send_one(message, 0); }

  std::size_t receive(std::span<std::byte> buffer) override {
    return *receive_one(buffer, 0);  // blocking: always a message or an exception
  }

  bool try_send(std::span<const std::byte> message) override {
    return send_one(message, MSG_DONTWAIT);
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    return receive_one(buffer, MSG_DONTWAIT);
  }

  // Both wait with poll(2) on the socket.
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
                 .framing = RawIo::Framing::kSeqpacket,
                 .socket = true};
  }

 private:
  // One sendmsg per message: the kernel takes all of it or nothing.
  bool send_one(std::span<const std::byte> message, int flags) {
    if (message.empty() || message.size() > max_message_) {
      throw std::invalid_argument("message of " + std::to_string(message.size()) +
                                  " bytes outside 1.." + std::to_string(max_message_));
    }
    const ssize_t n = posix::retry_eintr(
        [&] { return ::send(fd_.get(), message.data(), message.size(), flags | MSG_NOSIGNAL); });
    if (n < 0) {
      if ((flags & MSG_DONTWAIT) != 0 && would_block(errno)) return false;
      if (is_peer_gone(errno)) throw PeerLost("peer closed the seqpacket connection (send)");
      posix::throw_errno("seqpacket send of " + std::to_string(message.size()) + " bytes failed");
    }
    if (static_cast<std::size_t>(n) != message.size()) {
      throw std::system_error(std::make_error_code(std::errc::message_size),
                              "seqpacket send took " + std::to_string(n) + " of " +
                                  std::to_string(message.size()) + " bytes");
    }
    return true;
  }

  // One recvmsg per message. MSG_TRUNC makes it return the message's real
  // length while copying at most buffer.size() bytes, so an oversized message
  // is detected without writing past the buffer (the kernel drops its rest).
  std::optional<std::size_t> receive_one(std::span<std::byte> buffer, int flags) {
    ::iovec iov{buffer.data(), buffer.size()};
    ::msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const ssize_t n =
        posix::retry_eintr([&] { return ::recvmsg(fd_.get(), &msg, flags | MSG_TRUNC); });
    if (n < 0) {
      if ((flags & MSG_DONTWAIT) != 0 && would_block(errno)) return std::nullopt;
      if (is_peer_gone(errno)) throw PeerLost("peer reset the seqpacket connection");
      posix::throw_errno("seqpacket receive failed");
    }
    if (n == 0) {
      // End of file and an empty message both read as 0; our senders never
      // send empty messages, so tell them apart only to name the failure.
      if (peer_closed()) throw PeerLost("peer closed the seqpacket connection");
      throw ProtocolError("received an empty seqpacket message");
    }
    const auto size = static_cast<std::size_t>(n);
    if (size > buffer.size() || (msg.msg_flags & MSG_TRUNC) != 0) {
      throw ProtocolError("message of " + std::to_string(size) + " bytes does not fit the " +
                          std::to_string(buffer.size()) + "-byte receive buffer");
    }
    if (size > max_message_) {
      throw ProtocolError("message of " + std::to_string(size) + " bytes exceeds the limit of " +
                          std::to_string(max_message_) + " bytes");
    }
    return size;
  }

  bool peer_closed() const noexcept {
    pollfd p{fd_.get(), POLLRDHUP, 0};
    posix::count_syscall();
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  posix::Fd fd_;
  std::size_t max_message_;
};

sockaddr_un make_address(std::string_view path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path ||
      path.find('\0') != std::string_view::npos) {
    throw std::invalid_argument(
        "malformed uds-seqpacket address '" + std::string(path.substr(0, 64)) +
        "' (expected a socket path of 1.." + std::to_string(sizeof addr.sun_path - 1) + " bytes)");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

void check_max_message(std::size_t max_message, const SeqpacketLimits& limits) {
  if (max_message > limits.max_message) {
    throw std::invalid_argument("uds-seqpacket messages are limited to " +
                                std::to_string(limits.max_message) +
                                " bytes on this machine, not " + std::to_string(max_message));
  }
}

posix::Fd make_socket(const SeqpacketLimits& limits) {
  posix::Fd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) posix::throw_errno("cannot create unix seqpacket socket");
  configure_buffers(fd.get(), limits);
  return fd;
}

// The socket file this process bound; unlinks it on destruction unless
// already removed. A member, so a constructor that throws after bind() still
// removes it.
class SocketName {
 public:
  explicit SocketName(std::string path) : path_(std::move(path)) {}
  SocketName(const SocketName&) = delete;
  SocketName& operator=(const SocketName&) = delete;
  ~SocketName() { remove(); }

  const std::string& path() const noexcept { return path_; }
  void mark_bound() noexcept { bound_ = true; }
  void remove() noexcept {
    if (bound_) {
      ::unlink(path_.c_str());
      bound_ = false;
    }
  }

 private:
  std::string path_;
  bool bound_ = false;
};

class SeqpacketEndpoint : public Endpoint {
 public:
  SeqpacketEndpoint(std::string path, std::size_t max_message, const SeqpacketLimits& limits)
      : name_(std::move(path)), max_message_(max_message), limits_(limits) {
    const std::string& where = name_.path();
    const sockaddr_un addr = make_address(where);
    listen_fd_ = make_socket(limits_);
    // bind() fails with EADDRINUSE if the name exists: creation is exclusive.
    if (::bind(listen_fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      posix::throw_errno("cannot bind unix seqpacket socket " + where);
    }
    name_.mark_bound();
    if (::chmod(where.c_str(), 0600) != 0) posix::throw_errno("cannot chmod " + where);
    if (::listen(listen_fd_.get(), 1) != 0) posix::throw_errno("cannot listen on " + where);
  }

  std::string address() const override { return name_.path(); }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    posix::Fd conn = posix::accept_with_timeout(listen_fd_.get(), timeout, name_.path());
    name_.remove();
    listen_fd_.reset();
    // An accepted unix socket starts with default buffers, not the listener's.
    configure_buffers(conn.get(), limits_);
    return std::make_unique<SeqpacketChannel>(std::move(conn), max_message_);
  }

 private:
  SocketName name_;
  std::size_t max_message_;
  SeqpacketLimits limits_;
  posix::Fd listen_fd_;
};

class SeqpacketMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "uds-seqpacket"; }
  std::string_view family() const override { return "socket"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = probe_limits().max_message,
            .crosses_hosts = false,
            .pollable = true,
            .lossy = false,
            .names = Names::kRunDir,
            .raw_io = true};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    if (options.run_dir.empty()) {
      throw std::invalid_argument("uds-seqpacket needs a run directory");
    }
    const SeqpacketLimits& limits = probe_limits();
    check_max_message(options.max_message, limits);
    return std::make_unique<SeqpacketEndpoint>(options.run_dir + "/" + options.tag + ".seqpacket",
                                               options.max_message, limits);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    const sockaddr_un addr = make_address(address);
    const SeqpacketLimits& limits = probe_limits();
    check_max_message(options.max_message, limits);
    posix::Fd fd = make_socket(limits);
    posix::connect_with_timeout(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr,
                                options.timeout, "unix seqpacket socket " + std::string(address));
    return std::make_unique<SeqpacketChannel>(std::move(fd), options.max_message);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_uds_seqpacket() { return std::make_unique<SeqpacketMechanism>(); }

}  // namespace ipcbench::mech
