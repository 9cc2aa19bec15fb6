// boost-shm: a Boost.Interprocess managed_shared_memory segment holding one
// bounded queue per direction, synchronised with Boost's interprocess
// semaphores.
//
// The segment "ipcbench.<pid>.<tag>.bshm" (/dev/shm, mode 0600) holds a named
// Control block and one 64-byte-aligned slot area. Each direction is a
// single-producer single-consumer queue of K slots; a slot is a 16-byte header
// (the message length) followed by up to max_message payload bytes. `filled`
// counts messages ready, `free` counts empty slots: the producer waits on
// free, copies into slot[head], posts filled; the consumer waits on filled,
// copies out of slot[tail], posts free. Each message is copied once in and
// once out; sem_post / sem_wait order the copies (release / acquire).
//
// Why semaphores and not interprocess_mutex + interprocess_condition: Boost's
// mutexes are not robust, and interprocess_condition::timed_wait re-locks its
// mutex inside pthread_cond_timedwait with a plain lock that no timeout or
// signal ends. A peer killed while holding that mutex would hang us whatever
// our slices. A semaphore has no owner: a dead peer leaves at worst a slot
// half written, never a lock held.
//
// Waiting: a try_wait first (no clock read on the fast path), then Boost's
// timed_wait in slices of at most 20 ms; between slices we throw PeerLost if
// the harness requested an interrupt, the peer closed its channel, or the
// peer process exited (pidfd). A signal makes sem_timedwait fail with EINTR,
// so the watchdog's wake-up is seen at once, not a slice later.
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <boost/interprocess/sync/interprocess_semaphore.hpp>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

#include "mechanisms/channels/boost_ipc.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"

namespace ipcbench::mech {
namespace {

namespace bi = boost::interprocess;
namespace bpt = boost::posix_time;
using Clock = std::chrono::steady_clock;
using boost_ipc::check_dev_shm_space;
using boost_ipc::PeerWatch;
using boost_ipc::reserve_pages;
using boost_ipc::rethrow_setup;
using NameGuard = boost_ipc::NameGuard<bi::shared_memory_object>;

constexpr std::size_t kMaxMessage = 16u << 20;  // 16 MiB
// Slots hold at least this much, so control messages always fit.
constexpr std::size_t kMinPayload = 64;
constexpr std::size_t kSlotHeader = 16;  // length + padding: payload 16-byte aligned
constexpr std::size_t kSlotAlign = 64;   // slots never share a cache line
// 64 slots let a throughput sender of small messages run ahead without a
// wake-up per message; large messages get fewer so one direction stays within
// 64 MiB (4 slots at 16 MiB: a 128 MiB segment).
constexpr std::size_t kMaxSlots = 64;
constexpr std::size_t kMinSlots = 4;
constexpr std::size_t kLaneBudget = 64u << 20;
// Segment manager, named index, Control and alignment slack.
constexpr std::size_t kSegmentOverhead = 64u << 10;
constexpr auto kSlice = std::chrono::milliseconds(20);
constexpr std::uint64_t kMagic = 0x316d687362637069;  // "ipcbshm1"
constexpr const char* kControlName = "ipcbench.control";
constexpr std::string_view kPrefix = objects::kNamePrefix;
constexpr std::string_view kSuffix = ".bshm";

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// Decrements `sem` if it can without waiting.
bool try_down(bi::interprocess_semaphore& sem) {
  try {
    return sem.try_wait();
  } catch (const bi::interprocess_exception& e) {
    boost_ipc::rethrow_runtime(e, "boost-shm", "sem_trywait");
  }
}

// Decrements `sem`, waiting at most `slice` (Boost takes a wall-clock
// deadline). False on timeout or when a signal interrupted the wait.
bool timed_down(bi::interprocess_semaphore& sem, std::chrono::nanoseconds slice) {
  const auto micros = std::chrono::ceil<std::chrono::microseconds>(slice).count();
  const bpt::ptime deadline = bpt::microsec_clock::universal_time() + bpt::microseconds(micros);
  try {
    return sem.timed_wait(deadline);
  } catch (const bi::interprocess_exception& e) {
    // Boost turns sem_timedwait's EINTR into an exception: the caller checks
    // the interrupt flag and waits again.
    if (e.get_native_error() == EINTR) return false;
    boost_ipc::rethrow_runtime(e, "boost-shm", "sem_timedwait");
  }
}

void up(bi::interprocess_semaphore& sem) {
  try {
    sem.post();
  } catch (const bi::interprocess_exception& e) {
    boost_ipc::rethrow_runtime(e, "boost-shm", "sem_post");
  }
}

// One direction's synchronisation.
struct Lane {
  explicit Lane(unsigned slots) : free(slots) {}
  bi::interprocess_semaphore filled{0};  // messages ready to read
  bi::interprocess_semaphore free;       // slots ready to write
};

// Lives in the segment under kControlName; built by the listener.
struct Control {
  Control(std::size_t payload, std::size_t stride, std::size_t count,
          bi::managed_shared_memory::handle_t area)
      : payload_bytes(payload),
        slot_bytes(stride),
        slots(count),
        slot_area(area),
        owner_pid(::getpid()),
        to_peer(static_cast<unsigned>(count)),
        to_owner(static_cast<unsigned>(count)) {}

  std::uint64_t magic = kMagic;
  std::uint64_t payload_bytes;                    // largest message a slot takes
  std::uint64_t slot_bytes;                       // slot stride
  std::uint64_t slots;                            // K, per direction
  bi::managed_shared_memory::handle_t slot_area;  // offset: the same in both mappings
  std::int32_t owner_pid;
  std::atomic<std::int32_t> peer_pid{0};
  // Set when a side destroys its Channel: the other stops waiting for it.
  std::atomic<std::uint32_t> owner_closed{0};
  std::atomic<std::uint32_t> peer_closed{0};
  bi::interprocess_semaphore connected{0};  // posted once by the peer
  Lane to_peer;
  Lane to_owner;
};
static_assert(std::atomic<std::int32_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

class BoostShmChannel : public Channel {
 public:
  BoostShmChannel(bi::managed_shared_memory segment, Control* control, bool is_owner,
                  PeerWatch peer)
      : segment_(std::move(segment)),
        peer_(std::move(peer)),
        slots_(control->slots),
        slot_bytes_(control->slot_bytes),
        max_message_(control->payload_bytes) {
    auto* area = static_cast<std::byte*>(segment_.get_address_from_handle(control->slot_area));
    std::byte* to_peer = area;
    std::byte* to_owner = area + slots_ * slot_bytes_;
    tx_ = is_owner ? &control->to_peer : &control->to_owner;
    rx_ = is_owner ? &control->to_owner : &control->to_peer;
    tx_slots_ = is_owner ? to_peer : to_owner;
    rx_slots_ = is_owner ? to_owner : to_peer;
    my_closed_ = is_owner ? &control->owner_closed : &control->peer_closed;
    peer_closed_ = is_owner ? &control->peer_closed : &control->owner_closed;
  }

  // The mapping goes with segment_; the name was removed at accept.
  ~BoostShmChannel() override { my_closed_->store(1, std::memory_order_release); }

  void send(std::span<const std::byte> message) override {
    check_size(message.size());
    acquire(tx_->free, std::nullopt);
    publish(message);
  }

  std::size_t receive(std::span<std::byte> buffer) override {
    acquire(rx_->filled, std::nullopt);
    return consume(buffer);
  }

  bool try_send(std::span<const std::byte> message) override {
    check_size(message.size());
    if (!try_down(tx_->free)) return false;
    publish(message);
    return true;
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    if (!try_down(rx_->filled)) return std::nullopt;
    return consume(buffer);
  }

  // Both wait on the semaphore itself (timed_wait in slices) and post back
  // the count they took: this side is its only waiter (one producer, one
  // consumer), so nothing can slip in between.
  bool wait_receivable(std::chrono::nanoseconds timeout) override {
    if (!acquire(rx_->filled, Clock::now() + timeout)) return false;
    up(rx_->filled);
    return true;
  }

  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    if (!acquire(tx_->free, Clock::now() + timeout)) return false;
    up(tx_->free);
    return true;
  }

 private:
  void check_size(std::size_t size) const {
    if (size == 0 || size > max_message_) {
      throw std::invalid_argument("boost-shm: message of " + std::to_string(size) +
                                  " bytes (must be 1.." + std::to_string(max_message_) + ")");
    }
  }

  // Decrements `sem`; false once `deadline` passed (never without one).
  bool acquire(bi::interprocess_semaphore& sem, std::optional<Clock::time_point> deadline) {
    if (try_down(sem)) return true;
    for (;;) {
      posix::throw_if_interrupted();
      check_peer(sem);
      auto slice = std::chrono::nanoseconds(kSlice);
      if (deadline) {
        const auto left = *deadline - Clock::now();
        if (left <= std::chrono::nanoseconds::zero()) return false;
        slice = std::min(slice, std::chrono::duration_cast<std::chrono::nanoseconds>(left));
      }
      if (timed_down(sem, slice)) return true;
    }
  }

  // Throws PeerLost if the peer closed its channel or exited, unless `sem`
  // can still be taken: what it posted before leaving is still delivered.
  void check_peer(bi::interprocess_semaphore& sem) {
    const bool closed = peer_closed_->load(std::memory_order_acquire) != 0;
    if (!closed && !peer_.exited()) return;
    if (try_down(sem)) {
      up(sem);  // the caller's next slice takes it
      return;
    }
    if (closed) throw PeerLost("boost-shm: the peer closed its channel");
    throw PeerLost("boost-shm: peer process " + std::to_string(peer_.pid()) + " exited");
  }

  void publish(std::span<const std::byte> message) {
    std::byte* slot = tx_slots_ + tx_index_ * slot_bytes_;
    const std::uint64_t length = message.size();
    std::memcpy(slot, &length, sizeof length);
    std::memcpy(slot + kSlotHeader, message.data(), message.size());
    if (++tx_index_ == slots_) tx_index_ = 0;
    up(tx_->filled);
  }

  // Copies the next message out. One that does not fit is discarded (its
  // slot freed) before ProtocolError, so the channel stays usable.
  std::size_t consume(std::span<std::byte> buffer) {
    const std::byte* slot = rx_slots_ + rx_index_ * slot_bytes_;
    if (++rx_index_ == slots_) rx_index_ = 0;
    std::uint64_t length = 0;
    std::memcpy(&length, slot, sizeof length);
    if (length == 0 || length > max_message_) {
      up(rx_->free);
      throw ProtocolError("boost-shm: slot holds a length of " + std::to_string(length) +
                          " bytes (limit " + std::to_string(max_message_) + ")");
    }
    if (length > buffer.size()) {
      up(rx_->free);
      throw ProtocolError("boost-shm: a " + std::to_string(length) +
                          "-byte message does not fit the " + std::to_string(buffer.size()) +
                          "-byte buffer (discarded)");
    }
    std::memcpy(buffer.data(), slot + kSlotHeader, length);
    up(rx_->free);
    return length;
  }

  bi::managed_shared_memory segment_;  // first member: unmapped last
  PeerWatch peer_;
  std::size_t slots_;
  std::size_t slot_bytes_;
  std::size_t max_message_;
  Lane* tx_ = nullptr;
  Lane* rx_ = nullptr;
  std::byte* tx_slots_ = nullptr;
  std::byte* rx_slots_ = nullptr;
  std::atomic<std::uint32_t>* my_closed_ = nullptr;
  std::atomic<std::uint32_t>* peer_closed_ = nullptr;
  std::size_t tx_index_ = 0;  // next slot to write
  std::size_t rx_index_ = 0;  // next slot to read
};

class BoostShmEndpoint : public Endpoint {
 public:
  BoostShmEndpoint(std::string name, std::size_t payload) : name_(std::move(name)) {
    const std::size_t stride = round_up(kSlotHeader + payload, kSlotAlign);
    const std::size_t slots = std::clamp(kLaneBudget / stride, kMinSlots, kMaxSlots);
    const std::size_t area_bytes = 2 * slots * stride;
    const std::size_t size =
        round_up(area_bytes + kSegmentOverhead, static_cast<std::size_t>(::getpagesize()));
    check_dev_shm_space(size, "/dev/shm/" + name_);
    // Mode 0600: Boost's default is 0644; it applies the mode with fchmod,
    // so the umask cannot widen or narrow it.
    segment_ = boost_ipc::create_logged<bi::shared_memory_object>(
        name_, "cannot create shared memory segment /dev/shm/" + name_, [&] {
          return bi::managed_shared_memory(bi::create_only, name_.c_str(), size, nullptr,
                                           bi::permissions(0600));
        });
    guard_.arm(name_);
    reserve_pages(name_);
    try {
      void* area = segment_.allocate_aligned(area_bytes, kSlotAlign);
      control_ = segment_.construct<Control>(kControlName)(payload, stride, slots,
                                                           segment_.get_handle_from_address(area));
    } catch (const bi::interprocess_exception& e) {
      rethrow_setup(e, "cannot lay out shared memory segment /dev/shm/" + name_);
    }
    // Pre-fault: fault every page in now, not in the first timed messages.
    // Nobody else maps the segment yet, so rewriting each byte is harmless.
    auto* base = static_cast<volatile std::byte*>(segment_.get_address());
    const std::size_t page = static_cast<std::size_t>(::getpagesize());
    for (std::size_t off = 0; off < segment_.get_size(); off += page) base[off] = base[off];
  }

  std::string address() const override { return name_; }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    if (control_ == nullptr) throw std::logic_error("boost-shm: accept() called twice");
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto left = deadline - Clock::now();
      if (timed_down(control_->connected, std::clamp<std::chrono::nanoseconds>(
                                              left, std::chrono::nanoseconds::zero(), kSlice))) {
        break;
      }
      posix::throw_if_interrupted();
      if (Clock::now() >= deadline) {
        throw Timeout("boost-shm: no peer attached to /dev/shm/" + name_ + " within " +
                      std::to_string(timeout.count()) + " ms");
      }
    }
    // Both sides have it mapped: the name is no longer needed.
    guard_.remove();
    PeerWatch peer(control_->peer_pid.load(std::memory_order_acquire));
    Control* control = std::exchange(control_, nullptr);
    return std::make_unique<BoostShmChannel>(std::move(segment_), control, true, std::move(peer));
  }

 private:
  std::string name_;
  NameGuard guard_;  // removes the name if accept() never ran
  bi::managed_shared_memory segment_;
  Control* control_ = nullptr;
};

// Checks the shape "ipcbench.<pid>.<tag>.bshm": one file name in /dev/shm.
void check_address(std::string_view address) {
  bool ok = address.size() <= NAME_MAX && address.starts_with(kPrefix) &&
            address.ends_with(kSuffix) && address.size() > kPrefix.size() + kSuffix.size() &&
            address.find('/') == std::string_view::npos &&
            address.find('\0') == std::string_view::npos;
  if (ok) {
    const std::string_view rest = address.substr(kPrefix.size());
    const std::size_t dot = rest.find('.');
    ok = dot != 0 && dot != std::string_view::npos &&
         std::all_of(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(dot),
                     [](char c) { return c >= '0' && c <= '9'; });
  }
  if (!ok) {
    throw std::invalid_argument("malformed boost-shm address '" +
                                std::string(address.substr(0, 80)) +
                                "' (expected ipcbench.<pid>.<tag>.bshm)");
  }
}

// The largest message this machine can carry: 16 MiB, less where /dev/shm
// is small (Docker's default is 64 MiB). A case needs about 8 x max_message
// there (4 slots per direction) and should leave half of it to others. Total
// size, not free space, so the answer does not change from run to run.
std::size_t probe_max_message() {
  struct statvfs fs {};
  if (::statvfs("/dev/shm", &fs) != 0) return kMaxMessage;
  const auto total = static_cast<std::size_t>(fs.f_blocks) * fs.f_frsize;
  return std::clamp<std::size_t>(total / 16 / 1024 * 1024, kMinPayload, kMaxMessage);
}

class BoostShmMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "boost-shm"; }
  std::string_view family() const override { return "shm"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = max_message_,
            .crosses_hosts = false,
            .pollable = false,
            .lossy = false,
            .names = Names::kSystem};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    if (options.max_message > kMaxMessage) {
      throw std::invalid_argument("boost-shm: max_message " + std::to_string(options.max_message) +
                                  " exceeds the limit of " + std::to_string(kMaxMessage));
    }
    if (options.tag.empty() ||
        options.tag.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
      throw std::invalid_argument("boost-shm: tag '" + options.tag + "' is empty or has '/'");
    }
    const std::string name = objects::object_name(options.tag) + std::string(kSuffix);
    check_address(name);
    return std::make_unique<BoostShmEndpoint>(name, std::max(options.max_message, kMinPayload));
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    check_address(address);
    const std::string name(address);
    bi::managed_shared_memory segment;
    Control* control = nullptr;
    try {
      segment = bi::managed_shared_memory(bi::open_only, name.c_str());
      control = segment.find<Control>(kControlName).first;
    } catch (const bi::interprocess_exception& e) {
      rethrow_setup(e, "cannot open shared memory segment /dev/shm/" + name);
    }
    if (control == nullptr || control->magic != kMagic) {
      throw std::system_error(EINVAL, std::generic_category(),
                              "/dev/shm/" + name + " is not a boost-shm segment of this version");
    }
    if (options.max_message > control->payload_bytes) {
      throw std::invalid_argument("boost-shm: max_message " + std::to_string(options.max_message) +
                                  " exceeds the listener's " +
                                  std::to_string(control->payload_bytes));
    }
    // Fault our mapping in (read only: the listener writes concurrently now).
    const auto* base = static_cast<const volatile std::byte*>(segment.get_address());
    const std::size_t page = static_cast<std::size_t>(::getpagesize());
    for (std::size_t off = 0; off < segment.get_size(); off += page) (void)base[off];
    PeerWatch owner(control->owner_pid);
    control->peer_pid.store(::getpid(), std::memory_order_release);
    up(control->connected);
    return std::make_unique<BoostShmChannel>(std::move(segment), control, false, std::move(owner));
  }

 private:
  const std::size_t max_message_ = probe_max_message();
};

}  // namespace

std::unique_ptr<Mechanism> make_boost_shm() { return std::make_unique<BoostShmMechanism>(); }

}  // namespace ipcbench::mech
