// Shared POSIX helpers: interrupt flag and errno conversion.
#include <atomic>
#include <string>
#include <system_error>

#include "ipcbench/mechanism.hpp"
#include "ipcbench/posix/retry.hpp"

namespace ipcbench {

std::string_view to_string(Boundaries b) noexcept {
  return b == Boundaries::kMessage ? "message" : "stream";
}

std::string_view to_string(Waiting w) noexcept {
  switch (w) {
    case Waiting::kSpin: return "spin";
    case Waiting::kSpinThenSleep: return "spin-then-sleep";
    case Waiting::kSleep: break;
  }
  return "sleep";
}

namespace posix {
namespace {
std::atomic<bool> g_interrupt{false};
std::atomic<const char*> g_reason{"interrupted"};
}  // namespace

std::atomic<bool>& interrupt_flag() noexcept { return g_interrupt; }

const char* interrupt_reason() noexcept { return g_reason.load(std::memory_order_acquire); }

void request_interrupt(const char* reason) noexcept {
  g_reason.store(reason, std::memory_order_release);
  g_interrupt.store(true, std::memory_order_release);
}

void clear_interrupt() noexcept { g_interrupt.store(false, std::memory_order_release); }

void throw_if_interrupted() {
  if (g_interrupt.load(std::memory_order_acquire)) throw PeerLost(interrupt_reason());
}

void throw_errno(const std::string& what) { throw_errno(errno, what); }

void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

}  // namespace posix
}  // namespace ipcbench
