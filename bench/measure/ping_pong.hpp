// The sync latency loop, shared by the benchmark (over a mechanism and a
// peer) and by the calibration's harness probe (over an in-process channel
// that only copies), so the probe measures exactly the loop the cases run.
//
// One clock read per round trip: each stamp ends one round trip and starts
// the next, so the header check, the histogram record and the next header
// write fall inside the following sample. That bookkeeping is what the
// harness probe reports as `harness_ns`.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "bench/core/clock.hpp"
#include "bench/core/histogram.hpp"
#include "bench/core/protocol.hpp"
#include "mechanisms/mechanism.hpp"

namespace ipcbench {

struct PingPongResult {
  std::uint32_t next_seq = 0;
  std::uint64_t ticks = 0;  // sum of the round trips (first to last stamp without --verify full)
};

// Called with the reply's size and expected sequence number when a reply is
// not the echo of what was sent; must throw.
using PingPongFailure = void (*)(std::span<const std::byte> buf, std::size_t n, std::uint32_t seq,
                                 std::size_t size, bool verify_full);

// `iterations` is anything a range-for can drive (a Countdown); the loop
// also ends at the first round trip that ends at or after the tick `until`
// (a timed trial: the stamp it compares is the one it takes anyway). Every
// reply's header (sequence, length, kind) is checked;
// with `verify_full` every payload byte too, outside the timed round trip:
// the stamp that starts a round trip is then taken after the fill (one more
// clock read), and the check runs before it.
template <typename Iterations>
PingPongResult ping_pong(Iterations& iterations, Channel& ch, const Clock& clock, Histogram& hist,
                         std::span<std::byte> send_buffer, std::span<std::byte> receive_buffer,
                         std::size_t size, bool verify_full, std::uint32_t seq,
                         std::atomic<std::uint64_t>& progress, PingPongFailure fail,
                         std::uint64_t until = ~std::uint64_t{0}) {
  const std::uint32_t expect_lk = pack_length_kind(size, Kind::kEcho);
  std::uint64_t beats = progress.load(std::memory_order_relaxed);
  std::uint64_t prev = clock.now();
  std::uint64_t total = 0;
  for ([[maybe_unused]] auto _ : iterations) {
    // Written where the channel lends it (a loan API's memory, else
    // send_buffer), read where it arrived (Channel::loan, receive_view).
    const std::span<std::byte> out = ch.loan(send_buffer, size);
    write_header(out.data(), seq, size, Kind::kEcho);
    if (verify_full) {
      fill_pattern(out, seq);
      prev = clock.now();
    }
    ch.send_loaned(out);
    const std::span<const std::byte> in = ch.receive_view(receive_buffer);
    const std::uint64_t now = clock.now();
    // Header check on every reply: seq, length and kind in two compares.
    const std::size_t n = in.size();
    const MessageHeader h = read_header(in.data());
    if (n != size || h.seq != seq || h.length_kind != expect_lk) [[unlikely]] {
      fail(in, n, seq, size, verify_full);
    }
    if (verify_full && check_pattern(in, seq) != n) fail(in, n, seq, size, true);
    ch.release_view();
    total += now - prev;
    hist.record(clock.to_ns(now - prev));
    prev = now;
    ++seq;
    progress.store(++beats, std::memory_order_relaxed);
    if (now >= until) break;
  }
  return {seq, total};
}

// A range of `n` iterations for ping_pong outside Google Benchmark.
class Countdown {
 public:
  explicit Countdown(std::uint64_t n) : n_(n) {}
  // Like Google Benchmark's State: the loop variable is an empty value
  // whose type is marked unused, so `for (auto _ : ...)` draws no warning.
  struct __attribute__((unused)) Value {};
  struct Iterator {
    std::uint64_t left;
    bool operator!=(const Iterator&) const noexcept { return left != 0; }
    void operator++() noexcept { --left; }
    Value operator*() const noexcept { return {}; }
  };
  Iterator begin() const noexcept { return {n_}; }
  Iterator end() const noexcept { return {0}; }

 private:
  std::uint64_t n_;
};

}  // namespace ipcbench
