// Experiment (not built by CMake): ring_gap.cpp's ping-pong through the real
// shm-spin Channel (listen/connect, send/receive, or try_send/try_receive
// with `try` as the argument), 64 bytes, CPUs 0 and 1, back to back and
// with a 1 ms spinning gap before each round trip. Earlier sessions saw
// ~450 ns back to back and ~1.4-1.6 us after the gap. On 2026-12-05 (HEAD
// 9dacef3, three runs interleaved with `ipcbench run --mechanisms shm-spin
// --modes async,sync --patterns latency --rate 1000 --sizes 64`): this
// channel 393-407 ns back to back and 787-832 ns after the gap (2.0x); the
// suite 387-407 ns sync and 911-955 ns open loop (2.3-2.4x). So with no
// harness at all the channel is already 2x slower after an idle
// millisecond, and the open loop adds ~12-15% to what the channel itself
// shows at that spacing. Bare rings behave alike (1.3-2x from run to run;
// in a bare ring, a producer that re-reads the consumer's position on
// every push, unlike shm_ring.hpp's, showed less of it, ~1.3-1.45x, but
// was ~20% slower back to back). Build (after the main build) and run:
//   g++ -O2 -std=c++20 -I. -o /tmp/channel_gap scripts/experiments/channel_gap.cpp
//   build/mechanisms/libipcbench_mechanisms.a build/mechanisms/libipcbench_channels.a
//   build/mechanisms/libipcbench_posix.a -lzmq && /tmp/channel_gap
#include <sched.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/registry.hpp"

using namespace ipcbench;

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

int main(int argc, char** argv) {
  const bool use_try = argc > 1 && std::string(argv[1]) == "try";
  Mechanism* mech = find_mechanism("shm-spin");
  auto endpoint =
      mech->listen({.run_dir = "/tmp", .tag = "gap" + std::to_string(getpid()), .max_message = 64});
  const std::string address = endpoint->address();
  const pid_t child = fork();
  if (child == 0) {  // the echoing peer
    pin(1);
    auto ch = mech->connect(address, {.max_message = 64});
    alignas(64) std::byte buf[64];
    for (;;) {
      std::size_t n = 0;
      if (use_try) {
        std::optional<std::size_t> got;
        while (!(got = ch->try_receive(buf))) _mm_pause();
        n = *got;
      } else {
        n = ch->receive(buf);
      }
      uint64_t v;
      std::memcpy(&v, buf, 8);
      if (v == ~0ull) _exit(0);
      ch->send({buf, n});
    }
  }
  pin(0);
  auto ch = endpoint->accept(std::chrono::milliseconds(5000));
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
      if (use_try) {
        while (!ch->try_send({buf, 64})) _mm_pause();
        while (!ch->try_receive(reply)) _mm_pause();
      } else {
        ch->send({buf, 64});
        ch->receive(reply);
      }
      rtt.push_back(ns() - t0);
    }
    std::sort(rtt.begin(), rtt.end());
    std::printf("%s gap %8llu ns: n %6zu p50 %6llu ns p90 %6llu ns\n", use_try ? "try " : "sync",
                (unsigned long long)gap, rtt.size(), (unsigned long long)rtt[rtt.size() / 2],
                (unsigned long long)rtt[rtt.size() * 9 / 10]);
  }
  const uint64_t stop = ~0ull;
  std::memcpy(buf, &stop, 8);
  ch->send({buf, 64});
  waitpid(child, nullptr, 0);
}
