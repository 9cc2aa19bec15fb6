// Test helper: a boost-mq peer that dies holding its queue's mutex, the
// wedge mechanisms/queues/boost_mq.cpp must survive (Boost's mutex is not robust).
// Used by fake_peer (fault "die-holding-lock") and boost_mq_lock_test.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "mechanisms/channels/boost_mq_mutex.hpp"

namespace ipcbench {

// Finds our own mapping of the (already unlinked) boost-mq queue `name` in
// /proc/self/maps, locks the queue's mutex there and dies holding it.
[[noreturn]] inline void die_holding_queue_lock(const std::string& name) {
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr) throw std::runtime_error("cannot read /proc/self/maps");
  char line[4096];
  void* base = nullptr;
  while (base == nullptr && std::fgets(line, sizeof line, maps) != nullptr) {
    // "start-end perms offset dev inode /dev/shm/NAME (deleted)", offset 0
    unsigned long start = 0;
    unsigned long offset = 1;
    if (std::strstr(line, ("/dev/shm/" + name).c_str()) != nullptr &&
        std::sscanf(line, "%lx-%*x %*s %lx", &start, &offset) == 2 && offset == 0) {
      base = reinterpret_cast<void*>(start);
    }
  }
  std::fclose(maps);
  if (base == nullptr) throw std::runtime_error("no mapping of /dev/shm/" + name);
  // The runner checks this layout against its queues (queue_mutex).
  auto* mutex = reinterpret_cast<pthread_mutex_t*>(&mech::boost_mq::queue_header_at(base)->m_mutex);
  if (::pthread_mutex_lock(mutex) != 0) throw std::runtime_error("cannot lock the queue");
  ::raise(SIGKILL);
  std::abort();
}

}  // namespace ipcbench
