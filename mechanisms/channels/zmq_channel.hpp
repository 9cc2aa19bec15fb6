// Shared code of the ZeroMQ mechanisms (zmq-ipc, zmq-tcp): a Channel over one
// ZMQ_PAIR socket, the listening Endpoint and a Mechanism base; each .cpp only
// says what it binds and what its addresses look like. Header-only.
//
// Why PAIR: it is exclusive 1:1 and bidirectional, and ZeroMQ keeps message
// boundaries, so one socket serves request/response and streaming alike.
// REQ/REP enforces strict send/receive alternation (no streaming, no
// throughput pattern); PUSH/PULL carries messages one way only (two sockets
// and two connections per channel).
//
// Contexts: each Endpoint/Channel owns its own zmq::context_t (one I/O
// thread), created inside listen()/connect(). A context must never be used
// across fork(), and the conformance suite forks after the parent listened,
// so nothing here is global or static. libzmq blocks all signals in its own
// threads, so the harness's SIGUSR1 and SIGALRM still reach the caller.
//
// Handshake: PAIR has no accept. connect() sends a hello right after
// zmq_connect (queued until the connection is up) and waits for a welcome;
// accept() waits for the hello and answers it. Both therefore honour their
// timeouts, and once they return the connection is up and the socket file
// (zmq-ipc) can go.
//
// Peer loss: ZeroMQ hides disconnects (a PAIR socket just waits for a peer to
// come back), so there is no end of file to report. Blocking calls stay
// interruptible instead: the harness's SIGUSR1 (no SA_RESTART) makes libzmq's
// internal poll fail with EINTR, and retry_zmq() throws PeerLost once an
// interrupt was requested.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <zmq.hpp>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"

namespace ipcbench::mech::zmq_channel {

using Clock = std::chrono::steady_clock;

// Handshake messages; never seen by the Channel's user.
inline constexpr std::string_view kHello = "ipcbench-zmq-hello/1";
inline constexpr std::string_view kWelcome = "ipcbench-zmq-welcome/1";

// ZeroMQ's high-water marks count messages, not bytes. 1000 (ZeroMQ's own
// default) lets the I/O thread batch small messages and keeps a throughput
// sender from blocking on every message; for large messages the mark shrinks
// so one queue holds at most ~kQueueBudget bytes (1000 x 64 MiB would be
// 64 GB). Never 0: that means "no limit".
inline constexpr int kMaxHighWaterMark = 1000;
inline constexpr std::size_t kQueueBudget = 64u << 20;

// ZMQ_LINGER of an established channel. A send returns once ZeroMQ has
// queued the message, not once it left the process, so with linger 0 a peer
// that sends its last reply and exits loses it (seen with 16 MiB echoes).
// Closing therefore waits for queued messages, but only this long; half-open
// sockets and channels whose peer is known to be gone close with linger 0.
inline constexpr int kLingerMs = 2000;

// ZMTP's own handshake commands (READY with its metadata) pass the
// ZMQ_MAXMSGSIZE check too, so the limit never goes below this; the channel
// still rejects anything above max_message itself.
inline constexpr std::size_t kMinMaxMsgSize = 4096;

// Throws std::system_error carrying the ZeroMQ error; ZeroMQ's own error
// numbers (ETERM, EFSM, ...) are unknown to the generic category, so their
// text is added to `what`.
[[noreturn]] inline void throw_zmq(const zmq::error_t& e, std::string what) {
  if (e.num() >= ZMQ_HAUSNUMERO) what.append(": ").append(e.what());
  throw std::system_error(e.num(), std::generic_category(), what);
}

// Runs op() until it does not fail with EINTR; throws PeerLost instead of
// retrying once the harness requested an interrupt (dead or hung peer), and
// std::system_error naming `what` on any other ZeroMQ error.
template <typename Op>
auto retry_zmq(const char* what, Op&& op) -> decltype(op()) {
  for (;;) {
    try {
      return op();
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw_zmq(e, what);
      posix::throw_if_interrupted();
    }
  }
}

inline Clock::time_point deadline_after(std::chrono::nanoseconds timeout) {
  const auto now = Clock::now();
  if (timeout >= Clock::time_point::max() - now) return Clock::time_point::max();
  return now + std::max(timeout, std::chrono::nanoseconds::zero());
}

// Waits with zmq_poll (ZeroMQ's own readiness: it rechecks ZMQ_EVENTS behind
// the edge-triggered ZMQ_FD) until `events` are possible or the deadline has
// passed; false on timeout. A signal restarts the wait for the time left.
inline bool poll_until(zmq::socket_t& socket, short events, Clock::time_point deadline) {
  for (;;) {
    zmq::pollitem_t item{socket.handle(), 0, events, 0};
    std::chrono::milliseconds wait{-1};  // -1: no deadline
    if (deadline != Clock::time_point::max()) {
      // Rounded up: never report a timeout before the deadline.
      wait = std::chrono::ceil<std::chrono::milliseconds>(
          std::max(deadline - Clock::now(), Clock::duration::zero()));
    }
    const int ready = retry_zmq("zmq_poll failed", [&] { return zmq::poll(&item, 1, wait); });
    if (ready > 0) return true;
    if (Clock::now() >= deadline) return false;
  }
}

inline bool poll_for(zmq::socket_t& socket, short events, std::chrono::nanoseconds timeout) {
  return poll_until(socket, events, deadline_after(timeout));
}

// The limit a channel enforces: the caller's max_message, 0 meaning "none
// given" (then the 64 MiB cap that ZeroMQ, lacking a kernel limit, gets).
inline std::size_t effective_max_message(std::size_t requested) {
  if (requested > kMaxStreamMessage) {
    throw std::invalid_argument("max_message of " + std::to_string(requested) +
                                " bytes exceeds the zmq limit of " +
                                std::to_string(kMaxStreamMessage));
  }
  return requested == 0 ? kMaxStreamMessage : requested;
}

// Options common to both ends; set before bind/connect, where ZeroMQ reads them.
inline void configure_socket(zmq::socket_t& socket, std::size_t max_message) {
  const int hwm = static_cast<int>(std::clamp<std::size_t>(
      kQueueBudget / max_message, 1, static_cast<std::size_t>(kMaxHighWaterMark)));
  socket.set(zmq::sockopt::linger, 0);  // until the handshake is done; see kLingerMs
  socket.set(zmq::sockopt::sndhwm, hwm);
  socket.set(zmq::sockopt::rcvhwm, hwm);
  // Larger messages make ZeroMQ drop the connection instead of allocating them.
  socket.set(zmq::sockopt::maxmsgsize,
             static_cast<std::int64_t>(std::max(max_message, kMinMaxMsgSize)));
}

// Receives one handshake message (the caller has seen POLLIN) and checks it.
inline void expect_handshake(zmq::socket_t& socket, std::string_view expected,
                             const std::string& where) {
  zmq::message_t message;
  const auto got = retry_zmq("zmq handshake receive failed",
                             [&] { return socket.recv(message, zmq::recv_flags::dontwait); });
  if (!got || message.to_string_view() != expected) {
    throw ProtocolError(where + ": expected the zmq handshake '" + std::string(expected) + "'");
  }
}

inline void send_handshake(zmq::socket_t& socket, std::string_view text) {
  retry_zmq("zmq handshake send failed",
            [&] { return socket.send(zmq::buffer(text), zmq::send_flags::none); });
}

// One end of an established PAIR connection.
class ZmqChannel final : public Channel {
 public:
  ZmqChannel(zmq::context_t context, zmq::socket_t socket, std::size_t max_message)
      : context_(std::move(context)), socket_(std::move(socket)), max_message_(max_message) {
    socket_.set(zmq::sockopt::linger, kLingerMs);
  }
  ZmqChannel(const ZmqChannel&) = delete;
  ZmqChannel& operator=(const ZmqChannel&) = delete;

  // A dead peer never reads what is queued: do not wait for it.
  ~ZmqChannel() override {
    if (peer_lost_ || posix::interrupt_flag().load(std::memory_order_relaxed)) {
      const int no_linger = 0;
      zmq_setsockopt(socket_.handle(), ZMQ_LINGER, &no_linger, sizeof no_linger);
    }
  }

  void send(std::span<const std::byte> message) override {
    send_with(message, zmq::send_flags::none);
  }

  std::size_t receive(std::span<std::byte> buffer) override {
    // Without ZMQ_RCVTIMEO a blocking receive returns a message or throws.
    return receive_with(buffer, zmq::recv_flags::none).value();
  }

  bool try_send(std::span<const std::byte> message) override {
    return send_with(message, zmq::send_flags::dontwait);
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    return receive_with(buffer, zmq::recv_flags::dontwait);
  }

  // Both wait with zmq_poll on the socket.
  bool wait_receivable(std::chrono::nanoseconds timeout) override {
    return call_interruptible([&] { return poll_for(socket_, ZMQ_POLLIN, timeout); });
  }
  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    return call_interruptible([&] { return poll_for(socket_, ZMQ_POLLOUT, timeout); });
  }
  // One zmq_poll for both: its timeout has millisecond steps, so waiting for
  // each in turn slept a whole millisecond whenever the other came first.
  bool wait_either(std::chrono::nanoseconds timeout) override {
    return call_interruptible(
        [&] { return poll_for(socket_, static_cast<short>(ZMQ_POLLIN | ZMQ_POLLOUT), timeout); });
  }

  // Not pollable: ZMQ_FD is edge-triggered and only means "look at
  // ZMQ_EVENTS"; an epoll user that does not know that would miss messages
  // that were already queued, so receive_fd()/send_fd() keep returning -1.

 private:
  // Runs op() like retry_zmq(); a PeerLost is remembered for the destructor.
  template <typename Op>
  auto call_interruptible(Op&& op) -> decltype(op()) {
    try {
      return op();
    } catch (const PeerLost&) {
      peer_lost_ = true;
      throw;
    }
  }
  template <typename Op>
  auto call(const char* what, Op&& op) -> decltype(op()) {
    return call_interruptible([&] { return retry_zmq(what, op); });
  }

  // Copies the message into a new ZeroMQ message (zero-copy would need the
  // caller's buffer to outlive the send). All or nothing: ZeroMQ queues the
  // whole message, or blocks (none) / returns false (dontwait) at the
  // high-water mark.
  bool send_with(std::span<const std::byte> message, zmq::send_flags flags) {
    check_send_size(message.size());
    const zmq::const_buffer data(message.data(), message.size());
    return call("zmq send failed", [&] { return socket_.send(data, flags); }).has_value();
  }

  std::optional<std::size_t> receive_with(std::span<std::byte> buffer, zmq::recv_flags flags) {
    if (!call("zmq receive failed", [&] { return socket_.recv(in_, flags); })) return std::nullopt;
    return copy_out(buffer);
  }

  void check_send_size(std::size_t size) const {
    if (size == 0 || size > max_message_) {
      throw std::invalid_argument("message of " + std::to_string(size) + " bytes outside 1.." +
                                  std::to_string(max_message_));
    }
  }

  // Copies the received message out and releases it at once, so libzmq's
  // decoder can reuse the receive buffer the message may still reference.
  std::size_t copy_out(std::span<std::byte> buffer) {
    const std::size_t size = in_.size();
    if (size == 0 || size > max_message_ || size > buffer.size()) {
      in_.rebuild();
      throw ProtocolError("zmq message of " + std::to_string(size) + " bytes does not fit (limit " +
                          std::to_string(std::min(max_message_, buffer.size())) + " bytes)");
    }
    std::memcpy(buffer.data(), in_.data(), size);
    in_.rebuild();
    return size;
  }

  // Declared first, destroyed last: the socket must close before the
  // context terminates (zmq_ctx_term waits for open sockets).
  zmq::context_t context_;
  zmq::socket_t socket_;
  zmq::message_t in_;  // reused for every receive
  std::size_t max_message_;
  bool peer_lost_ = false;
};

// Owns a socket file: removes it on remove() or destruction.
class SocketFile {
 public:
  explicit SocketFile(std::string path) : path_(std::move(path)) {}
  SocketFile(const SocketFile&) = delete;
  SocketFile& operator=(const SocketFile&) = delete;
  ~SocketFile() { remove(); }

  void remove() noexcept {
    if (!path_.empty()) {
      ::unlink(path_.c_str());
      path_.clear();
    }
  }

 private:
  std::string path_;
};

// What listen() binds: a ZeroMQ endpoint and, for ipc://, the file it creates.
struct BindTarget {
  std::string endpoint;
  std::string socket_file;  // empty: none
};

// The bound PAIR socket, waiting for the peer's hello.
class ZmqEndpoint final : public Endpoint {
 public:
  // Binds `socket` (configured, created in `context`) to `target`.
  ZmqEndpoint(std::string name, zmq::context_t context, zmq::socket_t socket,
              const BindTarget& target, std::size_t max_message)
      : name_(std::move(name)),
        max_message_(max_message),
        context_(std::move(context)),
        socket_(std::move(socket)) {
    if (!target.socket_file.empty()) {
      // ZeroMQ unlinks whatever has the name before binding; refuse instead,
      // so bind is exclusive (the run directory is private, so no race).
      struct stat st;
      if (::lstat(target.socket_file.c_str(), &st) == 0) {
        posix::throw_errno(EEXIST, "cannot bind " + name_ + " to " + target.socket_file);
      }
      socket_file_.emplace(target.socket_file);  // from here on removed on every path
    }
    try {
      socket_.bind(target.endpoint);
    } catch (const zmq::error_t& e) {
      throw_zmq(e, "cannot bind " + name_ + " to " + target.endpoint);
    }
    // ZeroMQ created the file with the umask's mode; the directory is 0700,
    // so nobody else could use it meanwhile.
    if (socket_file_ && ::chmod(target.socket_file.c_str(), 0600) != 0) {
      posix::throw_errno("cannot chmod " + target.socket_file);
    }
    address_ = socket_.get(zmq::sockopt::last_endpoint);  // the real port for tcp://...:*
  }

  // Members clean up in reverse order: file, socket, then context.
  ~ZmqEndpoint() override = default;

  std::string address() const override { return address_; }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    if (accepted_) throw std::logic_error(name_ + ": accept called twice");
    if (!poll_for(socket_, ZMQ_POLLIN, timeout)) {
      throw Timeout("no peer connected to " + name_ + " endpoint " + address_ + " within " +
                    std::to_string(timeout.count()) + " ms");
    }
    expect_handshake(socket_, kHello, name_ + " accept");
    send_handshake(socket_, kWelcome);
    accepted_ = true;
    // The peer is connected: the name is no longer needed. The listener
    // itself stays (unbinding would also close the accepted connection);
    // PAIR refuses a second peer anyway.
    if (socket_file_) socket_file_->remove();
    return std::make_unique<ZmqChannel>(std::move(context_), std::move(socket_), max_message_);
  }

 private:
  std::string name_;
  std::size_t max_message_;
  zmq::context_t context_;
  zmq::socket_t socket_;
  std::optional<SocketFile> socket_file_;
  std::string address_;
  bool accepted_ = false;
};

// What both mechanisms share; a subclass names the transport.
class ZmqMechanism : public Mechanism {
 public:
  std::string_view family() const override { return "zmq"; }

  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = kMaxStreamMessage,  // no kernel limit: capped like the streams
            .crosses_hosts = crosses_hosts(),
            .pollable = false,  // see ZmqChannel: ZMQ_FD is not a readiness descriptor
            .lossy = false,     // PAIR with blocking sends waits at the high-water mark
            // Into a ZeroMQ message, into the kernel (the I/O thread), out of
            // it (the peer's), out of the message (copy_out): four at least.
            .copies = 4,
            .names = crosses_hosts() ? Names::kNone : Names::kRunDir};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    const BindTarget target = bind_target(options);
    const std::size_t max_message = effective_max_message(options.max_message);
    zmq::context_t context(1);
    zmq::socket_t socket(context, zmq::socket_type::pair);
    configure(socket, target.endpoint, max_message);
    configure_listener(socket, options);
    return std::make_unique<ZmqEndpoint>(std::string(name()), std::move(context), std::move(socket),
                                         target, max_message);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    check_address(address);
    const std::size_t max_message = effective_max_message(options.max_message);
    const std::string endpoint(address);
    const std::string name_text(name());
    // Declared in this order so the socket closes before the context ends.
    zmq::context_t context(1);
    zmq::socket_t socket(context, zmq::socket_type::pair);
    configure(socket, endpoint, max_message);
    try {
      socket.connect(endpoint);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINVAL || e.num() == EPROTONOSUPPORT) {
        throw std::invalid_argument("malformed " + name_text + " address '" + endpoint +
                                    "': " + e.what());
      }
      throw_zmq(e, "cannot connect " + name_text + " to " + endpoint);
    }
    // Queued on the connecting side until the connection is up.
    send_handshake(socket, kHello);
    if (!poll_for(socket, ZMQ_POLLIN, options.timeout)) {
      throw Timeout("no answer from " + name_text + " listener " + endpoint + " within " +
                    std::to_string(options.timeout.count()) + " ms");
    }
    expect_handshake(socket, kWelcome, name_text + " connect");
    return std::make_unique<ZmqChannel>(std::move(context), std::move(socket), max_message);
  }

 protected:
  virtual bool crosses_hosts() const = 0;
  // "ipc://" or "tcp://": connect() accepts only addresses in this scheme.
  virtual std::string_view scheme() const = 0;
  virtual BindTarget bind_target(const ListenOptions& options) const = 0;
  // Options of the listening socket that depend on ListenOptions (set before bind).
  virtual void configure_listener(zmq::socket_t& /*socket*/,
                                  const ListenOptions& /*options*/) const {}
  // Socket options that depend on the endpoint (e.g. ZMQ_IPV6).
  virtual void configure_transport(zmq::socket_t& /*socket*/, std::string_view /*endpoint*/) const {
  }

  // Throws std::invalid_argument unless `address` is "<scheme><something>"
  // without NUL bytes (ZeroMQ would silently cut the C string there), and
  // returns the part after the scheme. Subclasses add transport checks.
  virtual std::string_view check_address(std::string_view address) const {
    if (!address.starts_with(scheme()) || address.size() == scheme().size() ||
        address.find('\0') != std::string_view::npos) {
      std::string shown(address.substr(0, 200));
      std::replace(shown.begin(), shown.end(), '\0', '?');
      throw std::invalid_argument("malformed " + std::string(name()) + " address '" + shown +
                                  "' (expected " + std::string(scheme()) + "...)");
    }
    return address.substr(scheme().size());
  }

 private:
  void configure(zmq::socket_t& socket, std::string_view endpoint, std::size_t max_message) const {
    configure_socket(socket, max_message);
    configure_transport(socket, endpoint);
  }
};

}  // namespace ipcbench::mech::zmq_channel
