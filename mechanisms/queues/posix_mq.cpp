// posix-mq: POSIX message queues (mq_open), one queue per direction.
//
// The listener creates "/ipcbench.<pid>.<tag>.up" (peer -> listener) and
// "/ipcbench.<pid>.<tag>.down" (listener -> peer) exclusively with mode 0600.
// The peer opens both by name and sends a hello on the up queue; accept()
// waits for it and unlinks both names at once, so from then on only the open
// descriptors keep the queues alive and the kernel frees them with the last
// close. Names outlive a process only if it dies between listen and accept;
// its owner record (object_log.hpp) names them then.
// Address: "UP_NAME,DOWN_NAME,MSGSIZE".
//
// Each message is one mq message. Queues have no end of file: a dead peer is
// noticed by the harness's watchdog, which interrupts the blocked call
// (EINTR -> PeerLost). An orderly close is announced in-band by a zero-length
// message (real messages are 1..max bytes), sent without blocking.
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/limits.hpp"
#include "mechanisms/posix/object_log.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/socket.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench::mech {
namespace {

// Small messages still get a queue slot of this size (headers, hellos).
constexpr long kMinMsgSize = 64;
// Queue depth aims at about this much payload per direction, like a pipe's
// default buffer, so throughput compares at similar buffering; the depth is
// capped by what mq_open allows (msg_max unprivileged) and at least 1.
constexpr long kQueueBytes = 64 * 1024;
constexpr long kMaxDepth = kQueueBytes / kMinMsgSize;
constexpr char kHello[] = "ipcbench posix-mq hello";

// On Linux an mqd_t is a file descriptor (close(2) is mq_close), so the
// suite's Fd owns it and it can be polled.
static_assert(std::is_same_v<mqd_t, int>, "mqd_t must be a descriptor");

// What this machine allows, found by creating queues (see probe_limits()).
struct Limits {
  std::size_t max_message = 0;  // largest mq_msgsize for a pair of queues
  long max_depth = 0;           // largest mq_maxmsg (up to kMaxDepth)
};

[[noreturn]] void throw_mq_error(int err, const std::string& what, long maxmsg = 0,
                                 long msgsize = 0) {
  posix::throw_errno(err, what + posix::mq_hint(err, maxmsg, msgsize));
}

// Creates `name` exclusively (mode 0600), recorded in the object log before
// it exists; an empty Fd with errno set on failure.
posix::Fd create_queue(const std::string& name, int access, long depth, long msgsize) {
  mq_attr attr{};
  attr.mq_maxmsg = depth;
  attr.mq_msgsize = msgsize;
  objects::creating(objects::posix_mq(name));
  posix::Fd q(::mq_open(name.c_str(), access | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr));
  if (!q) {
    const int err = errno;
    objects::removed(objects::posix_mq(name));
    errno = err;
  }
  return q;
}

// Unlinks a queue this process created and says so in the object log.
void unlink_queue(const std::string& name) noexcept {
  ::mq_unlink(name.c_str());
  objects::removed(objects::posix_mq(name));
}

posix::Fd open_queue(const std::string& name, int flags) {
  posix::Fd q(::mq_open(name.c_str(), flags | O_CLOEXEC));
  if (!q) {
    const int err = errno;
    std::string what = "cannot open posix-mq queue " + name;
    if (err == ENOENT) what += " (the listener is gone, or the address is stale)";
    posix::throw_errno(err, what);  // no O_CREAT: EMFILE is RLIMIT_NOFILE
  }
  return q;
}

// Whether two queues of this shape can exist at once (a channel needs both;
// RLIMIT_MSGQUEUE counts them together). The probe queues are unlinked as
// soon as they exist and closed on return.
bool can_create_pair(long depth, long msgsize) {
  static std::atomic<unsigned> counter{0};
  const std::string stem = objects::posix_name("probe", std::to_string(counter.fetch_add(1)));
  posix::Fd a = create_queue(stem + ".a", O_RDONLY, depth, msgsize);
  if (!a) return false;
  unlink_queue(stem + ".a");
  posix::Fd b = create_queue(stem + ".b", O_RDONLY, depth, msgsize);
  if (!b) return false;
  unlink_queue(stem + ".b");
  return true;
}

// Largest value in [lo, hi] for which ok() holds, assuming ok(lo) holds and
// ok is monotonic (true up to some point, false beyond).
template <typename Ok>
long largest_ok(long lo, long hi, Ok ok) {
  if (ok(hi)) return hi;
  while (hi - lo > 1) {  // ok(lo), !ok(hi)
    const long mid = lo + (hi - lo) / 2;
    (ok(mid) ? lo : hi) = mid;
  }
  return lo;
}

// The real limits depend on privileges (CAP_SYS_RESOURCE may exceed
// msgsize_max up to a hard limit), on RLIMIT_MSGQUEUE (bytes per user over
// all queues, privileged or not) and on what the user already holds, so
// /proc alone would mislead: ask mq_open. Binary search on msgsize with
// depth 1 (the depth a channel of the largest messages gets), then on depth.
Limits probe_limits() {
  Limits limits;
  if (!can_create_pair(1, kMinMsgSize)) {
    // No queue at all now (a limit is reached): claim the sysctl's limit so
    // the cases still run and listen() fails naming the limit, instead of
    // every case being skipped as too large.
    std::ifstream in("/proc/sys/fs/mqueue/msgsize_max");
    long msgsize_max = 8192;
    if (!(in >> msgsize_max) || msgsize_max < kMinMsgSize) msgsize_max = 8192;
    limits.max_message = static_cast<std::size_t>(msgsize_max);
    limits.max_depth = 1;
    return limits;
  }
  const long largest = largest_ok(kMinMsgSize, static_cast<long>(kMaxStreamMessage),
                                  [](long s) { return can_create_pair(1, s); });
  limits.max_message = static_cast<std::size_t>(largest);
  limits.max_depth =
      largest_ok(1, kMaxDepth, [](long d) { return can_create_pair(d, kMinMsgSize); });
  return limits;
}

const Limits& limits() {
  static const Limits probed = probe_limits();
  return probed;
}

std::string to_string(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

std::string describe(const std::string& up, const std::string& down) {
  return "posix-mq queues " + up + " and " + down;
}

// mq_timed* take an absolute CLOCK_REALTIME deadline.
timespec realtime_deadline(std::chrono::nanoseconds timeout) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const timespec rel = posix::to_timespec(timeout);
  timespec t{now.tv_sec + rel.tv_sec, now.tv_nsec + rel.tv_nsec};
  if (t.tv_nsec >= 1'000'000'000) {
    t.tv_sec += 1;
    t.tv_nsec -= 1'000'000'000;
  }
  return t;
}

// Both descriptors of one queue end: blocking calls use `blocking`, try_*
// and readiness use `nonblocking`. Two descriptors instead of toggling
// O_NONBLOCK with mq_setattr: no mode switch ever costs a system call, even
// when a case mixes blocking and non-blocking calls.
struct QueueEnd {
  posix::Fd blocking;
  posix::Fd nonblocking;
};

class PosixMqChannel : public Channel {
 public:
  PosixMqChannel(QueueEnd receive_end, QueueEnd send_end, std::size_t msgsize, std::string what)
      : receive_(std::move(receive_end)),
        send_(std::move(send_end)),
        msgsize_(msgsize),
        scratch_(new char[msgsize]),
        what_(std::move(what)) {}

  ~PosixMqChannel() override {
    // Best effort, never blocking: a full queue simply carries no notice.
    if (send_.nonblocking) ::mq_send(send_.nonblocking.get(), "", 0, 0);
  }

  void send(std::span<const std::byte> message) override {
    check_size(message.size());
    const int r = posix::retry_eintr([&] {
      return ::mq_send(send_.blocking.get(), reinterpret_cast<const char*>(message.data()),
                       message.size(), 0);
    });
    if (r != 0) posix::throw_errno("mq_send on " + what_ + " failed");
  }

  std::size_t receive(std::span<std::byte> buffer) override {
    check_open();
    // mq_receive refuses (EMSGSIZE) a buffer smaller than mq_msgsize, even
    // for a short message: receive into our own buffer then, and copy.
    char* const dst = direct(buffer) ? reinterpret_cast<char*>(buffer.data()) : scratch_.get();
    const ssize_t n = posix::retry_eintr(
        [&] { return ::mq_receive(receive_.blocking.get(), dst, msgsize_, nullptr); });
    if (n < 0) posix::throw_errno("mq_receive on " + what_ + " failed");
    return deliver(n, buffer);
  }

  bool try_send(std::span<const std::byte> message) override {
    check_size(message.size());
    const int r = posix::retry_eintr([&] {
      return ::mq_send(send_.nonblocking.get(), reinterpret_cast<const char*>(message.data()),
                       message.size(), 0);
    });
    if (r == 0) return true;
    if (errno == EAGAIN) return false;
    posix::throw_errno("mq_send on " + what_ + " failed");
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    check_open();
    char* const dst = direct(buffer) ? reinterpret_cast<char*>(buffer.data()) : scratch_.get();
    const ssize_t n = posix::retry_eintr(
        [&] { return ::mq_receive(receive_.nonblocking.get(), dst, msgsize_, nullptr); });
    if (n < 0) {
      if (errno == EAGAIN) return std::nullopt;
      posix::throw_errno("mq_receive on " + what_ + " failed");
    }
    return deliver(n, buffer);
  }

  // Both poll(2) the queue's descriptor (Linux mq descriptors are pollable).
  bool wait_receivable(std::chrono::nanoseconds timeout) override {
    return posix::poll_for(receive_.nonblocking.get(), POLLIN, timeout);
  }
  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    return posix::poll_for(send_.nonblocking.get(), POLLOUT, timeout);
  }

  // One system call: mq_timedreceive with the deadline.
  std::optional<std::size_t> receive_for(std::span<std::byte> buffer,
                                         std::chrono::nanoseconds timeout) override {
    check_open();
    char* const dst = direct(buffer) ? reinterpret_cast<char*>(buffer.data()) : scratch_.get();
    const timespec deadline = realtime_deadline(timeout);
    const ssize_t n = posix::retry_eintr([&] {
      return ::mq_timedreceive(receive_.blocking.get(), dst, msgsize_, nullptr, &deadline);
    });
    if (n < 0) {
      if (errno == ETIMEDOUT) return std::nullopt;
      posix::throw_errno("mq_timedreceive on " + what_ + " failed");
    }
    return deliver(n, buffer);
  }

  int receive_fd() const noexcept override { return receive_.nonblocking.get(); }
  int send_fd() const noexcept override { return send_.nonblocking.get(); }

 private:
  bool direct(std::span<std::byte> buffer) const noexcept { return buffer.size() >= msgsize_; }

  void check_size(std::size_t size) const {
    if (size == 0 || size > msgsize_) {
      throw std::invalid_argument("posix-mq message of " + std::to_string(size) +
                                  " bytes (must be 1.." + std::to_string(msgsize_) + ")");
    }
  }

  void check_open() const {
    if (peer_closed_) throw PeerLost("the peer closed its end of " + what_);
  }

  // Checks a received message (in the caller's buffer or scratch_).
  std::size_t deliver(ssize_t n, std::span<std::byte> buffer) {
    const auto size = static_cast<std::size_t>(n);
    if (size == 0) {
      peer_closed_ = true;
      check_open();
    }
    if (!direct(buffer)) {
      if (size > buffer.size()) {
        throw ProtocolError("posix-mq message of " + std::to_string(size) +
                            " bytes does not fit the " + std::to_string(buffer.size()) +
                            "-byte receive buffer");
      }
      std::memcpy(buffer.data(), scratch_.get(), size);
    }
    return size;
  }

  // EINTR is a wake-up (false) unless the harness asked for an interrupt.
  QueueEnd receive_;
  QueueEnd send_;
  std::size_t msgsize_;
  std::unique_ptr<char[]> scratch_;  // msgsize_ bytes, for buffers smaller than that
  std::string what_;
  bool peer_closed_ = false;
};

// A queue name, unlinked when this object goes if it still exists: a
// constructor that throws halfway leaves no name behind.
class QueueName {
 public:
  explicit QueueName(std::string name) : name_(std::move(name)) {}
  QueueName(const QueueName&) = delete;
  QueueName& operator=(const QueueName&) = delete;
  ~QueueName() { unlink(); }

  const std::string& str() const noexcept { return name_; }
  void mark_linked() noexcept { linked_ = true; }
  void unlink() noexcept {
    if (linked_) unlink_queue(name_);
    linked_ = false;
  }

 private:
  std::string name_;
  bool linked_ = false;
};

class PosixMqEndpoint : public Endpoint {
 public:
  PosixMqEndpoint(std::string up, std::string down, long msgsize)
      : up_name_(std::move(up)), down_name_(std::move(down)), msgsize_(msgsize) {
    // The per-user byte budget (RLIMIT_MSGQUEUE) may be partly taken by other
    // channels: halve the depth until both queues fit, down to 1.
    long depth = std::clamp(kQueueBytes / msgsize_, 1L, std::max(limits().max_depth, 1L));
    for (;;) {
      const QueueName* failed = &up_name_;
      up_.blocking = create_queue(up_name_.str(), O_RDONLY, depth, msgsize_);
      int err = errno;
      if (up_.blocking) {
        up_name_.mark_linked();
        failed = &down_name_;
        down_.blocking = create_queue(down_name_.str(), O_WRONLY, depth, msgsize_);
        err = errno;
        if (down_.blocking) {
          down_name_.mark_linked();
          break;
        }
        up_.blocking.reset();
        up_name_.unlink();
      }
      const bool retry = (err == EMFILE || err == EINVAL || err == ENOMEM) && depth > 1;
      if (!retry) {
        throw_mq_error(err,
                       "cannot create posix-mq queue " + failed->str() + " (mq_maxmsg " +
                           std::to_string(depth) + ", mq_msgsize " + std::to_string(msgsize_) + ")",
                       depth, msgsize_);
      }
      depth /= 2;
    }
    // The non-blocking descriptors must be opened while the names exist.
    up_.nonblocking = open_queue(up_name_.str(), O_RDONLY | O_NONBLOCK);
    down_.nonblocking = open_queue(down_name_.str(), O_WRONLY | O_NONBLOCK);
  }

  std::string address() const override {
    return up_name_.str() + "," + down_name_.str() + "," + std::to_string(msgsize_);
  }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    if (!up_.blocking) throw std::logic_error("posix-mq accept() called twice");
    // The peer's hello is the first message on the up queue; mq_timedreceive
    // waits for it with the deadline in one call.
    std::unique_ptr<char[]> buf(new char[static_cast<std::size_t>(msgsize_)]);
    const timespec deadline = realtime_deadline(timeout);
    ssize_t n = -1;
    for (;;) {
      n = ::mq_timedreceive(up_.blocking.get(), buf.get(), static_cast<std::size_t>(msgsize_),
                            nullptr, &deadline);
      if (n >= 0) break;
      if (errno == EINTR) {
        posix::throw_if_interrupted();
        continue;
      }
      if (errno == ETIMEDOUT) {
        throw Timeout("peer did not connect to posix-mq " + up_name_.str() + " within " +
                      to_string(timeout));
      }
      posix::throw_errno("cannot receive the peer's hello on posix-mq " + up_name_.str());
    }
    if (static_cast<std::size_t>(n) != sizeof kHello ||
        std::memcmp(buf.get(), kHello, sizeof kHello) != 0) {
      throw ProtocolError("unexpected first message (" + std::to_string(n) + " bytes) on " +
                          up_name_.str() + ": not the peer's hello");
    }
    // Both sides hold descriptors now: the names are no longer needed.
    up_name_.unlink();
    down_name_.unlink();
    return std::make_unique<PosixMqChannel>(std::move(up_), std::move(down_),
                                            static_cast<std::size_t>(msgsize_),
                                            describe(up_name_.str(), down_name_.str()));
  }

 private:
  QueueName up_name_;  // declared before the descriptors: unlinked after they close
  QueueName down_name_;
  long msgsize_;
  QueueEnd up_;    // peer -> us: we receive
  QueueEnd down_;  // us -> peer: we send
};

[[noreturn]] void malformed(std::string_view address, const std::string& why) {
  std::string shown(address.substr(0, 200));
  std::replace(shown.begin(), shown.end(), '\0', '?');
  throw std::invalid_argument("malformed posix-mq address '" + shown + "' (" + why +
                              "; expected /ipcbench.NAME.up,/ipcbench.NAME.down,MSGSIZE)");
}

// A queue name this mechanism creates: "/ipcbench." prefix, one slash, no
// NUL, at most NAME_MAX characters after the slash.
bool valid_name(std::string_view name) {
  return name.starts_with("/") && name.substr(1).starts_with(objects::kNamePrefix) &&
         name.size() <= NAME_MAX + 1 && name.find('/', 1) == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

class PosixMqMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "posix-mq"; }
  std::string_view family() const override { return "mq"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = limits().max_message,
            .crosses_hosts = false,
            .pollable = true,
            .lossy = false,
            .names = Names::kSystem};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    const auto bad = [](char c) { return c == '/' || c == ',' || c == '\0'; };
    if (options.tag.empty() || std::any_of(options.tag.begin(), options.tag.end(), bad)) {
      throw std::invalid_argument("posix-mq tag '" + options.tag +
                                  "' is empty or contains '/', ',' or NUL");
    }
    const std::string stem = objects::posix_name(options.tag);
    if (!valid_name(stem + ".down")) {
      throw std::invalid_argument("posix-mq queue name '" + stem + ".down' is longer than " +
                                  std::to_string(NAME_MAX) + " characters");
    }
    if (options.max_message > static_cast<std::size_t>(LONG_MAX)) {
      throw std::invalid_argument("posix-mq max_message is too large");
    }
    const long msgsize = std::max(static_cast<long>(options.max_message), kMinMsgSize);
    return std::make_unique<PosixMqEndpoint>(stem + ".up", stem + ".down", msgsize);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    const auto first = address.find(',');
    const auto second = first == std::string_view::npos ? first : address.find(',', first + 1);
    if (second == std::string_view::npos) malformed(address, "three comma-separated fields");
    const std::string up(address.substr(0, first));
    const std::string down(address.substr(first + 1, second - first - 1));
    const std::string_view size_text = address.substr(second + 1);
    if (!valid_name(up) || !valid_name(down)) malformed(address, "bad queue name");
    long msgsize = 0;
    const auto [end, ec] =
        std::from_chars(size_text.data(), size_text.data() + size_text.size(), msgsize);
    if (ec != std::errc() || end != size_text.data() + size_text.size() || msgsize <= 0) {
      malformed(address, "bad message size");
    }
    if (options.max_message > static_cast<std::size_t>(msgsize)) {
      throw std::invalid_argument("posix-mq: max_message " + std::to_string(options.max_message) +
                                  " exceeds the listener's queue message size " +
                                  std::to_string(msgsize));
    }
    // All descriptors before the hello: accept() unlinks the names on it.
    QueueEnd up_end{open_queue(up, O_WRONLY), open_queue(up, O_WRONLY | O_NONBLOCK)};
    QueueEnd down_end{open_queue(down, O_RDONLY), open_queue(down, O_RDONLY | O_NONBLOCK)};
    for (const auto& [fd, name] :
         {std::pair{down_end.blocking.get(), &down}, std::pair{up_end.blocking.get(), &up}}) {
      mq_attr attr{};
      if (::mq_getattr(fd, &attr) != 0) posix::throw_errno("mq_getattr on " + *name + " failed");
      if (attr.mq_msgsize != msgsize) {
        throw std::invalid_argument("posix-mq queue " + *name + " has mq_msgsize " +
                                    std::to_string(attr.mq_msgsize) + ", the address says " +
                                    std::to_string(msgsize));
      }
    }
    const timespec deadline = realtime_deadline(options.timeout);
    const int r = posix::retry_eintr(
        [&] { return ::mq_timedsend(up_end.blocking.get(), kHello, sizeof kHello, 0, &deadline); });
    if (r != 0) {
      if (errno == ETIMEDOUT) {
        throw Timeout("posix-mq " + up + " stayed full for " + to_string(options.timeout) +
                      ": cannot say hello");
      }
      posix::throw_errno("cannot send the hello on posix-mq " + up);
    }
    return std::make_unique<PosixMqChannel>(std::move(down_end), std::move(up_end),
                                            static_cast<std::size_t>(msgsize), describe(up, down));
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_posix_mq() { return std::make_unique<PosixMqMechanism>(); }

}  // namespace ipcbench::mech
