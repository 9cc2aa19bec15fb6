// sysv-mq: System V message queues (msgget/msgsnd/msgrcv), one per direction.
//
// Two queues rather than one with two mtypes: the kernel's byte limit
// (msg_qbytes) is per queue, so on a shared queue one direction filling it
// would block the other, and a sender waiting for an acknowledgement could
// deadlock; a shared queue would also make every msgrcv search by type.
//
// The listener creates both queues with fresh random keys (IPC_EXCL, so
// never someone else's queue; a key rather than IPC_PRIVATE so that the
// owner record can name a queue before it exists) and mode 0600; the
// address is "msqid:UP,DOWN,MAX_MESSAGE" and the peer uses the ids directly
// (any process with permission may). SysV queues have no name to unlink
// early: they live until the listener removes them with IPC_RMID when its
// channel (or, if accept never happened, its endpoint) is destroyed, and a
// listener killed outright leaves them behind (its owner record names them
// for the next run or `ipcbench clean`).
// The peer's blocked calls then fail with EIDRM: PeerLost. Otherwise there is
// no end of file: a dead peer is noticed by the harness's watchdog, which
// interrupts the blocked call (EINTR -> PeerLost). An orderly close by the
// peer is announced in-band by a zero-length message (real messages are
// 1..max bytes), sent without blocking.
#include <sys/ipc.h>
#include <sys/msg.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/limits.hpp"
#include "mechanisms/posix/object_log.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/spin.hpp"

namespace ipcbench::mech {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr std::string_view kAddressPrefix = "msqid:";
// Small messages still get buffers of this size (headers, hellos).
constexpr std::size_t kMinMessage = 64;
constexpr long kDataType = 1;  // every message; msgrcv takes the first (msgtyp 0)
constexpr char kHello[] = "ipcbench sysv-mq hello";
// Setup only: how often accept() and connect() look again.
constexpr auto kSetupPoll = milliseconds(1);

// Owns a queue: removes it (IPC_RMID) when destroyed and says so in the
// object log. Empty: id -1.
class QueueId {
 public:
  QueueId() noexcept = default;
  explicit QueueId(objects::Object object) noexcept : object_(std::move(object)) {}
  QueueId(QueueId&& other) noexcept : object_(std::exchange(other.object_, {})) {}
  QueueId& operator=(QueueId&& other) noexcept {
    if (this != &other) {
      reset();
      object_ = std::exchange(other.object_, {});
    }
    return *this;
  }
  ~QueueId() { reset(); }

  int get() const noexcept { return object_.id; }
  void reset() noexcept {
    if (object_.id >= 0) {
      ::msgctl(object_.id, IPC_RMID, nullptr);
      objects::removed(object_);
    }
    object_ = {};
  }

 private:
  objects::Object object_;  // kind kSysvMsg; id -1 when empty
};

// Creates a queue (mode 0600) under a fresh random key, never IPC_PRIVATE:
// the key goes into the object log before the queue exists, so a run killed
// at any instant leaves no queue its owner record cannot name. A key that is
// taken (EEXIST: someone else's queue) is skipped. An empty QueueId with
// errno set on failure.
QueueId try_create_queue() {
  for (int attempt = 0; attempt < 64; ++attempt) {
    objects::Object object;
    object.kind = objects::Kind::kSysvMsg;
    object.key = objects::make_sysv_key();
    objects::creating(object);
    const int id = ::msgget(object.key, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) {
      const int err = errno;
      objects::removed(object);
      errno = err;
      if (err == EEXIST) continue;
      return QueueId();
    }
    object.id = id;
    msqid_ds ds{};
    if (::msgctl(id, IPC_STAT, &ds) == 0) object.ctime = ds.msg_ctime;
    objects::created(object);
    return QueueId(std::move(object));
  }
  errno = EEXIST;
  return QueueId();
}

QueueId create_queue(const char* what) {
  QueueId queue = try_create_queue();
  if (queue.get() < 0) {
    const int err = errno;
    posix::throw_errno(err, std::string("cannot create the sysv-mq ") + what + " queue" +
                                posix::sysv_msg_hint(err));
  }
  return queue;
}

long read_proc_long(const char* path) {
  std::ifstream in(path);
  long value = -1;
  if (!(in >> value)) return -1;
  return value;
}

// The largest message: min(msgmax, msgmnb) from /proc (per message, per
// queue in bytes), also bounded by the new queue's msg_qbytes and the suite's
// stream cap, then verified by sending one such message into a private
// queue removed at once; if the kernel refuses, binary search below it.
std::size_t probe_max_message() {
  QueueId queue = try_create_queue();
  const int id = queue.get();
  if (id < 0) {
    // No queue at all now (kernel.msgmni reached?): claim what /proc says so
    // the cases still run and listen() fails naming the limit, instead of
    // every case being skipped as too large.
    const long msgmax = read_proc_long("/proc/sys/kernel/msgmax");
    return msgmax > 0 ? std::min<std::size_t>(static_cast<std::size_t>(msgmax), kMaxStreamMessage)
                      : 8192;
  }
  msqid_ds ds{};
  if (::msgctl(id, IPC_STAT, &ds) != 0) return 0;
  std::size_t candidate = std::min<std::size_t>(ds.msg_qbytes, kMaxStreamMessage);
  for (const char* path : {"/proc/sys/kernel/msgmax", "/proc/sys/kernel/msgmnb"}) {
    const long v = read_proc_long(path);
    if (v > 0) candidate = std::min(candidate, static_cast<std::size_t>(v));
  }
  if (candidate == 0) return 0;
  std::unique_ptr<std::byte[]> buf(new std::byte[sizeof(long) + candidate]());
  std::memcpy(buf.get(), &kDataType, sizeof kDataType);
  const auto fits = [&](std::size_t size) {
    if (::msgsnd(id, buf.get(), size, IPC_NOWAIT) != 0) return false;
    ::msgrcv(id, buf.get(), candidate, 0, IPC_NOWAIT | MSG_NOERROR);  // empty it again
    std::memcpy(buf.get(), &kDataType, sizeof kDataType);
    return true;
  };
  if (fits(candidate)) return candidate;
  if (!fits(1)) return 0;
  std::size_t lo = 1, hi = candidate;  // fits(lo), !fits(hi)
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

std::size_t probed_max_message() {
  static const std::size_t probed = probe_max_message();
  return probed;
}

// Sleeps up to `d`; a signal ends the sleep early and throws PeerLost if the
// harness asked for an interrupt.
void sleep_for(nanoseconds d) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
  const timespec ts{static_cast<time_t>(secs.count()), static_cast<long>((d - secs).count())};
  if (::nanosleep(&ts, nullptr) != 0) posix::throw_if_interrupted();
}

Clock::time_point deadline_after(nanoseconds timeout) {
  const auto now = Clock::now();
  if (timeout <= nanoseconds::zero()) return now;
  if (timeout >= Clock::time_point::max() - now) return Clock::time_point::max();
  return now + timeout;
}

class SysvMqChannel : public Channel {
 public:
  // The listener passes its queues in `owned` (removed when the channel goes);
  // the peer's channel owns none.
  SysvMqChannel(int receive_id, int send_id, std::size_t max_message, bool same_cpu,
                QueueId owned_receive = QueueId(), QueueId owned_send = QueueId())
      : receive_id_(receive_id),
        send_id_(send_id),
        max_message_(max_message),
        same_cpu_(same_cpu),
        // Preallocated: a message is {long mtype; payload}, copied in and
        // out here, so no message costs an allocation.
        send_buf_(new std::byte[sizeof(long) + max_message]),
        receive_buf_(new std::byte[sizeof(long) + max_message]),
        what_("sysv-mq queues " + std::to_string(receive_id) + " (in) and " +
              std::to_string(send_id) + " (out)"),
        owned_receive_(std::move(owned_receive)),
        owned_send_(std::move(owned_send)) {
    std::memcpy(send_buf_.get(), &kDataType, sizeof kDataType);
  }

  ~SysvMqChannel() override {
    // Tell a peer that outlives us. Best effort, never blocking. The
    // listener's queues are then removed by owned_*, which also wakes the
    // peer (EIDRM) if the notice did not fit.
    ::msgsnd(send_id_, send_buf_.get(), 0, IPC_NOWAIT);
  }

  void send(std::span<const std::byte> message) override {
    check_size(message.size());
    std::memcpy(send_buf_.get() + sizeof(long), message.data(), message.size());
    const int r =
        posix::retry_eintr([&] { return ::msgsnd(send_id_, send_buf_.get(), message.size(), 0); });
    if (r != 0) fail(errno, "msgsnd");
  }

  std::size_t receive(std::span<std::byte> buffer) override {
    check_open();
    const ssize_t n = posix::retry_eintr(
        [&] { return ::msgrcv(receive_id_, receive_buf_.get(), max_message_, 0, 0); });
    if (n < 0) fail(errno, "msgrcv");
    return deliver(n, buffer);
  }

  bool try_send(std::span<const std::byte> message) override {
    check_size(message.size());
    std::memcpy(send_buf_.get() + sizeof(long), message.data(), message.size());
    const int r = posix::retry_eintr(
        [&] { return ::msgsnd(send_id_, send_buf_.get(), message.size(), IPC_NOWAIT); });
    if (r == 0) {
      blocked_send_ = 1;
      return true;
    }
    if (errno != EAGAIN) fail(errno, "msgsnd");
    blocked_send_ = message.size();
    return false;
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    check_open();
    const ssize_t n = posix::retry_eintr(
        [&] { return ::msgrcv(receive_id_, receive_buf_.get(), max_message_, 0, IPC_NOWAIT); });
    if (n < 0) {
      if (errno == ENOMSG) return std::nullopt;
      fail(errno, "msgrcv");
    }
    return deliver(n, buffer);
  }

  // SysV queues have no descriptor and no readiness notification, so both
  // waits spin on the queue's counters (IPC_STAT, one syscall a try) with a
  // pause between tries, yielding the CPU on every try when sharing one CPU
  // with the peer. Sleeping between tries (50 us before) set the async
  // figure: it doubled the round trip. The interrupt flag is checked every
  // 64 tries.
  bool wait_receivable(nanoseconds timeout) override {
    if (peer_closed_) return true;  // try_receive throws PeerLost at once
    return wait_until(timeout, [this] { return stat(receive_id_).msg_qnum > 0; });
  }

  bool wait_sendable(nanoseconds timeout) override {
    // Room for the message try_send could not place (the kernel also counts
    // messages against msg_qbytes; glibc spells msg_cbytes __msg_cbytes).
    const std::size_t needed = blocked_send_;
    return wait_until(timeout, [this, needed] {
      const msqid_ds ds = stat(send_id_);
      return ds.__msg_cbytes + needed <= ds.msg_qbytes && ds.msg_qnum + 1 <= ds.msg_qbytes;
    });
  }

 private:
  void check_size(std::size_t size) const {
    if (size == 0 || size > max_message_) {
      throw std::invalid_argument("sysv-mq message of " + std::to_string(size) +
                                  " bytes (must be 1.." + std::to_string(max_message_) + ")");
    }
  }

  void check_open() const {
    if (peer_closed_) throw PeerLost("the peer closed its end of " + what_);
  }

  // Sizes are checked before every call, so EINVAL means the queue id no
  // longer exists: like EIDRM, the listener removed it.
  [[noreturn]] void fail(int err, const char* call) {
    if (err == EIDRM || err == EINVAL) {
      peer_closed_ = true;
      throw PeerLost("the peer removed " + what_);
    }
    if (err == E2BIG) {
      throw ProtocolError(std::string(call) + " on " + what_ + ": a message exceeds max_message " +
                          std::to_string(max_message_));
    }
    posix::throw_errno(err, std::string(call) + " on " + what_ + " failed");
  }

  std::size_t deliver(ssize_t n, std::span<std::byte> buffer) {
    const auto size = static_cast<std::size_t>(n);
    if (size == 0) {
      peer_closed_ = true;
      check_open();
    }
    if (size > buffer.size()) {
      throw ProtocolError("sysv-mq message of " + std::to_string(size) +
                          " bytes does not fit the " + std::to_string(buffer.size()) +
                          "-byte receive buffer");
    }
    std::memcpy(buffer.data(), receive_buf_.get() + sizeof(long), size);
    return size;
  }

  msqid_ds stat(int id) {
    msqid_ds ds{};
    posix::count_syscall();
    if (::msgctl(id, IPC_STAT, &ds) != 0) fail(errno, "msgctl(IPC_STAT)");
    return ds;
  }

  template <typename Ready>
  bool wait_until(nanoseconds timeout, Ready ready) {
    return posix::spin_until(timeout, same_cpu_, ready, [] { posix::throw_if_interrupted(); });
  }

  int receive_id_;
  int send_id_;
  std::size_t max_message_;
  bool same_cpu_;
  std::unique_ptr<std::byte[]> send_buf_;     // mtype, then up to max_message_ bytes
  std::unique_ptr<std::byte[]> receive_buf_;  // the same layout
  std::string what_;
  std::size_t blocked_send_ = 1;  // size of the last message try_send could not place
  bool peer_closed_ = false;
  QueueId owned_receive_;
  QueueId owned_send_;
};

class SysvMqEndpoint : public Endpoint {
 public:
  SysvMqEndpoint(std::size_t max_message, bool same_cpu)
      : max_message_(max_message),
        same_cpu_(same_cpu),
        up_(create_queue("peer-to-listener")),
        down_(create_queue("listener-to-peer")) {}

  std::string address() const override {
    return std::string(kAddressPrefix) + std::to_string(up_.get()) + "," +
           std::to_string(down_.get()) + "," + std::to_string(max_message_);
  }

  std::unique_ptr<Channel> accept(milliseconds timeout) override {
    if (up_.get() < 0) throw std::logic_error("sysv-mq accept() called twice");
    // msgrcv has no timeout: look for the peer's hello every millisecond
    // until the deadline (setup only, never the hot path).
    struct {
      long mtype;
      char text[sizeof kHello];
    } hello{};
    const auto deadline = deadline_after(timeout);
    for (;;) {
      const ssize_t n = ::msgrcv(up_.get(), &hello, sizeof hello.text, 0, IPC_NOWAIT);
      if (n >= 0) {
        if (static_cast<std::size_t>(n) != sizeof kHello ||
            std::memcmp(hello.text, kHello, sizeof kHello) != 0) {
          throw ProtocolError("unexpected first message on sysv-mq queue " +
                              std::to_string(up_.get()) + ": not the peer's hello");
        }
        break;
      }
      if (errno == E2BIG) {
        throw ProtocolError("oversized first message on sysv-mq queue " +
                            std::to_string(up_.get()) + ": not the peer's hello");
      }
      if (errno != ENOMSG && errno != EINTR) {
        posix::throw_errno("cannot receive the peer's hello on sysv-mq queue " +
                           std::to_string(up_.get()));
      }
      posix::throw_if_interrupted();
      const auto now = Clock::now();
      if (now >= deadline) {
        throw Timeout("peer did not connect to sysv-mq queue " + std::to_string(up_.get()) +
                      " within " + std::to_string(timeout.count()) + " ms");
      }
      sleep_for(std::min<nanoseconds>(kSetupPoll, deadline - now));
    }
    const int up = up_.get();
    const int down = down_.get();
    return std::make_unique<SysvMqChannel>(up, down, max_message_, same_cpu_, std::move(up_),
                                           std::move(down_));
  }

 private:
  std::size_t max_message_;
  bool same_cpu_;
  QueueId up_;    // peer -> us
  QueueId down_;  // us -> peer
};

[[noreturn]] void malformed(std::string_view address, const std::string& why) {
  std::string shown(address.substr(0, 200));
  std::replace(shown.begin(), shown.end(), '\0', '?');
  throw std::invalid_argument("malformed sysv-mq address '" + shown + "' (" + why +
                              "; expected msqid:UP,DOWN,MAX_MESSAGE)");
}

template <typename T>
T parse_number(std::string_view text, std::string_view address) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) {
    // (Built with append: GCC 12 warns falsely on "literal" + std::string here.)
    std::string why(1, '\'');
    why.append(text.substr(0, 40)).append("' is not a number");
    malformed(address, why);
  }
  return value;
}

// Fails unless `id` names a queue this process may use.
void check_queue(int id) {
  msqid_ds ds{};
  if (::msgctl(id, IPC_STAT, &ds) == 0) return;
  const int err = errno;
  std::string what = "cannot use sysv-mq queue " + std::to_string(id);
  if (err == EINVAL || err == EIDRM) what += " (no such queue: the listener is gone?)";
  posix::throw_errno(err, what);
}

class SysvMqMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "sysv-mq"; }
  std::string_view family() const override { return "mq"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = probed_max_message(),
            .crosses_hosts = false,
            .pollable = false,
            .lossy = false,
            .readiness = Waiting::kSpin,
            .names = Names::kSystem};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    // msgsnd refuses a message above msgmax with EINVAL, which a channel
    // reads as "queue removed": refuse such sizes here, by name.
    const std::size_t limit = probed_max_message();
    if (options.max_message > limit) {
      throw std::system_error(
          EMSGSIZE, std::generic_category(),
          "cannot create a sysv-mq channel for " + std::to_string(options.max_message) +
              "-byte messages: the largest System V message here is " + std::to_string(limit) +
              " bytes (/proc/sys/kernel/msgmax and msgmnb)");
    }
    const std::size_t max_message = std::min(std::max(options.max_message, kMinMessage), limit);
    return std::make_unique<SysvMqEndpoint>(max_message, options.same_cpu);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    if (!address.starts_with(kAddressPrefix)) malformed(address, "no 'msqid:' prefix");
    const std::string_view body = address.substr(kAddressPrefix.size());
    const auto first = body.find(',');
    const auto second = first == std::string_view::npos ? first : body.find(',', first + 1);
    if (second == std::string_view::npos) malformed(address, "three comma-separated fields");
    const int up = parse_number<int>(body.substr(0, first), address);
    const int down = parse_number<int>(body.substr(first + 1, second - first - 1), address);
    const auto max_message = parse_number<std::size_t>(body.substr(second + 1), address);
    if (max_message == 0 || max_message > kMaxStreamMessage) {
      malformed(address, "message size out of range");
    }
    if (options.max_message > max_message) {
      throw std::invalid_argument("sysv-mq: max_message " + std::to_string(options.max_message) +
                                  " exceeds the listener's " + std::to_string(max_message));
    }
    check_queue(up);
    check_queue(down);
    auto channel = std::make_unique<SysvMqChannel>(down, up, max_message, options.same_cpu);
    // The hello: a fresh queue has room, but the wait is bounded anyway.
    struct {
      long mtype;
      char text[sizeof kHello];
    } hello{kDataType, {}};
    std::memcpy(hello.text, kHello, sizeof kHello);
    const auto deadline = deadline_after(options.timeout);
    while (::msgsnd(up, &hello, sizeof hello.text, IPC_NOWAIT) != 0) {
      if (errno != EAGAIN && errno != EINTR) {
        posix::throw_errno("cannot send the hello on sysv-mq queue " + std::to_string(up));
      }
      posix::throw_if_interrupted();
      const auto now = Clock::now();
      if (now >= deadline) {
        throw Timeout("sysv-mq queue " + std::to_string(up) + " stayed full for " +
                      std::to_string(options.timeout.count()) + " ms: cannot say hello");
      }
      sleep_for(std::min<nanoseconds>(kSetupPoll, deadline - now));
    }
    return channel;
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_sysv_mq() { return std::make_unique<SysvMqMechanism>(); }

}  // namespace ipcbench::mech
