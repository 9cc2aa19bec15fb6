// udp: one UDP datagram per message (loopback unless told otherwise). Lossy.
//
// Address: "HOST:PORT" (IPv6 as "[ADDR]:PORT"); the listener binds an
// ephemeral port, so concurrent runs never collide. Handshake: the peer
// connect()s its own socket to the listener and sends a zero-length hello;
// accept() learns the peer's address from it and connect()s back. From then
// on the kernel drops datagrams from anyone else, and a closed peer port
// comes back as ECONNREFUSED (an ICMP error on a connected socket).
//
// This file also defines the datagram channel shared with uds_dgram.cpp
// (namespace datagram, declared there): both mechanisms move messages the
// same way and differ only in addressing and the handshake.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
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
#include <system_error>
#include <utility>
#include <vector>

#include "ipcbench/errors.hpp"
#include "ipcbench/mechanism.hpp"
#include "ipcbench/posix/fd.hpp"
#include "ipcbench/posix/retry.hpp"
#include "ipcbench/posix/socket.hpp"

namespace ipcbench::mech {

// ---------------------------------------------------------------------------
// The datagram channel (udp and uds-dgram).

namespace datagram {

// The shared interface (uds_dgram.cpp repeats these declarations).

// ppoll for `events`; false on timeout or on EINTR without an interrupt
// request; PeerLost when the harness asked for an interrupt.
bool poll_for(int fd, short events, std::chrono::nanoseconds timeout);
// Sets SO_SNDBUF and SO_RCVBUF to the largest sizes allowed without privileges.
void enlarge_buffers(int fd, const std::string& what);
// A channel on a connected datagram socket (one datagram per message, at most
// `max_message` bytes); removes `socket_file` (if not empty) when destroyed.
std::unique_ptr<Channel> make_channel(posix::Fd fd, std::size_t max_message, std::string name,
                                      std::string socket_file);
// Sends the zero-length hello on connected socket `fd`, waiting at most
// `timeout` for room (a unix listener's queue may be full); throws Timeout.
void send_hello(int fd, std::chrono::milliseconds timeout, const std::string& what);

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
    return poll_for(fd_.get(), POLLIN, timeout);
  }
  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    return poll_for(fd_.get(), POLLOUT, timeout);
  }

  int receive_fd() const noexcept override { return fd_.get(); }
  int send_fd() const noexcept override { return fd_.get(); }

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
      poll_for(fd_.get(), POLLIN, left);
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

bool poll_for(int fd, short events, std::chrono::nanoseconds timeout) {
  pollfd p{fd, events, 0};
  const auto ns = std::max<std::int64_t>(timeout.count(), 0);
  const timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  const int r = ::ppoll(&p, 1, &ts, nullptr);
  if (r < 0) {
    if (errno != EINTR) posix::throw_errno("poll failed");
    posix::throw_if_interrupted();
    return false;
  }
  return r > 0;
}

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
    poll_for(fd, POLLOUT, left);
  }
}

}  // namespace datagram

// ---------------------------------------------------------------------------
// udp

namespace {

using AddrInfo = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;
using Clock = std::chrono::steady_clock;

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
constexpr std::size_t kMaxIpv4Payload = 65507;

struct HostPort {
  std::string host;
  std::string port;
};

HostPort split_host_port(std::string_view address) {
  const auto colon = address.rfind(':');
  if (address.find('\0') != std::string_view::npos || colon == std::string_view::npos ||
      colon == 0 || colon + 1 == address.size()) {
    throw std::invalid_argument("malformed udp address '" + std::string(address.substr(0, 100)) +
                                "' (expected HOST:PORT)");
  }
  std::string host(address.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {host, std::string(address.substr(colon + 1))};
}

AddrInfo resolve(const HostPort& hp, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &res);
  if (rc != 0) {
    throw std::invalid_argument("cannot resolve '" + hp.host + ":" + hp.port +
                                "': " + ::gai_strerror(rc));
  }
  return AddrInfo(res, &::freeaddrinfo);
}

std::string format_address(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    std::string out(1, '[');
    out.append(host).append("]:").append(std::to_string(ntohs(a->sin6_port)));
    return out;
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
}

// Two UDP sockets on the loopback address of `family`, connected to each
// other, with the channel's buffer sizes; empty Fds if that fails.
std::pair<posix::Fd, posix::Fd> loopback_pair(int family) {
  std::pair<posix::Fd, posix::Fd> pair;
  sockaddr_storage ss[2] = {};
  socklen_t len = 0;
  for (int i = 0; i < 2; ++i) {
    posix::Fd fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return {};
    sockaddr_storage local{};
    if (family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&local);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&local);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a;
    }
    socklen_t got = len;
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), len) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss[i]), &got) != 0) {
      return {};
    }
    try {
      datagram::enlarge_buffers(fd.get(), "the udp probe socket");
    } catch (const std::system_error&) {
      return {};
    }
    (i == 0 ? pair.first : pair.second) = std::move(fd);
  }
  if (::connect(pair.first.get(), reinterpret_cast<const sockaddr*>(&ss[1]), len) != 0 ||
      ::connect(pair.second.get(), reinterpret_cast<const sockaddr*>(&ss[0]), len) != 0) {
    return {};
  }
  return pair;
}

// Sends one datagram of `size` bytes from `from` and checks that `to`
// receives it whole within a second.
bool carries(int from, int to, std::vector<std::byte>& buf, std::size_t size) {
  if (::send(from, buf.data(), size, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(size)) {
    return false;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(1);
  for (;;) {
    const ssize_t n = ::recv(to, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n == static_cast<ssize_t>(size)) return true;
    if (n < 0 && !would_block(errno)) return false;
    // Nothing yet, or a late datagram of an earlier attempt: wait for ours.
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{to, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()) + 1);
  }
}

// The largest datagram loopback carries: 65507 (the IPv4 limit) unless the
// probe shows otherwise, then the largest that works (binary search).
std::size_t probe_max_message() {
  for (const int family : {AF_INET, AF_INET6}) {
    auto [a, b] = loopback_pair(family);
    if (!a) continue;
    std::vector<std::byte> buf(kMaxIpv4Payload);
    if (carries(a.get(), b.get(), buf, kMaxIpv4Payload)) return kMaxIpv4Payload;
    std::size_t good = 0, bad = kMaxIpv4Payload;
    while (bad - good > 1) {
      const std::size_t mid = good + (bad - good) / 2;
      (carries(a.get(), b.get(), buf, mid) ? good : bad) = mid;
    }
    if (good > 0) return good;
  }
  // No loopback to probe on: the protocol's limit (the kernel enforces the real one).
  return kMaxIpv4Payload;
}

std::size_t max_message() {
  static const std::size_t probed = probe_max_message();
  return probed;
}

// The channel's limit: what the case asked for, at most what UDP carries.
std::size_t channel_limit(std::size_t requested) {
  return requested == 0 ? max_message() : std::min(requested, max_message());
}

class UdpEndpoint : public Endpoint {
 public:
  UdpEndpoint(const std::string& host, std::size_t max_message) : max_message_(max_message) {
    const AddrInfo res = resolve({host, "0"}, true);
    const addrinfo& ai = *res;
    fd_ = posix::Fd(::socket(ai.ai_family, ai.ai_socktype | SOCK_CLOEXEC, ai.ai_protocol));
    if (!fd_) posix::throw_errno("cannot create udp socket");
    datagram::enlarge_buffers(fd_.get(), "udp socket");
    if (::bind(fd_.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
      posix::throw_errno("cannot bind udp socket to " + host);
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      posix::throw_errno("getsockname failed on udp socket");
    }
    address_ = format_address(ss);
  }

  std::string address() const override { return address_; }

  // Waits for the peer's zero-length hello and connects to its sender.
  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) {
        throw Timeout("peer did not say hello to udp " + address_ + " within " +
                      std::to_string(timeout.count()) + " ms");
      }
      if (!datagram::poll_for(fd_.get(), POLLIN, left)) continue;
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      std::byte byte{};
      const ssize_t n = posix::retry_eintr([&] {
        return ::recvfrom(fd_.get(), &byte, 1, MSG_DONTWAIT | MSG_TRUNC,
                          reinterpret_cast<sockaddr*>(&from), &len);
      });
      if (n < 0) {
        if (would_block(errno)) continue;
        posix::throw_errno("receive on udp " + address_ + " failed");
      }
      if (n != 0) continue;  // not a hello: a stray datagram, dropped
      if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&from), len) != 0) {
        posix::throw_errno("cannot connect udp " + address_ + " to the peer at " +
                           format_address(from));
      }
      return datagram::make_channel(std::move(fd_), channel_limit(max_message_), "udp", {});
    }
  }

 private:
  std::size_t max_message_;
  posix::Fd fd_;
  std::string address_;
};

class UdpMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "udp"; }
  std::string_view family() const override { return "socket"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = max_message(),
            .crosses_hosts = true,
            .pollable = true,
            .lossy = true};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    return std::make_unique<UdpEndpoint>(options.bind_host, options.max_message);
  }

  // connect() gives the socket an ephemeral port of the listener's family
  // (an implicit bind) and makes it hear only the listener.
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    const AddrInfo res = resolve(split_host_port(address), false);
    posix::Fd fd;
    int err = 0;
    for (const addrinfo* ai = res.get(); ai != nullptr; ai = ai->ai_next) {
      fd = posix::Fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
      if (!fd) {
        err = errno;
        continue;
      }
      datagram::enlarge_buffers(fd.get(), "udp socket");
      if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) break;
      err = errno;
      fd.reset();
    }
    if (!fd) posix::throw_errno(err, "cannot connect udp socket to " + std::string(address));
    datagram::send_hello(fd.get(), options.timeout, "udp " + std::string(address));
    return datagram::make_channel(std::move(fd), channel_limit(options.max_message), "udp", {});
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_udp() { return std::make_unique<UdpMechanism>(); }

}  // namespace ipcbench::mech
