// Shared-memory channel over two SPSC rings (shm_ring.hpp), shared by the
// shm-spin and shm-futex mechanisms, which differ only in how they wait: a
// wait policy (SpinWait, FutexWait below) is a small type the channel is
// built with, so a new wake-up is one more struct, not edits inside it.
//
// Segment layout (by default one POSIX shm object, created O_EXCL with
// mode 0600, named /ipcbench.<pid>.<tag>.<suffix>, unlinked as soon as the
// peer mapped it; a segment policy below may put it elsewhere):
//   [SegmentHeader | pad to 4 KiB][RingControl up | pad][data up]
//   [RingControl down | pad][data down]
// "up" carries listener -> connector, "down" the other way.
#pragma once

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mechanisms/channels/shm_ring.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/futex.hpp"
#include "mechanisms/posix/limits.hpp"
#include "mechanisms/posix/mapping.hpp"
#include "mechanisms/posix/object_log.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/spin.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench::shm {

inline constexpr std::uint64_t kMagic = 0x6970636265686d31ull;  // "ipcbehm1"
inline constexpr std::size_t kPage = 4096;
// Largest message: rings are sized per case, so this only bounds memory
// (a 16 MiB case maps 2 x 64 MiB).
inline constexpr std::size_t kMaxShmMessage = 16u << 20;

struct SegmentHeader {
  std::uint64_t magic;
  std::uint64_t capacity;                                    // bytes of each ring's data area
  std::uint64_t max_message;                                 // largest message of the case
  std::uint64_t total_size;                                  // bytes of the whole segment
  alignas(kCacheLine) std::atomic<std::uint32_t> connected;  // futex word: 1 once mapped
};

inline std::size_t ring_capacity_for(std::size_t max_message) {
  // Room for kSlots of the largest message (all that can be in flight), but
  // not much beyond the L2 (~1 MiB) unless two of them alone need more; and
  // small, so a stream of small messages stays in L1.
  const std::size_t record = align_record(max_message);
  const std::size_t want = std::min<std::size_t>(std::bit_ceil(kSlots * record), 1u << 20);
  return std::max({std::size_t{4096}, want, std::bit_ceil(2 * record)});
}

inline std::size_t segment_size(std::size_t capacity) { return kPage + 2 * (kPage + capacity); }

using posix::futex_wake;

// Sleeps while *word == expected, at most `timeout`. Returns normally on a
// wake-up, a value change or a timeout; throws PeerLost when the harness
// interrupted the wait (EINTR with the interrupt flag set).
inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) {
  if (posix::futex_wait(word, expected, timeout) != 0 && errno == EINTR) {
    posix::throw_if_interrupted();
  }
}

// One mapping of the segment (posix::MappedRegion owns it) and where its
// parts are.
class Mapping {
 public:
  explicit Mapping(posix::MappedRegion region) : region_(std::move(region)) {}
  std::byte* base() const noexcept { return region_.data(); }
  SegmentHeader* header() const noexcept { return reinterpret_cast<SegmentHeader*>(base()); }
  RingControl* control(int ring) const noexcept {
    return reinterpret_cast<RingControl*>(base() + kPage + ring * (kPage + header()->capacity));
  }
  std::byte* data(int ring) const noexcept {
    return base() + kPage + ring * (kPage + header()->capacity) + kPage;
  }

 private:
  posix::MappedRegion region_;
};

using Deadline = std::chrono::steady_clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();
// Spins between checks of the interrupt flag and the clock (~10-50 us).
inline constexpr unsigned kSpinsPerCheck = 1024;
// Futex sleeps are sliced so a missed wake-up can never hang us.
inline constexpr auto kSleepSlice = std::chrono::milliseconds(100);

// Spins until `done()`, at most `limit` spins or until the deadline; true
// when done. Yields the CPU on each spin when both sides share one.
template <typename Done>
bool spin_until(Done done, unsigned limit, bool same_cpu, Deadline deadline) {
  for (unsigned i = 1; i <= limit; ++i) {
    if (done()) return true;
    posix::relax(same_cpu);  // yields when the other side needs this CPU
    if (i % kSpinsPerCheck == 0) {
      posix::throw_if_interrupted();
      if (deadline != kNoDeadline && std::chrono::steady_clock::now() >= deadline) return done();
    }
  }
  return done();
}

// Announces that we sleep, then sleeps on `word` until `done()` or the
// deadline. The seq_cst fence after the announcement pairs with the other
// side's fence after publishing: either we see its progress or it sees our
// flag and wakes us.
template <typename Done>
void sleep_until(Done done, std::atomic<std::uint32_t>& waiting, std::atomic<std::uint32_t>& word,
                 Deadline deadline) {
  waiting.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  struct Reset {
    std::atomic<std::uint32_t>& w;
    ~Reset() { w.store(0, std::memory_order_relaxed); }
  } reset{waiting};
  for (;;) {
    const std::uint32_t seen = word.load(std::memory_order_acquire);
    if (done()) return;
    posix::throw_if_interrupted();
    auto slice = std::chrono::nanoseconds(kSleepSlice);
    if (deadline != kNoDeadline) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return;
      slice = std::min(slice, std::chrono::duration_cast<std::chrono::nanoseconds>(left));
    }
    futex_wait(&word, seen, slice);
  }
}

// A wait policy: how a side waits for data (`wait_for_data`) or room
// (`wait_for_room`) until `ready()` or the deadline, and what it does after
// publishing a message (`pushed`) or consuming one (`popped`) so that the
// other side's wait ends. The channel holds one as a member, so a policy
// with state of its own (descriptors to wake through) fits too. Optional,
// for a policy whose waits are descriptors (EventfdWait,
// eventfd_wait.hpp): `receive_fd()`/`send_fd()` make the channel pollable;
// `attach` when the channel is built, `arm_for_data`/`arm_for_room` when
// try_receive finds nothing
// or try_send is refused (a caller may now poll), `took_data`/`found_room`
// when it then succeeds; a `Shared` type is what both sides hold beyond the
// segment (created by the listener, named in the address after a '?',
// inherited by the peer).

// Busy-polls with a pause instruction (yielding the CPU when both sides
// share one); publishing needs nothing more.
struct SpinWait {
  void pushed(RingProducer& /*producer*/) {}
  void popped(RingConsumer& /*consumer*/) {}
  template <typename Ready>
  void wait_for_data(RingConsumer& /*consumer*/, Ready ready, bool same_cpu, Deadline deadline) {
    spin_until(ready, ~0u, same_cpu, deadline);
  }
  template <typename Ready>
  void wait_for_room(RingProducer& /*producer*/, Ready ready, bool same_cpu, Deadline deadline) {
    spin_until(ready, ~0u, same_cpu, deadline);
  }
};

// Spins briefly, then sleeps on the ring's futex word until the other side
// wakes it; the publisher wakes only a side that said it sleeps.
struct FutexWait {
  // Spins before sleeping. Short: a cross-CPU wake-up on a VM costs tens of
  // us, so a reply that is already on its way is worth a few us of
  // spinning, but not more. Under same-cpu it sleeps at once.
  static constexpr unsigned kSpinsBeforeSleep = 256;

  void pushed(RingProducer& producer) {
    if (producer.consumer_needs_wake()) {
      producer.control()->data_futex.fetch_add(1, std::memory_order_release);
      futex_wake(&producer.control()->data_futex);
    }
  }
  void popped(RingConsumer& consumer) {
    if (consumer.producer_needs_wake()) {
      consumer.control()->space_futex.fetch_add(1, std::memory_order_release);
      futex_wake(&consumer.control()->space_futex);
    }
  }
  template <typename Ready>
  void wait_for_data(RingConsumer& consumer, Ready ready, bool same_cpu, Deadline deadline) {
    if (!same_cpu && spin_until(ready, kSpinsBeforeSleep, same_cpu, deadline)) return;
    sleep_until(ready, consumer.control()->consumer_waiting, consumer.control()->data_futex,
                deadline);
  }
  template <typename Ready>
  void wait_for_room(RingProducer& producer, Ready ready, bool same_cpu, Deadline deadline) {
    if (!same_cpu && spin_until(ready, kSpinsBeforeSleep, same_cpu, deadline)) return;
    sleep_until(ready, producer.control()->producer_waiting, producer.control()->space_futex,
                deadline);
  }
};

template <typename Wait>
class ShmChannel : public Channel {
 public:
  // `listener` selects which ring is ours to produce into.
  ShmChannel(std::unique_ptr<Mapping> mapping, bool listener, bool same_cpu, Wait wait = {})
      : mapping_(std::move(mapping)),
        producer_(mapping_->control(listener ? 0 : 1), mapping_->data(listener ? 0 : 1)),
        consumer_(mapping_->control(listener ? 1 : 0), mapping_->data(listener ? 1 : 0)),
        max_message_(mapping_->header()->max_message),
        same_cpu_(same_cpu),
        wait_(std::move(wait)) {
    if constexpr (requires { wait_.attach(producer_, consumer_); }) {
      wait_.attach(producer_, consumer_);
    }
  }

  void send(std::span<const std::byte> message) override {
    check_size(message.size());
    while (!producer_.try_push(message)) wait_for_room(message.size(), kForever);
    wait_.pushed(producer_);
  }

  std::size_t receive(std::span<std::byte> buffer) override {
    while (!consumer_.ready()) wait_for_data(kForever);
    return pop(buffer);
  }

  bool try_send(std::span<const std::byte> message) override {
    check_size(message.size());
    if (!producer_.try_push(message)) {
      refused_size_ = message.size();  // wait_sendable waits for room for this one
      if constexpr (requires { wait_.arm_for_room(producer_); }) {
        wait_.arm_for_room(producer_);  // then look again: room may have come meanwhile
        if (!producer_.try_push(message)) return false;
      } else {
        return false;
      }
    }
    if constexpr (requires { wait_.found_room(producer_); }) wait_.found_room(producer_);
    wait_.pushed(producer_);
    return true;
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    if (!consumer_.ready()) {
      if constexpr (requires { wait_.arm_for_data(consumer_); }) {
        wait_.arm_for_data(consumer_);  // then look again: a message may have come meanwhile
        if (!consumer_.ready()) return std::nullopt;
      } else {
        return std::nullopt;
      }
    }
    return pop(buffer);
  }

  int receive_fd() const noexcept override {
    if constexpr (requires { wait_.receive_fd(); }) return wait_.receive_fd();
    return -1;
  }
  int send_fd() const noexcept override {
    if constexpr (requires { wait_.send_fd(); }) return wait_.send_fd();
    return -1;
  }

  bool wait_receivable(std::chrono::nanoseconds timeout) override {
    if (consumer_.ready()) return true;
    wait_for_data(timeout);
    return consumer_.ready();
  }

  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    // Room for the message try_send last refused (or the smallest one).
    if (producer_.has_room(refused_size_)) return true;
    wait_for_room(refused_size_, timeout);
    return producer_.has_room(refused_size_);
  }

 private:
  static constexpr auto kForever = std::chrono::nanoseconds::max();

  void check_size(std::size_t size) const {
    if (size == 0 || size > max_message_) {
      throw std::invalid_argument("message of " + std::to_string(size) + " bytes outside 1.." +
                                  std::to_string(max_message_));
    }
  }

  std::size_t pop(std::span<std::byte> buffer) {
    const std::size_t len = consumer_.next_length();
    if (len > buffer.size() || len > max_message_) {
      throw ProtocolError("message of " + std::to_string(len) + " bytes does not fit the " +
                          std::to_string(buffer.size()) + "-byte receive buffer");
    }
    consumer_.pop(buffer);
    if constexpr (requires { wait_.took_data(consumer_); }) wait_.took_data(consumer_);
    wait_.popped(consumer_);
    return len;
  }

  static Deadline deadline_after(std::chrono::nanoseconds t) {
    if (t == kForever) return kNoDeadline;
    return std::chrono::steady_clock::now() + t;
  }

  void wait_for_data(std::chrono::nanoseconds timeout) {
    wait_.wait_for_data(
        consumer_, [this] { return consumer_.ready(); }, same_cpu_, deadline_after(timeout));
  }

  void wait_for_room(std::size_t size, std::chrono::nanoseconds timeout) {
    wait_.wait_for_room(
        producer_, [this, size] { return producer_.has_room(size); }, same_cpu_,
        deadline_after(timeout));
  }

  std::unique_ptr<Mapping> mapping_;
  RingProducer producer_;
  RingConsumer consumer_;
  std::size_t max_message_;
  bool same_cpu_;
  [[no_unique_address]] Wait wait_;
  std::size_t refused_size_ = 1;
};

// What a policy's two sides share beyond the segment: its `Shared`, or
// nothing (an address with nothing after the name).
struct NothingShared {
  static NothingShared create(const ListenOptions& /*options*/) { return {}; }
  static NothingShared attach(std::string_view suffix) {
    if (!suffix.empty()) {
      throw std::invalid_argument("malformed shared memory name: unexpected '" +
                                  std::string(suffix) + "'");
    }
    return {};
  }
  std::string address_suffix() const { return {}; }
  std::vector<int> fds() const { return {}; }
};
template <typename Wait>
struct SharedOf {
  using type = NothingShared;
};
template <typename Wait>
requires requires { typename Wait::Shared; }
struct SharedOf<Wait> {
  using type = typename Wait::Shared;
};
template <typename Wait>
Wait make_wait(typename SharedOf<Wait>::type shared, bool listener) {
  if constexpr (requires { typename Wait::Shared; }) {
    return Wait(std::move(shared), listener);
  } else {
    return Wait{};
  }
}

// Where a segment lives, and how the peer finds it: a segment policy.
// The listener's side constructs one, `create(size)`s the object (sized and
// backed), names it in `address()` (with `fds()` for the peer to inherit)
// and calls `peer_attached()` once the peer has mapped it; its destructor
// removes what is left. The connector's side calls the static
// `open(address, options)`, which checks what it found. NamedSegment is a
// POSIX shm object; memfd's (shared_memory/memfd.cpp) has no name at all.
struct OpenedSegment {
  posix::Fd fd;
  std::string what;  // "shared memory /ipcbench...", for error messages
};

class NamedSegment {
 public:
  explicit NamedSegment(std::string name) : name_(std::move(name)) {}
  NamedSegment(NamedSegment&& other) noexcept
      : name_(std::move(other.name_)), linked_(std::exchange(other.linked_, false)) {}
  NamedSegment& operator=(NamedSegment&&) = delete;
  ~NamedSegment() { unlink_name(); }

  posix::Fd create(std::size_t size) {
    objects::creating(objects::posix_shm(name_));  // recorded before it exists
    posix::Fd fd(::shm_open(name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) {
      const int err = errno;
      objects::removed(objects::posix_shm(name_));
      posix::throw_errno(err, "cannot create " + what());
    }
    linked_ = true;
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      const int err = errno;
      posix::throw_errno(err, "cannot size " + what() + " to " + std::to_string(size) + " bytes" +
                                  posix::shm_hint(err, size));
    }
    // Back every page now: tmpfs allocates on first write, and a full
    // /dev/shm then kills the first writer with SIGBUS; reserving makes it
    // an error here, before anything is mapped or measured.
    posix::reserve_shm(fd.get(), size, what());
    return fd;
  }
  std::string what() const { return "shared memory " + name_; }
  std::string address() const { return name_; }
  std::vector<int> fds() const { return {}; }
  void peer_attached() { unlink_name(); }  // both sides hold mappings now

  static OpenedSegment open(std::string_view address, const ConnectOptions& /*options*/) {
    const std::string name(address);
    if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos) {
      throw std::invalid_argument("malformed shared memory name '" + name + "'");
    }
    posix::Fd fd(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0));
    if (!fd) posix::throw_errno("cannot open shared memory " + name);
    return {std::move(fd), "shared memory " + name};
  }

 private:
  void unlink_name() noexcept {
    if (linked_) {
      ::shm_unlink(name_.c_str());
      objects::removed(objects::posix_shm(name_));
      linked_ = false;
    }
  }

  std::string name_;
  bool linked_ = false;
};

// The listener's side: has the segment policy create the segment, maps and
// pre-faults it, and lets the policy drop what the peer no longer needs
// once it has mapped it.
template <typename Wait, typename Segment = NamedSegment>
class ShmEndpoint : public Endpoint {
 public:
  ShmEndpoint(Segment segment, const ListenOptions& options)
      : segment_(std::move(segment)),
        same_cpu_(options.same_cpu),
        shared_(SharedOf<Wait>::type::create(options)) {
    const std::size_t max_message = options.max_message;
    const std::size_t capacity = ring_capacity_for(max_message);
    const std::size_t size = segment_size(capacity);
    // On a throw, segment_'s destructor removes what it created.
    const posix::Fd fd = segment_.create(size);
    mapping_ = std::make_unique<Mapping>(
        posix::MappedRegion::map_shared(size, fd.get(), MAP_POPULATE, segment_.what()));
    std::byte* base = mapping_->base();
    // Touch every page now (tmpfs allocates on first write): page faults
    // must not be measured.
    std::memset(base, 0, size);
    auto* header = new (base) SegmentHeader{};
    header->magic = kMagic;
    header->capacity = capacity;
    header->max_message = max_message;
    header->total_size = size;
    for (int ring = 0; ring < 2; ++ring) {
      auto* control = new (mapping_->control(ring)) RingControl{};
      control->capacity = capacity;
    }
  }

  std::string address() const override { return segment_.address() + shared_.address_suffix(); }
  std::vector<int> inherited_fds() const override {
    std::vector<int> fds = segment_.fds();
    for (int fd : shared_.fds()) fds.push_back(fd);
    return fds;
  }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    auto& connected = mapping_->header()->connected;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (connected.load(std::memory_order_acquire) == 0) {
      posix::throw_if_interrupted();
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) {
        throw Timeout("peer did not map " + segment_.what() + " within " +
                      std::to_string(timeout.count()) + " ms");
      }
      futex_wait(&connected, 0,
                 std::min<std::chrono::nanoseconds>(left, std::chrono::milliseconds(50)));
    }
    segment_.peer_attached();
    return std::make_unique<ShmChannel<Wait>>(std::move(mapping_), true, same_cpu_,
                                              make_wait<Wait>(std::move(shared_), true));
  }

 private:
  Segment segment_;
  bool same_cpu_;
  typename SharedOf<Wait>::type shared_;
  std::unique_ptr<Mapping> mapping_;
};

// The connecting side: has the segment policy open the segment (the
// address up to a '?'; the wait policy's part follows it), maps it, checks
// it, says it is there.
template <typename Wait, typename Segment = NamedSegment>
std::unique_ptr<Channel> connect_shm(std::string_view address, const ConnectOptions& options) {
  const std::string_view where = address.substr(0, address.find('?'));
  auto shared = SharedOf<Wait>::type::attach(address.substr(where.size()));
  OpenedSegment segment = Segment::open(where, options);
  struct stat st {};
  if (::fstat(segment.fd.get(), &st) != 0) posix::throw_errno("cannot stat " + segment.what);
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size < segment_size(0)) throw ProtocolError(segment.what + " is too small");
  auto mapping = std::make_unique<Mapping>(
      posix::MappedRegion::map_shared(size, segment.fd.get(), MAP_POPULATE, segment.what));
  const SegmentHeader* h = mapping->header();
  // Never trust the segment's own numbers beyond what we mapped.
  if (h->magic != kMagic || h->total_size != size || !std::has_single_bit(h->capacity) ||
      segment_size(h->capacity) != size || h->max_message == 0 ||
      h->max_message > ring_max_message(h->capacity) || h->max_message < options.max_message) {
    throw ProtocolError(segment.what + " is not an ipcbench segment of this size");
  }
  mapping->header()->connected.store(1, std::memory_order_release);
  futex_wake(&mapping->header()->connected);
  return std::make_unique<ShmChannel<Wait>>(std::move(mapping), false, options.same_cpu,
                                            make_wait<Wait>(std::move(shared), false));
}

// "/ipcbench.<pid>.<tag>.<suffix>": the owner's pid lets a later cleanup tell
// whose it is.
inline std::string shm_name(const ListenOptions& options, const char* suffix) {
  return objects::posix_name(options.tag, suffix);
}

}  // namespace ipcbench::shm
