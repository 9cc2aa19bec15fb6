// Progress on stderr: a status line on a terminal (case i of N, elapsed,
// estimated time left), one line per finished case otherwise (CI logs).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace ipcbench {

class Progress {
 public:
  // `total`: cases this run will report; `terminal`: stderr is a tty.
  Progress(std::size_t total, bool terminal);

  void start_case(const std::string& name);
  // `outcome`: a short summary ("p50 12.3 us", "skipped: ...", "FAILED: ...").
  void finish_case(const std::string& name, const std::string& outcome);
  // Clears the status line so other output starts on a clean line.
  void clear();
  void redraw();

 private:
  std::string eta() const;

  std::size_t total_;
  std::size_t done_ = 0;
  bool terminal_;
  bool shown_ = false;
  std::string current_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ipcbench
