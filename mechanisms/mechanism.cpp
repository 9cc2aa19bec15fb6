// The interface's few out-of-line pieces: the names of its enums and the
// default wait_either.
#include "mechanisms/mechanism.hpp"

#include <algorithm>
#include <chrono>
#include <string_view>

namespace ipcbench {

std::string_view to_string(Boundaries b) noexcept {
  return b == Boundaries::kMessage ? "message" : "stream";
}

std::string_view to_string(Waiting w) noexcept {
  switch (w) {
    case Waiting::kSpin:
      return "spin";
    case Waiting::kSpinThenSleep:
      return "spin-then-sleep";
    case Waiting::kSleep:
      break;
  }
  return "sleep";
}

std::string_view to_string(Names n) noexcept {
  switch (n) {
    case Names::kRunDir:
      return "run-dir";
    case Names::kSystem:
      return "system";
    case Names::kNone:
      break;
  }
  return "none";
}

bool Channel::wait_either(std::chrono::nanoseconds timeout) {
  const auto slice = std::min<std::chrono::nanoseconds>(timeout, std::chrono::microseconds(100));
  return wait_receivable(slice) || wait_sendable(slice);
}

}  // namespace ipcbench
