// A pattern's runner side and the peer's own serve loop (EchoServer) in a
// thread, over two channels the test makes (a socket pair, two pipes, a
// wrapper that tampers with messages): the patterns and engines run as
// against a peer process, with no process. Shared by patterns_test and
// engine_test.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/core/clock.hpp"
#include "bench/core/histogram.hpp"
#include "bench/measure/patterns.hpp"
#include "bench/wire/echo_server.hpp"
#include "bench/wire/peer_link.hpp"
#include "mechanisms/mechanism.hpp"

namespace testproc {

// One calibrated clock per test binary.
inline const ipcbench::Clock& test_clock() {
  static const ipcbench::Clock c = ipcbench::Clock::calibrate();
  return c;
}

class Loopback {
 public:
  // `runner` is the patterns' end, `peer` the serve loop's. `lossy` is what
  // both ends are told (gaps allowed, losses counted); `verify_full` makes
  // the peer check every payload byte.
  Loopback(std::unique_ptr<ipcbench::Channel> runner, std::unique_ptr<ipcbench::Channel> peer,
           std::size_t max_message, bool lossy = false, bool verify_full = false)
      : channel_(std::move(runner)), peer_(std::move(peer)), max_message_(max_message) {
    link_ = std::make_unique<ipcbench::PeerLink>(*channel_, lossy, max_message);
    server_ = std::thread([this, lossy, verify_full] {
      try {
        ipcbench::EchoServer server(
            *peer_, {.max_message = max_message_, .verify_full = verify_full, .lossy = lossy});
        server.say_hello();
        server.serve();
      } catch (const std::exception& e) {
        peer_error_ = e.what();
      }
      peer_.reset();  // the runner's next call learns that the peer is gone
    });
    link_->receive_hello();
  }
  Loopback(const Loopback&) = delete;
  Loopback& operator=(const Loopback&) = delete;
  ~Loopback() {
    if (server_.joinable()) finish();
  }

  // Says goodbye and waits for the serve loop to end; returns its error
  // (empty after a clean goodbye).
  std::string finish() {
    link_->say_bye();
    server_.join();
    return peer_error_;
  }

  // A context for one trial of `size`-byte messages: one in flight, closed
  // loop, the default flow budget, 30 ms timed trials.
  ipcbench::PatternContext context(std::size_t size) {
    send_.assign(max_message_, std::byte{0});
    receive_.assign(max_message_, std::byte{0});
    return {.link = *link_,
            .clock = test_clock(),
            .histogram = histogram_,
            .lateness = lateness_,
            .progress = progress_,
            .send_buffer = send_,
            .receive_buffer = receive_,
            .size = size,
            .window = 1,
            .rate = 0,
            .in_flight_bytes = ipcbench::kDefaultInFlightBytes,
            .min_time = std::chrono::milliseconds(30)};
  }

  ipcbench::PeerLink& link() { return *link_; }
  ipcbench::Channel& channel() { return *channel_; }
  ipcbench::Histogram& histogram() { return histogram_; }
  ipcbench::Histogram& lateness() { return lateness_; }
  std::uint64_t beats() const { return progress_.load(); }

 private:
  std::unique_ptr<ipcbench::Channel> channel_;
  std::unique_ptr<ipcbench::Channel> peer_;
  std::size_t max_message_;
  std::unique_ptr<ipcbench::PeerLink> link_;
  std::thread server_;
  std::string peer_error_;
  ipcbench::Histogram histogram_ = ipcbench::make_latency_histogram();
  ipcbench::Histogram lateness_ = ipcbench::make_latency_histogram();
  std::atomic<std::uint64_t> progress_{0};
  std::vector<std::byte> send_, receive_;
};

}  // namespace testproc
