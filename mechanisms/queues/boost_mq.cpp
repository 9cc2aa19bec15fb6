// boost-mq: two boost::interprocess::message_queue objects, one per direction:
// "ipcbench.<pid>.<tag>.down" (listener -> peer) and ".up" (peer -> listener),
// each a Boost-managed segment in /dev/shm (mode 0600) holding max_num_msg
// slots of max_msg_size bytes, a priority index, one interprocess_mutex and
// two interprocess_conditions. All messages have priority 0 (FIFO).
//
// Waiting: try_send / try_receive first (no clock read on the fast path),
// then timed_send / timed_receive in slices of at most 20 ms; between slices
// we throw PeerLost if the harness requested an interrupt or the peer process
// exited (pidfd). A condition wait does not end on a signal, so an interrupt
// is seen within one slice. Destroying a channel sends an empty message
// (senders never send one): the peer's receive then throws PeerLost.
//
// A dead peer's lock (Boost 1.74): message_queue takes its mutex with a
// plain lock() even in timed_send / timed_receive / get_num_msg (only the
// condition wait is timed), copies the message while holding it, and the
// mutex is not robust. A peer killed inside that critical section leaves
// the mutex locked for good, and our next call on that queue blocks in
// pthread_mutex_lock, which no slice or signal ends. So each channel maps
// the first page of both queues a second time (mechanisms/channels/boost_mq_mutex.hpp
// finds the mutex there), and release_locks_of_dead_peer() (the watchdog
// calls it once the peer is dead and we have not come back) unlocks what
// the dead peer held; the blocked call then goes on and every call after it
// throws PeerLost naming the lock. What the peer was writing under the lock
// is never delivered.
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "mechanisms/channels/boost_ipc.hpp"
#include "mechanisms/channels/boost_mq_mutex.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/spin.hpp"

namespace ipcbench::mech {
namespace {

namespace bi = boost::interprocess;
namespace bpt = boost::posix_time;
using Clock = std::chrono::steady_clock;
using boost_ipc::check_dev_shm_space;
using boost_ipc::PeerWatch;
using boost_ipc::reserve_pages;
using boost_ipc::rethrow_setup;
using NameGuard = boost_ipc::NameGuard<bi::message_queue>;

constexpr std::size_t kMaxMessage = 16u << 20;  // 16 MiB
// Queues take at least this much, so control messages always fit.
constexpr std::size_t kMinMessage = 64;
// 64 messages let a throughput sender of small messages run ahead without a
// wake-up per message; large messages get fewer so that one queue's memory
// (max_num_msg * max_msg_size) stays within 64 MiB (4 at 16 MiB: 128 MiB for
// both queues).
constexpr std::size_t kMaxDepth = 64;
constexpr std::size_t kMinDepth = 4;
constexpr std::size_t kQueueBudget = 64u << 20;
constexpr auto kSlice = std::chrono::milliseconds(20);
constexpr std::string_view kPrefix = objects::kNamePrefix;
constexpr std::string_view kUp = ".up";
constexpr std::string_view kDown = ".down";
constexpr std::uint64_t kHelloMagic = 0x6f6c6c6568716d62;  // "bmqhello"

// The peer's first message on the up queue.
struct Hello {
  std::uint64_t magic = kHelloMagic;
  std::int64_t pid = 0;
};

bpt::ptime wall_deadline(std::chrono::nanoseconds from_now) {
  const auto micros = std::chrono::ceil<std::chrono::microseconds>(from_now).count();
  return bpt::microsec_clock::universal_time() + bpt::microseconds(micros);
}

std::chrono::nanoseconds slice_until(std::optional<Clock::time_point> deadline) {
  if (!deadline) return kSlice;
  return std::clamp<std::chrono::nanoseconds>(*deadline - Clock::now(),
                                              std::chrono::nanoseconds::zero(), kSlice);
}

// A queue's mutex, through a second mapping of the queue's first page (made
// while the name still exists), so that a lock a dead peer left held can be
// released. Empty (releases nothing) when the layout is not what
// mechanisms/channels/boost_mq_mutex.hpp expects.
class QueueLock {
 public:
  QueueLock() = default;
  QueueLock(const std::string& name, const bi::message_queue& queue) {
    try {
      const bi::shared_memory_object shm(bi::open_only, name.c_str(), bi::read_write);
      region_ = bi::mapped_region(shm, bi::read_write, 0, 4096);
      mutex_ = boost_mq::queue_mutex(region_.get_address(), queue);
    } catch (const bi::interprocess_exception&) {
      mutex_ = nullptr;  // setup goes on; only the release is lost
    }
  }

  QueueLock(QueueLock&& o) noexcept
      : region_(std::move(o.region_)), mutex_(std::exchange(o.mutex_, nullptr)) {}
  QueueLock& operator=(QueueLock&& o) noexcept {
    region_ = std::move(o.region_);
    mutex_ = std::exchange(o.mutex_, nullptr);
    return *this;
  }

  // Whether someone holds the mutex now (false if it cannot be told).
  bool held() noexcept {
    if (mutex_ == nullptr) return false;
    if (::pthread_mutex_trylock(mutex_) != 0) return true;
    ::pthread_mutex_unlock(mutex_);
    return false;
  }

  // Unlocks the mutex whoever holds it. Only for when the one other process
  // that can hold it is dead and no thread of ours is inside the queue (a
  // blocked call waits for the mutex, it does not hold it). A plain futex
  // word: this wakes our waiter.
  void force_unlock() noexcept {
    if (mutex_ != nullptr) ::pthread_mutex_unlock(mutex_);
  }

 private:
  bi::mapped_region region_;
  pthread_mutex_t* mutex_ = nullptr;
};

class BoostMqChannel : public Channel {
 public:
  BoostMqChannel(std::unique_ptr<bi::message_queue> tx, std::unique_ptr<bi::message_queue> rx,
                 PeerWatch peer, QueueLock tx_lock, QueueLock rx_lock, bool same_cpu)
      : tx_(std::move(tx)),
        rx_(std::move(rx)),
        tx_lock_(std::move(tx_lock)),
        rx_lock_(std::move(rx_lock)),
        peer_(std::move(peer)),
        max_message_(std::min(tx_->get_max_msg_size(), rx_->get_max_msg_size())),
        queue_msg_size_(rx_->get_max_msg_size()),
        queue_depth_(tx_->get_max_msg()),
        same_cpu_(same_cpu) {}

  // An empty message tells the peer we are gone. Skipped when the peer is
  // known to be dead or an interrupt is pending: Boost's plain lock inside
  // try_send could then block for good (see the file comment).
  ~BoostMqChannel() override {
    if (posix::interrupt_flag().load(std::memory_order_acquire) || peer_.exited() ||
        released_.load(std::memory_order_acquire)) {
      return;
    }
    try {
      const std::byte none{};
      (void)tx_->try_send(&none, 0, 0);
    } catch (...) {
    }
  }

  void send(std::span<const std::byte> message) override {
    check_size(message.size());
    if (try_send_now(message)) return;
    for (;;) {
      throw_if_released();
      posix::throw_if_interrupted();
      throw_if_peer_exited();
      bool sent = false;
      try {
        sent = tx_->timed_send(message.data(), message.size(), 0, wall_deadline(kSlice));
      } catch (const bi::interprocess_exception& e) {
        boost_ipc::rethrow_runtime(e, "boost-mq", "timed_send");
      }
      throw_if_released();
      if (sent) return;
    }
  }

  std::size_t receive(std::span<std::byte> buffer) override {
    throw_if_closed();
    const std::span<std::byte> into = landing(buffer);
    std::size_t size = 0;
    if (!try_receive_now(into, size)) {
      for (;;) {
        throw_if_released();
        posix::throw_if_interrupted();
        if (peer_.exited()) {
          // What it sent before exiting is still delivered.
          if (try_receive_now(into, size)) break;
          throw_if_peer_exited();
        }
        bool received = false;
        try {
          unsigned int priority = 0;
          received =
              rx_->timed_receive(into.data(), into.size(), size, priority, wall_deadline(kSlice));
        } catch (const bi::interprocess_exception& e) {
          boost_ipc::rethrow_runtime(e, "boost-mq", "timed_receive");
        }
        throw_if_released();
        if (received) break;
      }
    }
    return deliver(into, size, buffer);
  }

  bool try_send(std::span<const std::byte> message) override {
    check_size(message.size());
    return try_send_now(message);
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    throw_if_closed();
    const std::span<std::byte> into = landing(buffer);
    std::size_t size = 0;
    if (!try_receive_now(into, size)) return std::nullopt;
    return deliver(into, size, buffer);
  }

  // message_queue offers no wait without taking a message, so these spin on
  // get_num_msg() (a short lock of the queue's mutex) with a pause between
  // tries (yielding when sharing a CPU with the peer), checking the
  // interrupt flag and the peer every 64 tries. A 50 us sleep between tries
  // (before) doubled the async round trip.
  bool wait_receivable(std::chrono::nanoseconds timeout) override {
    throw_if_closed();
    return poll_until([this] { return num_messages(*rx_) > 0; }, timeout);
  }

  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    return poll_until([this] { return num_messages(*tx_) < queue_depth_; }, timeout);
  }

  // From the watchdog thread, while our thread may be blocked in a queue
  // call: unlocks whatever mutex the dead peer held (see the file comment).
  bool release_locks_of_dead_peer() noexcept override {
    if (!peer_.exited()) return false;  // a live peer's lock is its own
    const bool tx = tx_lock_.held();
    const bool rx = rx_lock_.held();
    if (!tx && !rx) return false;
    // Before the unlock: the woken call must see it and deliver nothing.
    released_.store(true, std::memory_order_release);
    if (tx) tx_lock_.force_unlock();
    if (rx) rx_lock_.force_unlock();
    return true;
  }

 private:
  void check_size(std::size_t size) const {
    if (size == 0 || size > max_message_) {
      throw std::invalid_argument("boost-mq: message of " + std::to_string(size) +
                                  " bytes (must be 1.." + std::to_string(max_message_) + ")");
    }
  }

  void throw_if_closed() const {
    if (peer_closed_) throw PeerLost("boost-mq: the peer closed its channel");
  }

  // Once a dead peer's lock was released, nothing the queues hold can be
  // trusted (the peer died inside a copy or an update of the index).
  void throw_if_released() const {
    if (released_.load(std::memory_order_acquire)) {
      throw PeerLost("boost-mq: peer process " + std::to_string(peer_.pid()) +
                     " died holding a queue's lock; released it to end the case");
    }
  }

  void throw_if_peer_exited() const {
    if (peer_.exited()) {
      throw PeerLost("boost-mq: peer process " + std::to_string(peer_.pid()) + " exited");
    }
  }

  // Boost refuses to receive into less than max_msg_size bytes: a smaller
  // caller buffer gets the message via our own buffer (one more copy).
  std::span<std::byte> landing(std::span<std::byte> buffer) {
    if (buffer.size() >= queue_msg_size_) return buffer;
    if (bounce_.size() < queue_msg_size_) bounce_.resize(queue_msg_size_);
    return bounce_;
  }

  std::size_t deliver(std::span<std::byte> into, std::size_t size, std::span<std::byte> buffer) {
    if (size == 0) {
      peer_closed_ = true;
      throw_if_closed();
    }
    if (size > buffer.size()) {
      throw ProtocolError("boost-mq: a " + std::to_string(size) +
                          "-byte message does not fit the " + std::to_string(buffer.size()) +
                          "-byte buffer (discarded)");
    }
    if (into.data() != buffer.data()) std::memcpy(buffer.data(), into.data(), size);
    return size;
  }

  bool try_send_now(std::span<const std::byte> message) {
    bool sent = false;
    try {
      sent = tx_->try_send(message.data(), message.size(), 0);
    } catch (const bi::interprocess_exception& e) {
      boost_ipc::rethrow_runtime(e, "boost-mq", "try_send");
    }
    throw_if_released();
    return sent;
  }

  bool try_receive_now(std::span<std::byte> into, std::size_t& size) {
    bool received = false;
    try {
      unsigned int priority = 0;
      received = rx_->try_receive(into.data(), into.size(), size, priority);
    } catch (const bi::interprocess_exception& e) {
      boost_ipc::rethrow_runtime(e, "boost-mq", "try_receive");
    }
    throw_if_released();
    return received;
  }

  std::size_t num_messages(const bi::message_queue& queue) const {
    std::size_t n = 0;
    try {
      n = queue.get_num_msg();
    } catch (const bi::interprocess_exception& e) {
      boost_ipc::rethrow_runtime(e, "boost-mq", "get_num_msg");
    }
    throw_if_released();
    return n;
  }

  // A peer that exited is an error only once `ready()` still fails: what it
  // sent just before exiting (its last reply) is there to be received.
  template <typename Ready>
  bool poll_until(Ready ready, std::chrono::nanoseconds timeout) {
    return posix::spin_until(timeout, same_cpu_, ready, [this, &ready] {
      posix::throw_if_interrupted();
      if (peer_.exited() && !ready()) throw_if_peer_exited();
    });
  }

  std::unique_ptr<bi::message_queue> tx_;
  std::unique_ptr<bi::message_queue> rx_;
  QueueLock tx_lock_;
  QueueLock rx_lock_;
  // Set by release_locks_of_dead_peer() (another thread).
  std::atomic<bool> released_{false};
  PeerWatch peer_;
  std::size_t max_message_;
  std::size_t queue_msg_size_;  // what Boost requires of a receive buffer
  std::size_t queue_depth_;
  bool same_cpu_;                  // spinning waits yield the CPU on every try
  std::vector<std::byte> bounce_;  // for receive buffers smaller than queue_msg_size_
  bool peer_closed_ = false;
};

std::unique_ptr<bi::message_queue> create_queue(const std::string& name, std::size_t depth,
                                                std::size_t msg_size) {
  // Mode 0600: Boost's default is 0644; it applies the mode with fchmod,
  // so the umask cannot change it.
  return boost_ipc::create_logged<bi::message_queue>(
      name, "cannot create message queue /dev/shm/" + name, [&] {
        return std::make_unique<bi::message_queue>(bi::create_only, name.c_str(), depth, msg_size,
                                                   bi::permissions(0600));
      });
}

std::unique_ptr<bi::message_queue> open_queue(const std::string& name) {
  try {
    return std::make_unique<bi::message_queue>(bi::open_only, name.c_str());
  } catch (const bi::interprocess_exception& e) {
    rethrow_setup(e, "cannot open message queue /dev/shm/" + name);
  }
}

class BoostMqEndpoint : public Endpoint {
 public:
  BoostMqEndpoint(std::string base, std::size_t msg_size, bool same_cpu)
      : base_(std::move(base)), same_cpu_(same_cpu) {
    const std::size_t depth = std::clamp(kQueueBudget / msg_size, kMinDepth, kMaxDepth);
    // Boost adds a small header per message and the index; 1/8 is ample.
    const std::size_t payload = depth * msg_size;
    // Boost writes every message header while creating a queue: check first.
    check_dev_shm_space(2 * (payload + payload / 8 + 4096), "message queues " + base_ + ".*");
    const std::string down = base_ + std::string(kDown);
    const std::string up = base_ + std::string(kUp);
    down_ = create_queue(down, depth, msg_size);
    down_name_.arm(down);
    up_ = create_queue(up, depth, msg_size);
    up_name_.arm(up);
    reserve_pages(down);
    reserve_pages(up);
    down_lock_ = QueueLock(down, *down_);
    up_lock_ = QueueLock(up, *up_);
  }

  std::string address() const override { return base_; }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    if (!up_) throw std::logic_error("boost-mq: accept() called twice");
    // Large enough for Boost (at least max_msg_size) and for a Hello.
    std::vector<std::byte> buf(up_->get_max_msg_size());
    const auto deadline = Clock::now() + timeout;
    std::size_t size = 0;
    for (;;) {
      try {
        unsigned int priority = 0;
        if (up_->timed_receive(buf.data(), buf.size(), size, priority,
                               wall_deadline(slice_until(deadline)))) {
          break;
        }
      } catch (const bi::interprocess_exception& e) {
        boost_ipc::rethrow_runtime(e, "boost-mq", "timed_receive");
      }
      posix::throw_if_interrupted();
      if (Clock::now() >= deadline) {
        throw Timeout("boost-mq: no peer attached to " + base_ + ".up/.down within " +
                      std::to_string(timeout.count()) + " ms");
      }
    }
    Hello hello;
    std::memcpy(&hello, buf.data(), std::min(size, sizeof hello));
    if (size != sizeof hello || hello.magic != kHelloMagic) {
      throw ProtocolError("boost-mq: the peer's first message on " + base_ + ".up is not a hello");
    }
    // Both sides have both queues open: the names are no longer needed.
    down_name_.remove();
    up_name_.remove();
    return std::make_unique<BoostMqChannel>(std::move(down_), std::move(up_),
                                            PeerWatch(static_cast<pid_t>(hello.pid)),
                                            std::move(down_lock_), std::move(up_lock_), same_cpu_);
  }

 private:
  std::string base_;
  bool same_cpu_;
  // Declared before the queues: a queue is unmapped before its name goes.
  NameGuard down_name_;
  NameGuard up_name_;
  std::unique_ptr<bi::message_queue> down_;  // listener -> peer
  std::unique_ptr<bi::message_queue> up_;    // peer -> listener
  QueueLock down_lock_;
  QueueLock up_lock_;
};

// Parses "ipcbench.<pid>.<tag>" (the queues add .up / .down); returns <pid>.
pid_t parse_address(std::string_view address) {
  pid_t pid = 0;
  bool ok = address.size() + kDown.size() <= NAME_MAX && address.starts_with(kPrefix) &&
            address.find('/') == std::string_view::npos &&
            address.find('\0') == std::string_view::npos;
  if (ok) {
    const std::string_view rest = address.substr(kPrefix.size());
    const std::size_t dot = rest.find('.');
    ok = dot != std::string_view::npos && dot + 1 < rest.size();
    if (ok) {
      const auto [end, ec] = std::from_chars(rest.data(), rest.data() + dot, pid);
      ok = ec == std::errc() && end == rest.data() + dot && pid > 0;
    }
  }
  if (!ok) {
    throw std::invalid_argument("malformed boost-mq address '" +
                                std::string(address.substr(0, 80)) +
                                "' (expected ipcbench.<pid>.<tag>)");
  }
  return pid;
}

// The largest message this machine can carry: 16 MiB, less where /dev/shm
// is small (Docker's default is 64 MiB). A case needs about 8 x max_message
// there (4 slots per direction) and should leave half of it to others. Total
// size, not free space, so the answer does not change from run to run.
std::size_t probe_max_message() {
  struct statvfs fs {};
  if (::statvfs("/dev/shm", &fs) != 0) return kMaxMessage;
  const auto total = static_cast<std::size_t>(fs.f_blocks) * fs.f_frsize;
  return std::clamp<std::size_t>(total / 16 / 1024 * 1024, kMinMessage, kMaxMessage);
}

class BoostMqMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "boost-mq"; }
  std::string_view family() const override { return "mq"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = max_message_,
            .crosses_hosts = false,
            .pollable = false,
            .lossy = false,
            .readiness = Waiting::kSpin,
            .names = Names::kSystem};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    if (options.max_message > kMaxMessage) {
      throw std::invalid_argument("boost-mq: max_message " + std::to_string(options.max_message) +
                                  " exceeds the limit of " + std::to_string(kMaxMessage));
    }
    if (options.tag.empty() ||
        options.tag.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
      throw std::invalid_argument("boost-mq: tag '" + options.tag + "' is empty or has '/'");
    }
    const std::string base = objects::object_name(options.tag);
    parse_address(base);  // length check
    return std::make_unique<BoostMqEndpoint>(base, std::max(options.max_message, kMinMessage),
                                             options.same_cpu);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    const pid_t owner = parse_address(address);
    const std::string base(address);
    auto rx = open_queue(base + std::string(kDown));
    auto tx = open_queue(base + std::string(kUp));
    QueueLock rx_lock(base + std::string(kDown), *rx);
    QueueLock tx_lock(base + std::string(kUp), *tx);
    const std::size_t limit = std::min(rx->get_max_msg_size(), tx->get_max_msg_size());
    if (options.max_message > limit) {
      throw std::invalid_argument("boost-mq: max_message " + std::to_string(options.max_message) +
                                  " exceeds the listener's " + std::to_string(limit));
    }
    PeerWatch watch(owner);
    const Hello hello{.magic = kHelloMagic, .pid = ::getpid()};
    const auto deadline = Clock::now() + options.timeout;
    for (;;) {
      try {
        if (tx->timed_send(&hello, sizeof hello, 0, wall_deadline(slice_until(deadline)))) break;
      } catch (const bi::interprocess_exception& e) {
        boost_ipc::rethrow_runtime(e, "boost-mq", "timed_send");
      }
      posix::throw_if_interrupted();
      if (Clock::now() >= deadline) {
        throw Timeout("boost-mq: " + base + ".up stayed full for " +
                      std::to_string(options.timeout.count()) + " ms");
      }
    }
    return std::make_unique<BoostMqChannel>(std::move(tx), std::move(rx), std::move(watch),
                                            std::move(tx_lock), std::move(rx_lock),
                                            options.same_cpu);
  }

 private:
  const std::size_t max_message_ = probe_max_message();
};

}  // namespace

std::unique_ptr<Mechanism> make_boost_mq() { return std::make_unique<BoostMqMechanism>(); }

}  // namespace ipcbench::mech
