// uds-dgram: one Unix domain datagram per message, socket files in the run's
// private directory. Declared lossy like every datagram socket, although
// Linux blocks a sender whose peer is connected back instead of dropping.
//
// Address: the listener's socket file `<run_dir>/<tag>.dgram`. Handshake: the
// peer connect()s to it, binds its own file `<address>.peer` (so the listener
// can answer) and sends a zero-length hello; accept() checks the hello came
// from that file, connect()s back and removes both files. From then on each
// socket hears only the other, and a send to a closed peer fails with
// ECONNREFUSED.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
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

using Clock = std::chrono::steady_clock;

// The connecting side's socket file is the listener's name plus this.
constexpr char kPeerSuffix[] = ".peer";

// Used only if the probe cannot run at all: fits the smallest send buffer.
constexpr std::size_t kFallbackMaxMessage = 2048;

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// Removes a file when a setup step fails after it was created.
struct RemoveOnFailure {
  const std::string& path;
  bool armed = true;
  ~RemoveOnFailure() {
    if (armed) ::unlink(path.c_str());
  }
};

sockaddr_un make_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    throw std::invalid_argument("unix socket path '" + path.substr(0, 100) +
                                "' is empty or longer than " +
                                std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// The file name in a unix socket address as returned by recvfrom (may lack
// its terminating NUL; empty for an unnamed socket).
std::string path_of(const sockaddr_un& addr, socklen_t len) {
  const std::size_t offset = offsetof(sockaddr_un, sun_path);
  if (len <= offset) return {};
  const std::size_t max = std::min<std::size_t>(len - offset, sizeof addr.sun_path);
  return std::string(addr.sun_path, ::strnlen(addr.sun_path, max));
}

// Sends one datagram of `size` bytes and checks the other end receives it whole.
bool carries(int from, int to, std::vector<std::byte>& buf, std::size_t size) {
  if (::send(from, buf.data(), size, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(size)) {
    return false;  // EMSGSIZE above the send buffer, ENOBUFS/ENOMEM if it cannot be allocated
  }
  // Delivery is synchronous: the datagram is queued when send returns.
  return ::recv(to, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC) == static_cast<ssize_t>(size);
}

// The largest datagram a socketpair with the channel's buffer sizes accepts
// (binary search; the kernel refuses anything above the send buffer).
std::size_t probe_max_message() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0) return kFallbackMaxMessage;
  const posix::Fd a(sv[0]);
  const posix::Fd b(sv[1]);
  int sndbuf = 0;
  socklen_t len = sizeof sndbuf;
  try {
    datagram::enlarge_buffers(a.get(), "the uds-dgram probe socket");
    datagram::enlarge_buffers(b.get(), "the uds-dgram probe socket");
  } catch (const std::system_error&) {
    return kFallbackMaxMessage;
  }
  if (::getsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) != 0 || sndbuf <= 0) {
    return kFallbackMaxMessage;
  }
  std::vector<std::byte> buf(static_cast<std::size_t>(sndbuf) + 1);
  std::size_t good = 0, bad = buf.size();
  while (bad - good > 1) {
    const std::size_t mid = good + (bad - good) / 2;
    (carries(a.get(), b.get(), buf, mid) ? good : bad) = mid;
  }
  return good > 0 ? good : kFallbackMaxMessage;
}

std::size_t max_message() {
  static const std::size_t probed = probe_max_message();
  return probed;
}

// The channel's limit: what the case asked for, at most what the socket takes.
std::size_t channel_limit(std::size_t requested) {
  return requested == 0 ? max_message() : std::min(requested, max_message());
}

class UdsDgramEndpoint : public Endpoint {
 public:
  UdsDgramEndpoint(std::string path, std::size_t max_message)
      : path_(std::move(path)), peer_path_(path_ + kPeerSuffix), max_message_(max_message) {
    const sockaddr_un addr = make_address(path_);
    make_address(peer_path_);  // the peer must be able to bind its name too
    fd_ = posix::Fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd_) posix::throw_errno("cannot create unix datagram socket");
    datagram::enlarge_buffers(fd_.get(), "unix datagram socket " + path_);
    // bind() fails with EADDRINUSE if the name exists: creation is exclusive.
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      posix::throw_errno("cannot bind unix datagram socket " + path_);
    }
    bound_ = true;
    if (::chmod(path_.c_str(), 0600) != 0) {
      const int err = errno;
      remove_names();  // the destructor does not run for a failed constructor
      posix::throw_errno(err, "cannot chmod " + path_);
    }
  }
  ~UdsDgramEndpoint() override { remove_names(); }

  std::string address() const override { return path_; }

  // Waits for the zero-length hello from the peer's file and connects to it.
  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) {
        throw Timeout("peer did not say hello to " + path_ + " within " +
                      std::to_string(timeout.count()) + " ms");
      }
      if (!posix::poll_for(fd_.get(), POLLIN, left)) continue;
      sockaddr_un from{};
      socklen_t len = sizeof from;
      std::byte byte{};
      const ssize_t n = posix::retry_eintr([&] {
        return ::recvfrom(fd_.get(), &byte, 1, MSG_DONTWAIT | MSG_TRUNC,
                          reinterpret_cast<sockaddr*>(&from), &len);
      });
      if (n < 0) {
        if (would_block(errno)) continue;
        posix::throw_errno("receive on " + path_ + " failed");
      }
      // Only a hello from the expected file counts; anything else is dropped.
      if (n != 0 || path_of(from, len) != peer_path_) continue;
      // ENOENT / ECONNREFUSED: the peer already closed its socket. As with a
      // stream peer that connects and hangs up, the channel still comes back;
      // its unconnected socket reports PeerLost (ENOTCONN) when used.
      if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&from), len) != 0 &&
          errno != ENOENT && errno != ECONNREFUSED) {
        posix::throw_errno("cannot connect unix datagram socket " + path_ + " to " + peer_path_);
      }
      remove_names();  // connected sockets no longer need their names
      return datagram::make_channel(std::move(fd_), channel_limit(max_message_), "uds-dgram", {});
    }
  }

 private:
  // Removes our file and the peer's (both in the run's private directory).
  void remove_names() noexcept {
    if (bound_) {
      ::unlink(path_.c_str());
      ::unlink(peer_path_.c_str());
      bound_ = false;
    }
  }

  std::string path_;
  std::string peer_path_;
  std::size_t max_message_;
  posix::Fd fd_;
  bool bound_ = false;
};

class UdsDgramMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "uds-dgram"; }
  std::string_view family() const override { return "socket"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = max_message(),
            .crosses_hosts = false,
            .pollable = true,
            .lossy = true,
            .names = Names::kRunDir,
            .raw_io = true};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    if (options.run_dir.empty()) throw std::invalid_argument("uds-dgram needs a run directory");
    return std::make_unique<UdsDgramEndpoint>(options.run_dir + "/" + options.tag + ".dgram",
                                              options.max_message);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    const std::string listener(address);
    // Absolute and NUL-free, so the peer's file lands next to the listener's.
    if (listener.empty() || listener.front() != '/' || listener.find('\0') != std::string::npos) {
      throw std::invalid_argument("uds-dgram address '" + listener.substr(0, 100) +
                                  "' is not an absolute socket path");
    }
    const sockaddr_un listener_addr = make_address(listener);
    const std::string own_path = listener + kPeerSuffix;
    const sockaddr_un own_addr = make_address(own_path);

    posix::Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) posix::throw_errno("cannot create unix datagram socket");
    datagram::enlarge_buffers(fd.get(), "unix datagram socket " + own_path);
    // Connect before binding, so a wrong address leaves no file behind.
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&listener_addr),
                  sizeof listener_addr) != 0) {
      posix::throw_errno("cannot connect to unix datagram socket " + listener);
    }
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&own_addr), sizeof own_addr) != 0) {
      posix::throw_errno("cannot bind unix datagram socket " + own_path);
    }
    // The file exists now: the channel removes it when destroyed (the
    // listener normally has already); until then, this guard does.
    RemoveOnFailure guard{own_path};
    if (::chmod(own_path.c_str(), 0600) != 0) posix::throw_errno("cannot chmod " + own_path);
    datagram::send_hello(fd.get(), options.timeout, listener);
    auto channel = datagram::make_channel(std::move(fd), channel_limit(options.max_message),
                                          "uds-dgram", own_path);
    guard.armed = false;
    return channel;
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_uds_dgram() { return std::make_unique<UdsDgramMechanism>(); }

}  // namespace ipcbench::mech
