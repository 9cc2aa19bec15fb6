#include "bench/measure/calibration.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "bench/core/histogram.hpp"
#include "bench/core/sysinfo.hpp"
#include "bench/core/units.hpp"
#include "bench/measure/ping_pong.hpp"
#include "mechanisms/posix/futex.hpp"
#include "mechanisms/posix/mapping.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/spin.hpp"

namespace ipcbench {
namespace {

// Time budgets. Short: the whole calibration should take a few seconds.
constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kCacheLineBudget = 150 * kMs;
constexpr std::uint64_t kPayloadBudget = 80 * kMs;  // per size
constexpr std::uint64_t kFutexBudget = 250 * kMs;
constexpr std::uint64_t kAdjacentBudget = 30 * kMs;  // each figure re-measured before a case
constexpr std::uint64_t kCopyBudget = 30 * kMs;      // per attempt, per size
constexpr std::uint64_t kMemcpyBudget = 10 * kMs;    // per attempt, per size
constexpr int kBandwidthAttempts = 2;                // bandwidth: the best of these, per layout
constexpr std::uint64_t kWarmUp = 20 * kMs;          // discarded at the start of each figure
// A calibration process that does not answer within this much more than the
// budget is dead or starved: the run fails with a clear error.
constexpr std::uint64_t kGrace = 2000 * kMs;

constexpr std::uint64_t kStop = ~std::uint64_t{0};
constexpr std::uint32_t kStop32 = ~std::uint32_t{0};

// Keeps a copy the compiler would otherwise drop as dead.
inline void keep(const void* p) noexcept { asm volatile("" : : "r"(p) : "memory"); }

// True when the 100 ms slice ran out (sliced: a lost wake-up never hangs us).
bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t seen) noexcept {
  return posix::futex_wait(word, seen, std::chrono::milliseconds(100)) != 0 && errno == ETIMEDOUT;
}
using posix::futex_wake;

// Each flag on its own cache line: only the flag being measured moves.
struct alignas(64) Line {
  std::atomic<std::uint64_t> v{0};
};
struct alignas(64) Word {
  std::atomic<std::uint32_t> v{0};
};

enum Op : std::uint64_t { kCacheLine = 1, kPayload, kFutex, kCopy, kQuit };

struct Control {
  Word command;  // bumped by the parent to start an op; the child sleeps on it
  Line op;
  Line size;
  Line slots;
  Line ping;   // parent -> child, spinning tests
  Line pong;   // child -> parent
  Word fping;  // futex test
  Word fpong;
  Line consumed;  // copy stream: messages the child has taken
  Line total;     // copy stream: messages the parent sent (0 while sending)
  Line done;      // the op's command number once the child finished it
  Line child_cpu;
};
static_assert(sizeof(Control) <= 4096);

std::size_t align64(std::size_t n) { return (n + 63) & ~std::size_t{63}; }
// Rotating payloads sit 128 bytes apart at least (a pair of lines: the
// adjacent-line prefetcher's unit), like the shared-memory ring's records.
std::size_t rotation_stride(std::size_t n) { return (n + 127) & ~std::size_t{127}; }

// The shared mapping: control page, then A (parent -> child), B (child ->
// parent), the child's private buffer, and the copy ring.
class Shared {
 public:
  explicit Shared(std::size_t max_size)
      : max_(align64(max_size)),
        area_(std::max<std::size_t>(1u << 20, 4 * rotation_stride(max_size))) {
    region_ = posix::MappedRegion::map_shared(4096 + 2 * area_ + max_, -1, 0,
                                              "the calibration's shared memory");
    std::memset(region_.data(), 0, region_.size());  // fault every page in before anything is timed
    new (region_.data()) Control();
  }

  Control& ctl() const noexcept { return *reinterpret_cast<Control*>(region_.data()); }
  // A and B: where the payload round trip's message goes out and comes
  // back, at offset 0 (fixed) or rotating through the area.
  std::byte* a(std::size_t offset = 0) const noexcept { return region_.data() + 4096 + offset; }
  std::byte* b(std::size_t offset = 0) const noexcept { return a() + area_ + offset; }
  std::byte* child_buffer() const noexcept { return b() + area_; }
  std::size_t area() const noexcept { return area_; }
  // Offset of message `n` when rotating with `stride` (0: fixed).
  std::size_t offset(std::uint64_t n, std::size_t stride) const noexcept {
    return stride == 0 ? 0 : (n * stride) % (area_ / stride * stride);
  }

 private:
  std::size_t max_;
  std::size_t area_;
  posix::MappedRegion region_;  // control page, A, B, the child's buffer
};

// ---- the calibration process (the child). Only atomics, memcpy and system
// calls here: it is a fork of a possibly multi-threaded process.

[[noreturn]] void child_main(const Shared& sh) {
  Control& c = sh.ctl();
  c.child_cpu.v.store(static_cast<std::uint64_t>(static_cast<std::int64_t>(sched_getcpu())));
  std::uint32_t seen = 0;
  for (;;) {
    std::uint32_t cmd;
    while ((cmd = c.command.v.load(std::memory_order_acquire)) == seen)
      futex_wait(&c.command.v, seen);
    seen = cmd;
    const std::uint64_t op = c.op.v.load(std::memory_order_relaxed);
    const std::size_t size = c.size.v.load(std::memory_order_relaxed);
    if (op == kQuit) ::_exit(0);
    if (op == kCacheLine || op == kPayload) {
      const std::size_t stride = c.slots.v.load(std::memory_order_relaxed);
      std::uint64_t last = 0;
      for (;;) {
        std::uint64_t v;
        while ((v = c.ping.v.load(std::memory_order_acquire)) == last) posix::cpu_relax();
        if (v == kStop) break;
        if (op == kPayload) {
          // Receive into our own buffer, send from it: what a peer does.
          const std::size_t at = sh.offset(v, stride);
          std::memcpy(sh.child_buffer(), sh.a(at), size);
          keep(sh.child_buffer());
          std::memcpy(sh.b(at), sh.child_buffer(), size);
        }
        c.pong.v.store(v, std::memory_order_release);
        last = v;
      }
    } else if (op == kFutex) {
      std::uint32_t last = 0;
      for (;;) {
        std::uint32_t v;
        while ((v = c.fping.v.load(std::memory_order_acquire)) == last)
          futex_wait(&c.fping.v, last);
        if (v == kStop32) break;
        c.fpong.v.store(v, std::memory_order_release);
        futex_wake(&c.fpong.v);
        last = v;
      }
    } else if (op == kCopy) {
      // Consume slots behind the parent's count, publishing our own; each
      // side rereads the other's count only when it has run out.
      const std::size_t slots = c.slots.v.load(std::memory_order_relaxed);
      const std::size_t stride = rotation_stride(size);
      std::uint64_t n = 0;
      std::uint64_t produced = 0;
      for (;;) {
        bool finished = false;
        while (n == produced) {
          produced = c.ping.v.load(std::memory_order_acquire);
          if (n != produced) break;
          const std::uint64_t total = c.total.v.load(std::memory_order_acquire);
          if (total != 0 && n == total) {
            finished = true;
            break;
          }
          posix::cpu_relax();
        }
        if (finished) break;
        std::memcpy(sh.child_buffer(), sh.a((n % slots) * stride), size);
        keep(sh.child_buffer());
        c.pong.v.store(++n, std::memory_order_release);
      }
      c.consumed.v.store(n, std::memory_order_release);
    }
    c.done.v.store(seen, std::memory_order_release);
  }
}

// ---- the runner's side.

class Prober {
 public:
  Prober(const Clock& clock, const Placement& placement, const std::vector<std::size_t>& sizes,
         const std::vector<int>& allowed)
      : clock_(clock),
        shared_(largest(sizes)),
        src_(largest(sizes), std::byte{0x5a}),
        dst_(largest(sizes)) {
    if (placement.runner_cpu >= 0) {
      pin_current_thread(placement.runner_cpu);
    } else {
      set_thread_affinity(allowed);
    }
    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "calibration: fork");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // Placement as for a peer: pinned, or free on every allowed CPU.
      cpu_set_t set;
      CPU_ZERO(&set);
      if (placement.peer_cpu >= 0) {
        CPU_SET(placement.peer_cpu, &set);
      } else {
        for (int cpu : allowed) CPU_SET(cpu, &set);
      }
      if (::sched_setaffinity(0, sizeof set, &set) != 0) ::_exit(2);
      child_main(shared_);
    }
  }
  ~Prober() {
    if (pid_ <= 0) return;
    Control& c = shared_.ctl();
    c.op.v.store(kQuit);
    c.command.v.fetch_add(1, std::memory_order_release);
    futex_wake(&c.command.v);
    for (int i = 0; i < 100; ++i) {  // up to 1 s, then kill
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      ::usleep(10'000);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  int child_cpu() const {
    return static_cast<int>(static_cast<std::int64_t>(shared_.ctl().child_cpu.v.load()));
  }

  // p50 and min round trip of a cache line (size 0) or of `size` bytes each
  // way, copied in and out as a shared-memory transport must: at fixed
  // buffers, or at buffers rotating through 1 MiB (`rotate`).
  std::pair<double, double> spin_round_trip(std::size_t size, std::uint64_t budget,
                                            bool rotate = false) {
    Control& c = shared_.ctl();
    c.ping.v.store(0);
    c.pong.v.store(0);
    const std::size_t stride = rotate ? rotation_stride(size) : 0;
    c.slots.v.store(stride);
    start(size == 0 ? kCacheLine : kPayload, size);
    Histogram hist = make_latency_histogram();
    const std::uint64_t t_start = Clock::monotonic_ns();
    const std::uint64_t warm_end = t_start + kWarmUp;
    const std::uint64_t end = warm_end + budget;
    const std::uint64_t hard = end + kGrace;
    std::uint64_t prev = clock_.now();
    for (std::uint64_t i = 1;; ++i) {
      const std::size_t at = shared_.offset(i, stride);
      if (size != 0) std::memcpy(shared_.a(at), src_.data(), size);
      c.ping.v.store(i, std::memory_order_release);
      for (unsigned spins = 1; c.pong.v.load(std::memory_order_acquire) != i; ++spins) {
        posix::cpu_relax();
        if (spins % 65536 == 0) check_alive(hard);
      }
      if (size != 0) {
        std::memcpy(dst_.data(), shared_.b(at), size);
        keep(dst_.data());
      }
      const std::uint64_t now = clock_.now();
      if ((i & 15) == 0) {
        const std::uint64_t wall = Clock::monotonic_ns();
        if (wall >= end) break;
        if (wall < warm_end) hist.reset();
      }
      hist.record(clock_.to_ns(now - prev));
      prev = now;
    }
    c.ping.v.store(kStop, std::memory_order_release);
    finish(hard);
    return {static_cast<double>(hist.value_at_percentile(50)), static_cast<double>(hist.min())};
  }

  // The payload floor: the faster layout's p50. Fixed buffers win for small
  // messages (their lines stay in the two caches), rotating ones for large
  // messages (the writer's lines are no longer in the reader's cache, so
  // writing them needs no invalidation); a transport may use either.
  double payload_round_trip(std::size_t size, std::uint64_t budget) {
    const double fixed = spin_round_trip(size, budget, false).first;
    return std::min(fixed, spin_round_trip(size, budget, true).first);
  }

  // p50 round trip of a futex wake-up each way: both sides sleep.
  double futex_round_trip() {
    Control& c = shared_.ctl();
    c.fping.v.store(0);
    c.fpong.v.store(0);
    start(kFutex, 0);
    Histogram hist = make_latency_histogram();
    const std::uint64_t warm_end = Clock::monotonic_ns() + kWarmUp;
    const std::uint64_t end = warm_end + kFutexBudget;
    const std::uint64_t hard = end + kGrace;
    std::uint64_t prev = clock_.now();
    for (std::uint32_t i = 1;; ++i) {
      c.fping.v.store(i, std::memory_order_release);
      futex_wake(&c.fping.v);
      std::uint32_t v;
      while ((v = c.fpong.v.load(std::memory_order_acquire)) != i) {
        if (futex_wait(&c.fpong.v, v)) check_alive(hard);  // no syscall but the futex's
      }
      const std::uint64_t now = clock_.now();
      const std::uint64_t wall = Clock::monotonic_ns();
      if (wall >= end) break;
      if (wall < warm_end) {
        hist.reset();
      } else {
        hist.record(clock_.to_ns(now - prev));
      }
      prev = now;
    }
    c.fping.v.store(kStop32, std::memory_order_release);
    futex_wake(&c.fping.v);
    finish(hard);
    return static_cast<double>(hist.value_at_percentile(50));
  }

  // Bytes/s of `size`-byte messages written on our CPU into slots that the
  // child copies out on its CPU, each side publishing a count and reading
  // the other's only when it runs out: the ceiling of shared-memory
  // throughput. The better of two layouts: two slots (their lines stay in
  // the caches) and slots rotating through 1 MiB or more.
  double cross_core_copy(std::size_t size) {
    const std::size_t stride = rotation_stride(size);
    double best = 0;
    const std::size_t batch = std::max<std::size_t>(1, 4096 / stride);
    for (std::size_t slots : {2 * batch, shared_.area() / stride}) {
      for (int attempt = 0; attempt < kBandwidthAttempts; ++attempt) {
        best = std::max(best, copy_stream(size, slots));
      }
    }
    return best;
  }

  double copy_stream(std::size_t size, std::size_t slots) {
    Control& c = shared_.ctl();
    const std::size_t stride = rotation_stride(size);
    c.ping.v.store(0);
    c.pong.v.store(0);
    c.total.v.store(0);
    c.consumed.v.store(0);
    c.slots.v.store(slots);
    start(kCopy, size);
    const std::uint64_t t0 = Clock::monotonic_ns();
    const std::uint64_t end = t0 + kCopyBudget;
    const std::uint64_t hard = end + kGrace;
    const std::size_t batch = std::max<std::size_t>(1, 4096 / stride);
    std::uint64_t n = 0;
    std::uint64_t consumed = 0;
    for (;;) {
      for (unsigned spins = 1; n - consumed >= slots; ++spins) {
        consumed = c.pong.v.load(std::memory_order_acquire);
        posix::cpu_relax();
        if (spins % 65536 == 0) check_alive(hard);
      }
      std::memcpy(shared_.a((n % slots) * stride), src_.data(), size);
      ++n;
      // Published every `batch` messages (about 4 KiB): per message, the
      // count's line would bounce between the CPUs once per message.
      if (n % batch == 0) {
        c.ping.v.store(n, std::memory_order_release);
        if (Clock::monotonic_ns() >= end) break;
      }
    }
    c.ping.v.store(n, std::memory_order_release);
    c.total.v.store(n, std::memory_order_release);
    finish(hard);
    const std::uint64_t t1 = Clock::monotonic_ns();
    if (c.consumed.v.load() != n) {
      throw std::runtime_error("calibration: the copy stream lost messages (" +
                               std::to_string(c.consumed.v.load()) + " of " + std::to_string(n) +
                               ")");
    }
    return static_cast<double>(n * size) / (static_cast<double>(t1 - t0) * 1e-9);
  }

 private:
  static std::size_t largest(const std::vector<std::size_t>& sizes) {
    std::size_t m = 64;
    for (std::size_t s : sizes) m = std::max(m, s);
    return m;
  }
  void start(std::uint64_t op, std::size_t size) {
    Control& c = shared_.ctl();
    c.op.v.store(op, std::memory_order_relaxed);
    c.size.v.store(size, std::memory_order_relaxed);
    command_ = c.command.v.fetch_add(1, std::memory_order_release) + 1;
    futex_wake(&c.command.v);
  }

  // Waits (sleeping) for the child to finish the current op.
  void finish(std::uint64_t hard) {
    Control& c = shared_.ctl();
    while (c.done.v.load(std::memory_order_acquire) != command_) {
      check_alive(hard);
      ::usleep(50);
    }
  }

  void check_alive(std::uint64_t hard) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("calibration: the calibration process died (" +
                               std::string(WIFSIGNALED(status)
                                               ? strsignal(WTERMSIG(status))
                                               : "exit " + std::to_string(WEXITSTATUS(status))) +
                               "); rerun with --no-calibration to skip it");
    }
    if (Clock::monotonic_ns() > hard) {
      throw std::runtime_error(
          "calibration: the calibration process stopped answering; the "
          "machine may be overloaded (rerun, or use --no-calibration)");
    }
  }

  const Clock& clock_;
  Shared shared_;
  std::vector<std::byte> src_;
  std::vector<std::byte> dst_;
  pid_t pid_ = -1;
  std::uint32_t command_ = 0;
};

double memcpy_bandwidth(std::size_t size) {
  std::vector<std::byte> src(size, std::byte{0x5a});
  std::vector<std::byte> dst(size, std::byte{0});
  double best = 0;
  for (int attempt = 0; attempt < kBandwidthAttempts; ++attempt) {
    const std::uint64_t t0 = Clock::monotonic_ns();
    const std::uint64_t end = t0 + kMemcpyBudget;
    std::uint64_t n = 0;
    std::uint64_t t1 = t0;
    do {
      for (int i = 0; i < 16; ++i) {
        std::memcpy(dst.data(), src.data(), size);
        keep(dst.data());
      }
      n += 16;
      t1 = Clock::monotonic_ns();
    } while (t1 < end);
    best = std::max(best, static_cast<double>(n * size) / (static_cast<double>(t1 - t0) * 1e-9));
  }
  return best;
}

double clock_read_ns(const Clock& clock) {
  constexpr int kReads = 100'000;
  std::uint64_t sink = 0;
  const std::uint64_t t0 = clock.now();
  for (int i = 0; i < kReads; ++i) sink += clock.now();
  const std::uint64_t t1 = clock.now();
  keep(&sink);
  return static_cast<double>(clock.to_ns(t1 - t0)) / kReads;
}

// An in-process channel that only copies: send stores the message, receive
// returns it. The latency loop over it costs exactly the harness's own
// per-round-trip work (header write and check, clock read, histogram record,
// heartbeat, two virtual calls and two copies of the message).
class LoopbackChannel final : public Channel {
 public:
  explicit LoopbackChannel(std::size_t max) : held_(max) {}
  void send(std::span<const std::byte> m) override {
    std::memcpy(held_.data(), m.data(), m.size());
    length_ = m.size();
  }
  std::size_t receive(std::span<std::byte> buffer) override {
    std::memcpy(buffer.data(), held_.data(), length_);
    return length_;
  }
  bool try_send(std::span<const std::byte> m) override {
    send(m);
    return true;
  }
  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    return receive(buffer);
  }
  bool wait_receivable(std::chrono::nanoseconds) override { return true; }
  bool wait_sendable(std::chrono::nanoseconds) override { return true; }

 private:
  std::vector<std::byte> held_;
  std::size_t length_ = 0;
};

[[noreturn]] void probe_failed(std::span<const std::byte>, std::size_t, std::uint32_t, std::size_t,
                               bool) {
  throw std::logic_error("harness probe: the loopback channel returned a wrong echo");
}

double harness_cost(const Clock& clock) {
  constexpr std::size_t kSize = 64;
  LoopbackChannel ch(kSize);
  std::vector<std::byte> send(kSize), receive(kSize);
  Histogram hist = make_latency_histogram();
  std::atomic<std::uint64_t> progress{0};
  Countdown warm(20'000);
  std::uint32_t seq = 1;
  seq = ping_pong(warm, ch, clock, hist, send, receive, kSize, false, seq, progress, probe_failed)
            .next_seq;
  hist.reset();
  Countdown measured(500'000);
  ping_pong(measured, ch, clock, hist, send, receive, kSize, false, seq, progress, probe_failed);
  return static_cast<double>(hist.value_at_percentile(50));
}

std::string fmt_ns(double ns) { return format_ns(ns, 1); }

std::string fmt_bw(double bps) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB/s", bps / 1e9);
  return buf;
}

}  // namespace

const PlacementCalibration* Calibration::find(const std::string& placement) const {
  for (const auto& p : placements) {
    if (p.placement == placement) return &p;
  }
  return nullptr;
}

Calibration calibrate(const Clock& clock, const std::vector<Placement>& placements,
                      const std::vector<std::size_t>& sizes, const std::vector<int>& allowed) {
  const std::uint64_t t0 = Clock::monotonic_ns();
  Calibration cal;
  bool first = true;
  // A stop signal between figures ends the calibration (each takes < 0.3 s).
  const auto stop_point = [] {
    if (posix::interrupt_flag().load()) throw std::runtime_error("calibration interrupted");
  };
  for (const Placement& pl : placements) {
    Prober prober(clock, pl, sizes, allowed);
    if (first) {
      // On the first placement's runner CPU: placement does not change them.
      cal.clock_read_ns = clock_read_ns(clock);
      cal.harness_ns = harness_cost(clock);
      first = false;
    }
    PlacementCalibration pc;
    pc.placement = pl.name();
    pc.runner_cpu = current_cpu();
    if (pl.spinning_applies()) {
      const auto [p50, min] = prober.spin_round_trip(0, kCacheLineBudget);
      pc.cache_line_rtt_ns = p50;
      pc.cache_line_rtt_min_ns = min;
      for (std::size_t s : sizes) {
        stop_point();
        pc.payload_rtt_ns[s] = prober.payload_round_trip(s, kPayloadBudget);
      }
      for (std::size_t s : sizes) {
        stop_point();
        pc.cross_core_copy_bytes_per_second[s] = prober.cross_core_copy(s);
      }
    } else {
      pc.notes.push_back(pl.name() +
                         ": spinning floors (cache-line and payload round trips, "
                         "cross-core copy) skipped: two spinners that may share a CPU measure "
                         "the scheduler, not the hardware");
    }
    stop_point();
    pc.futex_rtt_ns = prober.futex_round_trip();
    for (std::size_t s : sizes) pc.memcpy_bytes_per_second[s] = memcpy_bandwidth(s);
    pc.peer_cpu = prober.child_cpu();
    cal.placements.push_back(std::move(pc));
  }
  cal.duration_s = static_cast<double>(Clock::monotonic_ns() - t0) * 1e-9;
  return cal;
}

AdjacentFloor measure_adjacent_floor(const Clock& clock, const Placement& placement,
                                     Pattern pattern, std::size_t size,
                                     const std::vector<int>& allowed) {
  Prober prober(clock, placement, {size}, allowed);
  AdjacentFloor out;
  out.cache_line_rtt_min_ns = prober.spin_round_trip(0, kAdjacentBudget).second;
  if (pattern == Pattern::kLatency) {
    out.payload_rtt_ns = prober.payload_round_trip(size, kAdjacentBudget);
  } else {
    out.cross_core_copy_bytes_per_second = prober.cross_core_copy(size);
  }
  return out;
}

bool wants_adjacent_floor(const Capabilities& caps, const Placement& placement) {
  return caps.waiting != Waiting::kSleep && placement.spinning_applies();
}

Floor floor_for(const PlacementCalibration* cal, const Capabilities& caps, Mode mode,
                Pattern pattern, std::size_t size) {
  if (cal == nullptr) return {"", 0, "no calibration (--no-calibration)"};
  const auto at = [size](const std::map<std::size_t, double>& m) -> std::optional<double> {
    auto it = m.find(size);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
  if (pattern == Pattern::kLatency && mode == Mode::kAsync) {
    // With messages in flight nobody need wait for a wake-up: only moving
    // the payload there and back bounds a round trip.
    if (const auto payload = at(cal->payload_rtt_ns)) return {"payload_rtt", *payload, ""};
    return {"", 0, "no spinning floor under this placement: nothing bounds an async round trip"};
  }
  if (pattern == Pattern::kLatency) {
    const std::optional<double> payload = at(cal->payload_rtt_ns);
    Floor futex{"futex_rtt", cal->futex_rtt_ns, ""};  // not const: returned by move
    switch (caps.waiting) {
      case Waiting::kSpin:
        if (payload) return {"payload_rtt", *payload, ""};
        return {"", 0, "no spinning floor under this placement (only cross-cpu has them)"};
      case Waiting::kSpinThenSleep:
        // Under same-cpu such a mechanism sleeps at once.
        if (payload) return {"payload_rtt", *payload, ""};
        return futex;
      case Waiting::kSleep:
        // Both costs are paid; the larger one is the floor.
        if (payload && *payload > futex.value) return {"payload_rtt", *payload, ""};
        return futex;
    }
  }
  if (caps.copies == 0) return {"", 0, "the mechanism does not copy the payload"};
  if (const auto cross = at(cal->cross_core_copy_bytes_per_second)) {
    return {"cross_core_copy", *cross, ""};
  }
  if (const auto copy = at(cal->memcpy_bytes_per_second)) return {"memcpy", *copy, ""};
  return {"", 0, "message size not calibrated"};
}

std::optional<double> floor_ratio(const Floor& floor, Pattern pattern, double p50_ns,
                                  double bytes_per_second) {
  if (floor.name.empty() || !(floor.value > 0)) return std::nullopt;
  if (pattern == Pattern::kLatency) {
    if (!(p50_ns > 0)) return std::nullopt;
    return p50_ns / floor.value;
  }
  if (!(bytes_per_second > 0)) return std::nullopt;
  return floor.value / bytes_per_second;
}

std::string sanity_check(const PlacementCalibration* cal, const Capabilities& caps, Pattern pattern,
                         std::size_t size, double p50_ns, double bytes_per_second) {
  if (cal == nullptr) return {};
  if (pattern == Pattern::kLatency) {
    if (cal->cache_line_rtt_min_ns && p50_ns > 0 && p50_ns < *cal->cache_line_rtt_min_ns) {
      return "p50 round trip " + fmt_ns(p50_ns) +
             " is below the fastest cache-line round trip between these CPUs (" +
             fmt_ns(*cal->cache_line_rtt_min_ns) +
             "): no round trip can be faster, so the measurement is wrong";
    }
    return {};
  }
  auto it = cal->memcpy_bytes_per_second.find(size);
  if (caps.copies > 0 && it != cal->memcpy_bytes_per_second.end() &&
      bytes_per_second > it->second) {
    return "throughput " + fmt_bw(bytes_per_second) + " is above memcpy's " + fmt_bw(it->second) +
           " at " + format_size(size) +
           " on one core: a mechanism that copies the payload cannot be faster, so the "
           "measurement is wrong";
  }
  return {};
}

std::string floor_moved_note(double before_min_ns, double after_min_ns) {
  return "the fastest cache-line round trip between these CPUs fell from " + fmt_ns(before_min_ns) +
         " before the case to " + fmt_ns(after_min_ns) +
         " after it: the host moved the vCPUs during the case, so its figures describe another "
         "placement than the other cases'";
}

std::vector<std::string> describe(const Calibration& cal) {
  std::vector<std::string> out;
  char line[256];
  std::snprintf(line, sizeof line, "calibration (%.1f s): clock read %s, harness %s per round trip",
                cal.duration_s, fmt_ns(cal.clock_read_ns).c_str(), fmt_ns(cal.harness_ns).c_str());
  out.emplace_back(line);
  for (const PlacementCalibration& p : cal.placements) {
    std::snprintf(line, sizeof line, "  %s (CPUs %d,%d): cache-line RTT %s (min %s), futex RTT %s",
                  p.placement.c_str(), p.runner_cpu, p.peer_cpu,
                  p.cache_line_rtt_ns ? fmt_ns(*p.cache_line_rtt_ns).c_str() : "skipped",
                  p.cache_line_rtt_min_ns ? fmt_ns(*p.cache_line_rtt_min_ns).c_str() : "-",
                  fmt_ns(p.futex_rtt_ns).c_str());
    out.emplace_back(line);
    for (const auto& [size, bw] : p.memcpy_bytes_per_second) {
      auto payload = p.payload_rtt_ns.find(size);
      auto cross = p.cross_core_copy_bytes_per_second.find(size);
      std::snprintf(line, sizeof line, "    %8s: payload RTT %-10s memcpy %-11s cross-core copy %s",
                    format_size(size).c_str(),
                    payload != p.payload_rtt_ns.end() ? fmt_ns(payload->second).c_str() : "skipped",
                    fmt_bw(bw).c_str(),
                    cross != p.cross_core_copy_bytes_per_second.end()
                        ? fmt_bw(cross->second).c_str()
                        : "skipped");
      out.emplace_back(line);
    }
    for (const std::string& n : p.notes) out.push_back("    note: " + n);
  }
  return out;
}

}  // namespace ipcbench
