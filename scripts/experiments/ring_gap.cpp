// Experiment (not built by CMake): shm-spin's ring (shm_ring.hpp) alone, no
// channel and no harness: two processes pinned to CPUs 0 and 1 ping-pong a
// 64-byte message, back to back and with a spinning gap of 1 ms before each
// round trip (what an open loop at 1000/s does). Beside cacheline_gap.cpp
// (two bare cache lines) it places shm-spin's low-rate slowdown: on our
// 2-vCPU VMs, in one run, bare lines went 386 -> ~500 ns with the gap
// (1.3x), this ring ~470 -> ~850 ns (1.8x: each round trip moves four
// lines, the two published lines and the two payload lines, and each costs
// more after an idle millisecond), ShmChannel over it 1.0-1.5 us, and
// `ipcbench run --mechanisms shm-spin --modes async --rate 1000` ~1.45 us
// against its sync round trip of ~0.41 us. Build and run:
//   g++ -O2 -std=c++20 -I. -o /tmp/ring_gap scripts/experiments/ring_gap.cpp && /tmp/ring_gap
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "mechanisms/channels/shm_ring.hpp"

using namespace ipcbench::shm;

static void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  sched_setaffinity(0, sizeof s, &s);
}
static uint64_t ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000ull + t.tv_nsec;
}

constexpr size_t kCap = 4096;  // what ShmChannel sizes for 64-byte messages
struct alignas(4096) Segment {
  RingControl control[2];
  alignas(4096) std::byte up[kCap];
  alignas(4096) std::byte down[kCap];
};

int main() {
  auto* seg = static_cast<Segment*>(
      mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (seg == MAP_FAILED) return 1;
  std::memset(static_cast<void*>(seg), 0, sizeof *seg);
  for (auto& c : seg->control) new (&c) RingControl{};
  for (auto& c : seg->control) c.capacity = kCap;
  const pid_t child = fork();
  if (child == 0) {  // the echoing peer
    pin(1);
    RingConsumer in(&seg->control[0], seg->up);
    RingProducer out(&seg->control[1], seg->down);
    alignas(64) std::byte buf[64];
    for (;;) {
      while (!in.ready()) _mm_pause();
      in.pop(buf);
      uint64_t v;
      std::memcpy(&v, buf, 8);
      if (v == ~0ull) _exit(0);
      while (!out.try_push(buf)) _mm_pause();
    }
  }
  pin(0);
  RingProducer out(&seg->control[0], seg->up);
  RingConsumer in(&seg->control[1], seg->down);
  alignas(64) std::byte buf[64], reply[64];
  uint64_t seq = 0;
  for (uint64_t gap : {0ull, 1000000ull, 0ull, 1000000ull}) {
    std::vector<uint64_t> rtt;
    const uint64_t n = gap == 0 ? 20000 : 1000;
    for (uint64_t i = 0; i < n; ++i) {
      if (gap) {
        const uint64_t until = ns() + gap;
        while (ns() < until) _mm_pause();
      }
      ++seq;
      std::memset(buf, int(seq), sizeof buf);
      std::memcpy(buf, &seq, 8);
      const uint64_t t0 = ns();
      while (!out.try_push(buf)) _mm_pause();
      while (!in.ready()) _mm_pause();
      in.pop(reply);
      rtt.push_back(ns() - t0);
    }
    std::sort(rtt.begin(), rtt.end());
    std::printf("gap %8llu ns: n %6zu p50 %6llu ns p90 %6llu ns\n", (unsigned long long)gap,
                rtt.size(), (unsigned long long)rtt[rtt.size() / 2],
                (unsigned long long)rtt[rtt.size() * 9 / 10]);
  }
  const uint64_t stop = ~0ull;
  std::memcpy(buf, &stop, 8);
  while (!out.try_push(buf)) _mm_pause();
  waitpid(child, nullptr, 0);
}
