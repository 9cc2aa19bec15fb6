// A first-in first-out queue in one array that doubles when full and never
// shrinks, for queues on a hot path whose length has no fixed bound: once it
// has grown to the longest the queue gets, pushing and popping allocate
// nothing (std::deque allocates and frees a block every few elements as
// the queue moves along its blocks).
#pragma once

#include <bit>
#include <cstddef>
#include <utility>
#include <vector>

namespace ipcbench::posix {

template <typename T>
class RingQueue {
 public:
  // Room for `capacity` elements (rounded up to a power of two) before the
  // first growth. T must be default-constructible and movable.
  explicit RingQueue(std::size_t capacity = 16)
      : items_(std::bit_ceil(capacity == 0 ? std::size_t{1} : capacity)) {}

  bool empty() const noexcept { return count_ == 0; }
  std::size_t size() const noexcept { return count_; }
  std::size_t capacity() const noexcept { return items_.size(); }

  // The i-th element from the front (i < size()).
  T& operator[](std::size_t i) noexcept { return items_[(head_ + i) & mask()]; }
  T& front() noexcept { return items_[head_]; }
  T& back() noexcept { return (*this)[count_ - 1]; }

  void push_back(T value) {
    if (count_ == items_.size()) grow();
    items_[(head_ + count_) & mask()] = std::move(value);
    ++count_;
  }

  // Removes the front element and returns it (size() > 0).
  T pop_front() {
    T value = std::move(items_[head_]);
    items_[head_] = T{};  // what it owned goes with the returned value, not later
    head_ = (head_ + 1) & mask();
    --count_;
    return value;
  }

  void clear() {
    while (count_ > 0) (void)pop_front();
    head_ = 0;
  }

 private:
  std::size_t mask() const noexcept { return items_.size() - 1; }

  void grow() {
    std::vector<T> bigger(items_.size() * 2);
    for (std::size_t i = 0; i < count_; ++i) bigger[i] = std::move((*this)[i]);
    items_.swap(bigger);
    head_ = 0;
  }

  std::vector<T> items_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
};

}  // namespace ipcbench::posix
