// udp: one UDP datagram per message (loopback unless told otherwise). Lossy.
//
// Address: "HOST:PORT" (IPv6 as "[ADDR]:PORT"); the listener binds an
// ephemeral port, so concurrent runs never collide. Handshake: the peer
// connect()s its own socket to the listener and sends a zero-length hello;
// accept() learns the peer's address from it and connect()s back. From then
// on the kernel drops datagrams from anyone else, and a closed peer port
// comes back as ECONNREFUSED (an ICMP error on a connected socket).
//
// Messages move through the datagram channel shared with uds-dgram
// (datagram_channel.hpp).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "mechanisms/channels/datagram_channel.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/socket.hpp"

namespace ipcbench::mech {
namespace {

using posix::format_address;
using posix::HostPort;
using posix::numeric_host;
using posix::split_host_port;

using AddrInfo = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;
using Clock = std::chrono::steady_clock;

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
constexpr std::size_t kMaxIpv4Payload = 65507;

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
  UdpEndpoint(const std::string& host, std::size_t max_message, std::string allowed_peer)
      : max_message_(max_message), allowed_peer_(std::move(allowed_peer)) {
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
      if (!posix::poll_for(fd_.get(), POLLIN, left)) continue;
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
      if (!allowed_peer_.empty() && numeric_host(from) != allowed_peer_)
        continue;  // not our client
      if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&from), len) != 0) {
        posix::throw_errno("cannot connect udp " + address_ + " to the peer at " +
                           format_address(from));
      }
      return datagram::make_channel(std::move(fd_), channel_limit(max_message_), "udp", {});
    }
  }

 private:
  std::size_t max_message_;
  std::string allowed_peer_;
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
            .lossy = true,
            .raw_io = true};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    return std::make_unique<UdpEndpoint>(options.bind_host, options.max_message,
                                         options.allowed_peer);
  }

  // connect() gives the socket an ephemeral port of the listener's family
  // (an implicit bind) and makes it hear only the listener.
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    const AddrInfo res = resolve(split_host_port(address, "udp"), false);
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
