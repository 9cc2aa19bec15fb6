#include "bench/run/progress.hpp"

#include <cmath>
#include <cstdio>

namespace ipcbench {
namespace {

std::string format_duration(double seconds) {
  const long s = std::lround(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace

Progress::Progress(std::size_t total, bool terminal)
    : total_(total), terminal_(terminal), start_(std::chrono::steady_clock::now()) {}

std::string Progress::eta() const {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string s = "elapsed " + format_duration(elapsed);
  if (done_ > 0 && done_ < total_) {
    s += ", ~" +
         format_duration(elapsed / static_cast<double>(done_) *
                         static_cast<double>(total_ - done_)) +
         " left";
  }
  return s;
}

void Progress::start_case(const std::string& name) {
  current_ = name;
  redraw();
}

void Progress::finish_case(const std::string& name, const std::string& outcome) {
  ++done_;
  current_.clear();
  if (terminal_) {
    redraw();
  } else {
    std::fprintf(stderr, "[%zu/%zu] %s: %s (%s)\n", done_, total_, name.c_str(), outcome.c_str(),
                 eta().c_str());
    std::fflush(stderr);
  }
}

void Progress::clear() {
  if (terminal_ && shown_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    shown_ = false;
  }
}

void Progress::redraw() {
  if (!terminal_) return;
  const std::size_t index = current_.empty() ? done_ : done_ + 1;
  std::fprintf(stderr, "\r\033[K[%zu/%zu] %s  %s", index, total_,
               current_.empty() ? "" : current_.c_str(), eta().c_str());
  std::fflush(stderr);
  shown_ = true;
}

}  // namespace ipcbench
