// A single-producer single-consumer ring of variable-length messages that
// lives in shared memory (two processes map it at different addresses, so it
// holds offsets, never pointers).
//
// Why it is laid out this way:
// - Each record starts with an 8-byte header {commit, length} followed by the
//   payload, 8-byte aligned. The consumer polls the commit word of the next
//   record itself, not a separate head index: a small message then costs one
//   cache-line transfer (header and the start of the data share a line)
//   instead of two.
// - The commit word is the message's sequence number (+1, never 0). Before
//   publishing a record the producer zeroes the commit word where the next
//   record will start, so the consumer never mistakes stale bytes of an
//   earlier lap (old payload can hold any value) for a commit.
// - The consumer publishes how far it has read (`tail`) on its own cache
//   line; the producer keeps a private copy and rereads the shared one only
//   when the ring looks full, so in steady state that line does not move.
// - Payload is copied once in (producer) and once out (consumer); a record
//   that reaches the end of the data area wraps around in two copies.
// - Waiting is the caller's policy (spin or futex): the ring only answers
//   "is there a message / is there room" and offers the futex words.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>

namespace ipcbench::shm {

inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kRecordHeader = 8;

inline constexpr std::size_t align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

// Shared state of one direction. Lives in the segment; constructed in place
// by the creator, only attached by the other side.
struct RingControl {
  // alignas: each of these is written by one side only; separate lines keep
  // the producer's and the consumer's writes from invalidating each other.
  alignas(kCacheLine) std::atomic<std::uint64_t> tail{0};  // consumer: bytes consumed
  alignas(kCacheLine) std::atomic<std::uint32_t> consumer_waiting{0};
  std::atomic<std::uint32_t> data_futex{0};  // bumped by the producer to wake the consumer
  alignas(kCacheLine) std::atomic<std::uint32_t> producer_waiting{0};
  std::atomic<std::uint32_t> space_futex{0};  // bumped by the consumer to wake the producer
  alignas(kCacheLine) std::uint64_t capacity = 0;  // bytes in the data area, a power of two
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

struct RecordHeader {
  std::uint32_t commit;  // sequence + 1 once the record is complete
  std::uint32_t length;  // payload bytes
};
static_assert(sizeof(RecordHeader) == kRecordHeader);

// Largest payload a ring of `capacity` bytes accepts: a record must fit whole.
inline constexpr std::size_t ring_max_message(std::size_t capacity) {
  return capacity / 2 - 2 * kRecordHeader;
}

// Producer's view of one ring. Private state lives in this process.
class RingProducer {
 public:
  RingProducer() = default;
  RingProducer(RingControl* control, std::byte* data) : control_(control), data_(data) {
    mask_ = control->capacity - 1;
    capacity_ = control->capacity;
  }

  // Copies `message` into the ring and publishes it. Returns false (writing
  // nothing) when there is not enough free space right now.
  bool try_push(std::span<const std::byte> message) noexcept {
    // Room for the record plus the next record's header, which we clear.
    const std::size_t need = kRecordHeader + align8(message.size());
    if (head_ + need + kRecordHeader - cached_tail_ > capacity_) {
      cached_tail_ = control_->tail.load(std::memory_order_acquire);
      if (head_ + need + kRecordHeader - cached_tail_ > capacity_) return false;
    }
    const std::size_t at = head_ & mask_;
    auto* header = reinterpret_cast<RecordHeader*>(data_ + at);
    header->length = static_cast<std::uint32_t>(message.size());
    copy_in(at + kRecordHeader, message);
    auto* next = reinterpret_cast<RecordHeader*>(data_ + ((head_ + need) & mask_));
    std::atomic_ref<std::uint32_t>(next->commit).store(0, std::memory_order_relaxed);
    // release: payload, length and the cleared next commit word are visible
    // before this commit word.
    std::atomic_ref<std::uint32_t>(header->commit).store(++seq_, std::memory_order_release);
    head_ += need;
    return true;
  }

  // True when a consumer announced it sleeps and must be woken (futex mode).
  // The seq_cst fence pairs with the consumer's: either it sees our commit or
  // we see its flag.
  bool consumer_needs_wake() const noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return control_->consumer_waiting.load(std::memory_order_relaxed) != 0;
  }

  // Free space now, re-reading the consumer's position.
  bool has_room(std::size_t message_size) noexcept {
    cached_tail_ = control_->tail.load(std::memory_order_acquire);
    return head_ + 2 * kRecordHeader + align8(message_size) - cached_tail_ <= capacity_;
  }

  RingControl* control() const noexcept { return control_; }

 private:
  void copy_in(std::size_t at, std::span<const std::byte> m) noexcept {
    at &= mask_;
    const std::size_t first = std::min(m.size(), capacity_ - at);
    std::memcpy(data_ + at, m.data(), first);
    if (first < m.size()) std::memcpy(data_, m.data() + first, m.size() - first);
  }

  RingControl* control_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t head_ = 0;         // bytes produced (private: the commit words publish)
  std::uint64_t cached_tail_ = 0;  // last seen consumer position
  std::uint32_t seq_ = 0;
};

// Consumer's view of one ring.
class RingConsumer {
 public:
  RingConsumer() = default;
  RingConsumer(RingControl* control, std::byte* data) : control_(control), data_(data) {
    mask_ = control->capacity - 1;
    capacity_ = control->capacity;
  }

  // True when the next message is complete.
  bool ready() const noexcept {
    auto* header = reinterpret_cast<RecordHeader*>(data_ + (tail_ & mask_));
    return std::atomic_ref<std::uint32_t>(header->commit).load(std::memory_order_acquire) ==
           seq_ + 1;
  }

  // Length of the next message; call only when ready().
  std::size_t next_length() const noexcept {
    return reinterpret_cast<const RecordHeader*>(data_ + (tail_ & mask_))->length;
  }

  // Copies the next message into `buffer` (which must hold next_length()
  // bytes) and frees its space. Call only when ready().
  std::size_t pop(std::span<std::byte> buffer) noexcept {
    const std::size_t at = tail_ & mask_;
    const std::size_t len = reinterpret_cast<const RecordHeader*>(data_ + at)->length;
    const std::size_t from = (at + kRecordHeader) & mask_;
    const std::size_t first = std::min(len, capacity_ - from);
    std::memcpy(buffer.data(), data_ + from, first);
    if (first < len) std::memcpy(buffer.data() + first, data_, len - first);
    ++seq_;
    tail_ += kRecordHeader + align8(len);
    // release: our reads of the payload finish before the producer may
    // overwrite it.
    control_->tail.store(tail_, std::memory_order_release);
    return len;
  }

  // Futex mode: true when a producer sleeps waiting for room.
  bool producer_needs_wake() const noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return control_->producer_waiting.load(std::memory_order_relaxed) != 0;
  }

  RingControl* control() const noexcept { return control_; }

 private:
  RingControl* control_ = nullptr;
  std::byte* data_ = nullptr;  // not const: commit words are read through atomic_ref
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t tail_ = 0;
  std::uint32_t seq_ = 0;
};

}  // namespace ipcbench::shm
