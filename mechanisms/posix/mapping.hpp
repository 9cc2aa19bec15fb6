// The one owner of a memory mapping: move-only, unmapped in its destructor.
// Used by the shared-memory channel (a POSIX shm object) and the
// calibration (an anonymous shared mapping its forked child inherits).
#pragma once

#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <utility>

#include "mechanisms/posix/retry.hpp"

namespace ipcbench::posix {

class MappedRegion {
 public:
  MappedRegion() = default;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  MappedRegion(MappedRegion&& other) noexcept
      : base_(std::exchange(other.base_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedRegion& operator=(MappedRegion&& other) noexcept {
    if (this != &other) {
      reset();
      base_ = std::exchange(other.base_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~MappedRegion() { reset(); }

  // `size` bytes of `fd` from offset 0, or anonymous memory when fd is -1,
  // readable, writable and shared (with the file's other mappings, or with
  // children forked later); `flags` adds to MAP_SHARED (MAP_POPULATE).
  // Throws std::system_error naming `what`.
  static MappedRegion map_shared(std::size_t size, int fd, int flags, const std::string& what) {
    const int anonymous = fd < 0 ? MAP_ANONYMOUS : 0;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | anonymous | flags, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      throw_errno(err, "cannot map " + what + " (" + std::to_string(size) + " bytes)");
    }
    MappedRegion region;
    region.base_ = p;
    region.size_ = size;
    return region;
  }

  std::byte* data() const noexcept { return static_cast<std::byte*>(base_); }
  std::size_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return base_ != nullptr; }

 private:
  void reset() noexcept {
    if (base_ != nullptr) ::munmap(base_, size_);
    base_ = nullptr;
    size_ = 0;
  }

  void* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace ipcbench::posix
