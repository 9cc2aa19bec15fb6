// Experiment (not built by CMake): a two-process cache-line ping-pong with
// a payload slot per message, pinned to CPUs 0 and 1, with a spinning gap
// of G ns before each round trip. It showed that an idle millisecond does
// not slow the hardware path on our 2-vCPU VMs (p50 332-419 ns with 1 ms
// gaps against 316-366 ns back to back), while shm-spin's sync ping-pong
// with the same gap went from 433 to 1423 ns: the cost is in our ring or
// peer path (issue 15's open item). Build and run:
//   g++ -O2 -std=c++20 -o /tmp/cacheline_gap scripts/experiments/cacheline_gap.cpp &&
//   /tmp/cacheline_gap
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>
struct alignas(128) Line {
  std::atomic<uint64_t> v;
  char pad[120];
};
struct Shared {
  Line ping, pong;
  char data[64 * 128];
};
static void pin(int c) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(c, &s);
  sched_setaffinity(0, sizeof s, &s);
}
static uint64_t ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000ull + t.tv_nsec;
}
int main() {
  auto* sh = static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  memset(sh, 0, sizeof *sh);
  pid_t p = fork();
  if (p == 0) {
    pin(1);
    uint64_t last = 0;
    for (;;) {
      uint64_t v;
      while ((v = sh->ping.v.load(std::memory_order_acquire)) == last) _mm_pause();
      if (v == ~0ull) _exit(0);
      last = v;
      // read the payload slot, write the reply slot (like a ring)
      char buf[64];
      memcpy(buf, sh->data + (v % 32) * 128, 64);
      memcpy(sh->data + ((v % 32) + 32) * 128 % sizeof sh->data, buf, 64);
      sh->pong.v.store(v, std::memory_order_release);
    }
  }
  pin(0);
  uint64_t seq = 0;
  for (uint64_t gap : {0ull, 10000ull, 100000ull, 300000ull, 1000000ull, 0ull}) {
    std::vector<uint64_t> s;
    const uint64_t n = gap == 0 ? 20000 : std::min<uint64_t>(20000, 400000000ull / (gap + 1));
    for (uint64_t i = 0; i < n; ++i) {
      if (gap) {
        uint64_t until = ns() + gap;
        while (ns() < until) _mm_pause();
      }
      ++seq;
      char buf[64];
      memset(buf, int(seq), 64);
      uint64_t t0 = ns();
      memcpy(sh->data + (seq % 32) * 128, buf, 64);
      sh->ping.v.store(seq, std::memory_order_release);
      while (sh->pong.v.load(std::memory_order_acquire) != seq) _mm_pause();
      uint64_t t1 = ns();
      s.push_back(t1 - t0);
    }
    std::sort(s.begin(), s.end());
    printf("gap %8llu ns: n %6zu p50 %6llu ns p90 %6llu ns\n", (unsigned long long)gap, s.size(),
           (unsigned long long)s[s.size() / 2], (unsigned long long)s[s.size() * 9 / 10]);
  }
  sh->ping.v.store(~0ull, std::memory_order_release);
  waitpid(p, nullptr, 0);
}
