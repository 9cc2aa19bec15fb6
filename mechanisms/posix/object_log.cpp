// The object log: forwards the mechanisms' reports to the harness's observer.
#include "mechanisms/posix/object_log.hpp"

#include <sys/ipc.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>

namespace ipcbench::objects {
namespace {

std::atomic<Observer*> g_observer{nullptr};

constexpr std::array<std::pair<Kind, std::string_view>, 6> kNames{{
    {Kind::kPosixShm, "posix-shm"},
    {Kind::kPosixMq, "posix-mq"},
    {Kind::kSysvMsg, "sysv-msg"},
    {Kind::kSysvShm, "sysv-shm"},
    {Kind::kSysvSem, "sysv-sem"},
    {Kind::kDirectory, "dir"},
}};

}  // namespace

std::string_view to_string(Kind kind) noexcept {
  for (const auto& [k, name] : kNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

bool from_string(std::string_view text, Kind& kind) noexcept {
  for (const auto& [k, name] : kNames) {
    if (name == text) {
      kind = k;
      return true;
    }
  }
  return false;
}

void set_observer(Observer* observer) noexcept {
  g_observer.store(observer, std::memory_order_release);
}

void creating(const Object& object) {
  if (Observer* o = g_observer.load(std::memory_order_acquire)) o->creating(object);
}

void created(const Object& object) noexcept {
  if (Observer* o = g_observer.load(std::memory_order_acquire)) o->created(object);
}

void removed(const Object& object) noexcept {
  if (Observer* o = g_observer.load(std::memory_order_acquire)) o->removed(object);
}

key_t make_sysv_key() noexcept {
  std::uint32_t bits = 0;
  if (::getrandom(&bits, sizeof bits, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof bits)) {
    // No entropy yet (early boot): mix the pid and the clock; IPC_EXCL
    // still refuses a key that is taken.
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    bits = static_cast<std::uint32_t>(ts.tv_nsec) ^ (static_cast<std::uint32_t>(::getpid()) << 16) ^
           static_cast<std::uint32_t>(ts.tv_sec);
  }
  // Positive and never IPC_PRIVATE (0).
  bits &= 0x7fffffffu;
  if (bits == 0) bits = 1;
  return static_cast<key_t>(bits);
}

}  // namespace ipcbench::objects
