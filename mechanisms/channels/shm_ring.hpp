// A single-producer single-consumer ring of variable-length messages that
// lives in shared memory (two processes map it at different addresses, so it
// holds offsets, never pointers).
//
// Why it is laid out this way (measured: docs/architecture.md, "Tuning the
// ring"):
// - The consumer polls one fixed cache line, the producer's `published`
//   line, which holds the count of published messages and the lengths of the
//   last kSlots of them. A message is its payload alone, starting on a cache
//   128-byte boundary of the data area: a 64-byte message moves exactly two
//   lines per direction (the published line and one data line), as the
//   calibration's payload round trip does. Polling the moving head of the data itself (a
//   commit word beside the payload, our first design) cost ~1.7x the floor
//   on the machines we measured: every message then lands on lines other
//   than the ones the consumer was watching.
// - At most kSlots messages are in flight, so their lengths fit the line.
// - The count only grows and is written after the payload (release), so
//   stale bytes of an earlier lap can never look like a new message.
// - The consumer publishes how far it has read (`consumed`, in messages and
//   bytes) on its own line; the producer keeps private copies and rereads
//   them only when the ring looks full, and the consumer rereads
//   `published` only when it has used up what it last saw.
// - Payload is copied once in (producer) and once out (consumer); a message
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
// Messages in flight at most: their lengths share the published line.
inline constexpr std::size_t kSlots = 14;

// Messages start on a 128-byte boundary: the adjacent-line prefetcher
// fetches lines in 128-byte pairs, and with 64-byte spacing it pulled the
// line of the *next* message into the consumer's cache while the producer
// was about to write it (one more coherence round trip per message: ~1.5x
// the floor instead of ~1.05x, measured).
inline constexpr std::size_t kRecordAlign = 2 * kCacheLine;

inline constexpr std::size_t align_record(std::size_t n) {
  return (n + kRecordAlign - 1) & ~(kRecordAlign - 1);
}

// Shared state of one direction. Lives in the segment; constructed in place
// by the creator, only attached by the other side.
struct RingControl {
  // alignas: each of these lines is written by one side only, so the
  // producer's and the consumer's writes never invalidate each other's.
  alignas(kCacheLine) std::atomic<std::uint64_t> published{0};  // producer: messages published
  std::uint32_t lengths[kSlots] = {};  // producer: length of message n in lengths[n % kSlots]
  alignas(kCacheLine) std::atomic<std::uint64_t> consumed{0};  // consumer: messages
  std::atomic<std::uint64_t> consumed_bytes{0};                // consumer: data bytes freed
  alignas(kCacheLine) std::atomic<std::uint32_t> consumer_waiting{0};
  std::atomic<std::uint32_t> data_futex{0};  // bumped by the producer to wake the consumer
  alignas(kCacheLine) std::atomic<std::uint32_t> producer_waiting{0};
  std::atomic<std::uint32_t> space_futex{0};       // bumped by the consumer to wake the producer
  alignas(kCacheLine) std::uint64_t capacity = 0;  // bytes in the data area, a power of two
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::uint64_t) + kSlots * sizeof(std::uint32_t) == kCacheLine,
              "the published count and the lengths fill exactly one line");

// Largest payload a ring of `capacity` bytes accepts: two must fit, so the
// producer can fill one while the consumer empties the other.
inline constexpr std::size_t ring_max_message(std::size_t capacity) { return capacity / 2; }

// Producer's view of one ring. Private state lives in this process.
class RingProducer {
 public:
  RingProducer() = default;
  RingProducer(RingControl* control, std::byte* data) : control_(control), data_(data) {
    mask_ = control->capacity - 1;
    capacity_ = control->capacity;
  }

  // Copies `message` (1 .. ring_max_message bytes) into the ring and
  // publishes it. Returns false (writing nothing) when there is no room now.
  [[nodiscard]] bool try_push(std::span<const std::byte> message) noexcept {
    const std::size_t need = align_record(message.size());
    if (!fits(need)) {
      refresh();
      if (!fits(need)) return false;
    }
    copy_in(head_ & mask_, message);
    std::atomic_ref<std::uint32_t>(control_->lengths[published_ % kSlots])
        .store(static_cast<std::uint32_t>(message.size()), std::memory_order_relaxed);
    // release: the payload and its length are visible before the count.
    control_->published.store(++published_, std::memory_order_release);
    head_ += need;
    return true;
  }

  // True when a consumer announced it sleeps and must be woken (futex mode).
  // The seq_cst fence pairs with the consumer's: either it sees our message
  // or we see its flag.
  bool consumer_needs_wake() const noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return control_->consumer_waiting.load(std::memory_order_relaxed) != 0;
  }

  // Room for a message of `message_size` now, re-reading the consumer's position.
  bool has_room(std::size_t message_size) noexcept {
    refresh();
    return fits(align_record(message_size));
  }

  RingControl* control() const noexcept { return control_; }

 private:
  bool fits(std::size_t need) const noexcept {
    return published_ - consumed_ < kSlots && head_ + need - consumed_bytes_ <= capacity_;
  }
  void refresh() noexcept {
    // acquire: the consumer has finished reading what it freed.
    consumed_ = control_->consumed.load(std::memory_order_acquire);
    consumed_bytes_ = control_->consumed_bytes.load(std::memory_order_acquire);
  }
  void copy_in(std::size_t at, std::span<const std::byte> m) noexcept {
    const std::size_t first = std::min(m.size(), capacity_ - at);
    std::memcpy(data_ + at, m.data(), first);
    if (first < m.size()) std::memcpy(data_, m.data() + first, m.size() - first);
  }

  RingControl* control_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t head_ = 0;            // data bytes produced (aligned records)
  std::uint64_t published_ = 0;       // messages published
  std::uint64_t consumed_ = 0;        // last seen consumer position, messages
  std::uint64_t consumed_bytes_ = 0;  // and bytes
};

// Consumer's view of one ring.
class RingConsumer {
 public:
  RingConsumer() = default;
  RingConsumer(RingControl* control, std::byte* data) : control_(control), data_(data) {
    mask_ = control->capacity - 1;
    capacity_ = control->capacity;
  }

  // True when the next message is complete. Reads the producer's line only
  // when every message seen there before is consumed.
  [[nodiscard]] bool ready() noexcept {
    if (seen_ > consumed_) return true;
    // acquire: pairs with the producer's release of the count.
    seen_ = control_->published.load(std::memory_order_acquire);
    return seen_ > consumed_;
  }

  // Length of the next message; call only when ready().
  [[nodiscard]] std::size_t next_length() const noexcept {
    return std::atomic_ref<std::uint32_t>(control_->lengths[consumed_ % kSlots])
        .load(std::memory_order_relaxed);
  }

  // Copies the next message into `buffer` (which must hold next_length()
  // bytes) and frees its space. Call only when ready().
  std::size_t pop(std::span<std::byte> buffer) noexcept {
    const std::size_t len = next_length();
    const std::size_t at = tail_ & mask_;
    const std::size_t first = std::min(len, capacity_ - at);
    std::memcpy(buffer.data(), data_ + at, first);
    if (first < len) std::memcpy(buffer.data() + first, data_, len - first);
    tail_ += align_record(len);
    ++consumed_;
    // release: our reads of the payload and its length finish before the
    // producer may overwrite them.
    control_->consumed_bytes.store(tail_, std::memory_order_release);
    control_->consumed.store(consumed_, std::memory_order_release);
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
  std::byte* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t tail_ = 0;      // data bytes consumed
  std::uint64_t consumed_ = 0;  // messages consumed
  std::uint64_t seen_ = 0;      // messages published, as last read
};

}  // namespace ipcbench::shm
