// fifo: two named pipes (mkfifo) in the run's private directory, one per
// direction. The address is the common path prefix; "PREFIX.fifo-up" carries
// peer -> listener, "PREFIX.fifo-down" listener -> peer.
//
// Opening a FIFO blocks until the other end is open, and a reader that opens
// before any writer reads end of file at once, so both sides open everything
// O_NONBLOCK (never blocking) and then prove their presence with one
// handshake byte each way, consumed before the framing starts:
//   listen:  mkfifo both, open up for reading (a reader needs no writer).
//   connect: open down for reading, open up for writing, send the byte up,
//            wait (poll, with the connect timeout) for the byte down.
//   accept:  wait (poll, with the accept timeout) for the byte up: the peer
//            now holds both ends; open down for writing, unlink both names,
//            send the byte down.
// Each side waits only for a byte the other sends before it waits itself, so
// neither can deadlock, and every wait has a deadline.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench::mech {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char kUpSuffix[] = ".fifo-up";
constexpr const char kDownSuffix[] = ".fifo-down";
// The handshake byte; anything else first on a FIFO is not our peer.
constexpr std::uint8_t kHello = 0xf1;
// How often connect retries opening the up FIFO for writing while it has no
// reader (ENXIO); the listener holds the reader from listen() on, so this
// only happens if the listener is going away.
constexpr auto kOpenRetry = std::chrono::milliseconds(1);

std::string up_path(const std::string& prefix) { return prefix + kUpSuffix; }
std::string down_path(const std::string& prefix) { return prefix + kDownSuffix; }

// A FIFO name this process created; unlinks it on destruction unless
// already removed.
class FifoName {
 public:
  explicit FifoName(std::string path) : path_(std::move(path)) {
    // mkfifo fails with EEXIST if the name exists: creation is exclusive.
    if (::mkfifo(path_.c_str(), 0600) != 0) posix::throw_errno("cannot create fifo " + path_);
    created_ = true;
    // The umask can only narrow 0600, but a narrower mode would lock us out.
    if (::chmod(path_.c_str(), 0600) != 0) {
      const int err = errno;
      remove();  // the destructor does not run for a failed constructor
      posix::throw_errno(err, "cannot chmod fifo " + path_);
    }
  }
  FifoName(const FifoName&) = delete;
  FifoName& operator=(const FifoName&) = delete;
  ~FifoName() { remove(); }

  const std::string& path() const noexcept { return path_; }

  void remove() noexcept {
    if (created_) {
      ::unlink(path_.c_str());
      created_ = false;
    }
  }

 private:
  std::string path_;
  bool created_ = false;
};

// Opens a FIFO end without blocking (O_NONBLOCK is cleared later, once the
// handshake is done). Returns an empty Fd with errno set on failure.
posix::Fd open_nonblocking(const std::string& path, int access) {
  return posix::Fd(
      posix::retry_eintr([&] { return ::open(path.c_str(), access | O_NONBLOCK | O_CLOEXEC); }));
}

// Guards against an address naming something other than a FIFO: we write
// the handshake byte into what we opened.
void require_fifo(const posix::Fd& fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) posix::throw_errno("cannot stat fifo " + path);
  if (!S_ISFIFO(st.st_mode)) throw std::invalid_argument(path + " is not a fifo");
}

void set_blocking(const posix::Fd& fd, const std::string& path) {
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    posix::throw_errno("cannot make fifo " + path + " blocking");
  }
}

// Waits until `deadline` for the handshake byte on non-blocking `fd` and
// consumes it. Throws Timeout (naming `what`) when it does not come, PeerLost
// if the writer opened and closed again, or when interrupted.
void receive_hello(const posix::Fd& fd, Clock::time_point deadline, const std::string& what,
                   std::chrono::milliseconds timeout) {
  for (;;) {
    std::uint8_t byte = 0;
    const ssize_t n = posix::retry_eintr([&] { return ::read(fd.get(), &byte, 1); });
    if (n == 1) {
      if (byte != kHello) throw ProtocolError("unexpected first byte on fifo " + what);
      return;
    }
    // Before any writer has opened, read() returns 0 on a FIFO, and poll
    // reports POLLHUP only once a writer came and went: so 0 alone means
    // "not yet", and POLLHUP without data means the other side left.
    if (n < 0 && errno != EAGAIN) posix::throw_errno("cannot read from fifo " + what);
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      throw Timeout("no handshake on fifo " + what + " within " + std::to_string(timeout.count()) +
                    " ms");
    }
    pollfd p{fd.get(), POLLIN, 0};
    const timespec ts = posix::to_timespec(left);
    const int r = ::ppoll(&p, 1, &ts, nullptr);
    if (r < 0) {
      if (errno != EINTR) posix::throw_errno("poll on fifo " + what + " failed");
      posix::throw_if_interrupted();
      continue;
    }
    if (r > 0 && (p.revents & POLLIN) == 0 && (p.revents & (POLLHUP | POLLERR)) != 0) {
      throw PeerLost("peer closed fifo " + what + " during the handshake");
    }
  }
}

void send_hello(const posix::Fd& fd, const std::string& path) {
  const std::uint8_t byte = kHello;
  // The FIFO is empty and non-blocking here, so one byte always fits.
  const ssize_t n = posix::retry_eintr([&] { return ::write(fd.get(), &byte, 1); });
  if (n == 1) return;
  if (n < 0 && errno == EPIPE) throw PeerLost("peer closed fifo " + path + " during the handshake");
  posix::throw_errno("cannot write to fifo " + path);
}

class FifoEndpoint : public Endpoint {
 public:
  FifoEndpoint(std::string prefix, std::size_t max_message)
      : prefix_(std::move(prefix)),
        max_message_(max_message),
        up_(up_path(prefix_)),
        down_(down_path(prefix_)) {
    // Holding the reader from now on lets the peer open its writer without
    // waiting for accept().
    up_read_ = open_nonblocking(up_.path(), O_RDONLY);
    if (!up_read_) posix::throw_errno("cannot open fifo " + up_.path());
  }
  // The FifoName members unlink whatever accept() did not.
  ~FifoEndpoint() override = default;

  std::string address() const override { return prefix_; }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    receive_hello(up_read_, Clock::now() + timeout, up_.path(), timeout);
    // The peer opened down for reading before it sent the byte up, so this
    // open finds a reader; ENXIO means it has already gone again.
    posix::Fd down_write = open_nonblocking(down_.path(), O_WRONLY);
    if (!down_write) {
      if (errno == ENXIO) {
        throw PeerLost("peer closed fifo " + down_.path() + " during the handshake");
      }
      posix::throw_errno("cannot open fifo " + down_.path());
    }
    // Both sides hold both ends: the names are no longer needed.
    up_.remove();
    down_.remove();
    send_hello(down_write, down_.path());
    set_blocking(up_read_, up_.path());
    set_blocking(down_write, down_.path());
    return std::make_unique<FramedStreamChannel>(std::move(up_read_), std::move(down_write),
                                                 max_message_, false);
  }

 private:
  std::string prefix_;
  std::size_t max_message_;
  FifoName up_;
  FifoName down_;
  posix::Fd up_read_;
};

// The address is a path prefix; it must be able to name both FIFOs.
void check_address(std::string_view address) {
  if (address.empty() || address.find('\0') != std::string_view::npos ||
      address.size() + sizeof kDownSuffix > PATH_MAX) {
    throw std::invalid_argument("malformed fifo address '" + std::string(address.substr(0, 64)) +
                                "' (expected the path prefix of two fifos)");
  }
}

class FifoMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "fifo"; }
  std::string_view family() const override { return "pipe"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kStream,
            .max_message = kMaxStreamMessage,
            .crosses_hosts = false,
            .pollable = true,
            .lossy = false,
            .names = Names::kRunDir,
            .raw_io = true};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    ignore_sigpipe();
    if (options.run_dir.empty()) throw std::invalid_argument("fifo needs a run directory");
    return std::make_unique<FifoEndpoint>(options.run_dir + "/" + options.tag, options.max_message);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    ignore_sigpipe();
    check_address(address);
    const std::string prefix(address);
    const std::string up = up_path(prefix);
    const std::string down = down_path(prefix);
    const auto deadline = Clock::now() + options.timeout;

    // Down first: the listener treats our byte on up as proof that we hold
    // both ends.
    posix::Fd down_read = open_nonblocking(down, O_RDONLY);
    if (!down_read) posix::throw_errno("cannot open fifo " + down);
    require_fifo(down_read, down);

    posix::Fd up_write;
    for (;;) {
      up_write = open_nonblocking(up, O_WRONLY);
      if (up_write) break;
      if (errno != ENXIO) posix::throw_errno("cannot open fifo " + up);
      // No reader (yet): the listener is not holding its end.
      if (Clock::now() >= deadline) {
        throw Timeout("listener did not hold fifo " + up + " open within " +
                      std::to_string(options.timeout.count()) + " ms");
      }
      const timespec ts = posix::to_timespec(kOpenRetry);
      if (::ppoll(nullptr, 0, &ts, nullptr) < 0 && errno == EINTR) posix::throw_if_interrupted();
    }
    require_fifo(up_write, up);

    send_hello(up_write, up);
    receive_hello(down_read, deadline, down, options.timeout);
    set_blocking(down_read, down);
    set_blocking(up_write, up);
    return std::make_unique<FramedStreamChannel>(std::move(down_read), std::move(up_write),
                                                 options.max_message, false);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_fifo() { return std::make_unique<FifoMechanism>(); }

}  // namespace ipcbench::mech
