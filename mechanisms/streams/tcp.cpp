// tcp: a TCP connection with TCP_NODELAY (loopback unless told otherwise).
//
// Address: "HOST:PORT" (IPv6 as "[ADDR]:PORT"). The listener binds an
// ephemeral port, so concurrent runs never collide.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/socket.hpp"

namespace ipcbench::mech {
namespace {

using posix::format_address;
using posix::HostPort;
using posix::numeric_host;
using posix::split_host_port;

// Resolves numerically or by name; the caller owns the result.
addrinfo* resolve(const HostPort& hp, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &res);
  if (rc != 0) {
    throw std::invalid_argument("cannot resolve '" + hp.host + ":" + hp.port +
                                "': " + ::gai_strerror(rc));
  }
  return res;
}

class TcpEndpoint : public Endpoint {
 public:
  TcpEndpoint(const std::string& host, std::size_t max_message, std::string allowed_peer)
      : max_message_(max_message), allowed_peer_(std::move(allowed_peer)) {
    addrinfo* res = resolve({host, "0"}, true);
    const addrinfo& ai = *res;
    listen_fd_ = posix::Fd(::socket(ai.ai_family, ai.ai_socktype | SOCK_CLOEXEC, ai.ai_protocol));
    const int err = errno;
    if (!listen_fd_) {
      ::freeaddrinfo(res);
      posix::throw_errno(err, "cannot create tcp socket");
    }
    if (::bind(listen_fd_.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
      const int e = errno;
      ::freeaddrinfo(res);
      posix::throw_errno(e, "cannot bind tcp socket to " + host);
    }
    ::freeaddrinfo(res);
    if (::listen(listen_fd_.get(), 1) != 0) posix::throw_errno("cannot listen on tcp socket");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      posix::throw_errno("getsockname failed");
    }
    address_ = format_address(ss);
  }

  std::string address() const override { return address_; }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    posix::Fd conn;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      // (A zero timeout makes accept_with_timeout report the timeout.)
      conn = posix::accept_with_timeout(listen_fd_.get(), std::max(left, decltype(left)::zero()),
                                        "tcp " + address_);
      if (allowed_peer_.empty()) break;
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      if (::getpeername(conn.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
          numeric_host(ss) == allowed_peer_) {
        break;
      }
      conn.reset();  // not the client that set up the case: refused, keep waiting
    }
    listen_fd_.reset();
    posix::set_socket_option(conn.get(), IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    return std::make_unique<FramedStreamChannel>(std::move(conn), posix::Fd(), max_message_, true);
  }

 private:
  std::size_t max_message_;
  std::string allowed_peer_;
  posix::Fd listen_fd_;
  std::string address_;
};

class TcpMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "tcp"; }
  std::string_view family() const override { return "socket"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kStream,
            .max_message = kMaxStreamMessage,
            .crosses_hosts = true,
            .pollable = true,
            .lossy = false,
            .raw_io = true};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    return std::make_unique<TcpEndpoint>(options.bind_host, options.max_message,
                                         options.allowed_peer);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    addrinfo* res = resolve(split_host_port(address, "tcp"), false);
    posix::Fd fd;
    int err = 0;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      fd = posix::Fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
      if (!fd) {
        err = errno;
        continue;
      }
      try {
        posix::connect_with_timeout(fd.get(), ai->ai_addr, ai->ai_addrlen, options.timeout,
                                    "tcp " + std::string(address));
        break;
      } catch (const std::system_error& e) {
        err = e.code().value();
        fd.reset();
      }
    }
    ::freeaddrinfo(res);
    if (!fd) posix::throw_errno(err, "cannot connect to tcp " + std::string(address));
    posix::set_socket_option(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    return std::make_unique<FramedStreamChannel>(std::move(fd), posix::Fd(), options.max_message,
                                                 true);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_tcp() { return std::make_unique<TcpMechanism>(); }

}  // namespace ipcbench::mech
