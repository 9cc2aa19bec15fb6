// Facts about this host and CPU placement.
#pragma once

#include <string>
#include <vector>

#include "bench/core/protocol.hpp"

namespace ipcbench {

struct HostInfo {
  std::string hostname;
  std::string cpu_model;
  int cpus_online = 0;
  std::vector<int> cpus_allowed;  // CPUs this process may run on
  std::string kernel;             // uname -sr
  std::string hypervisor;         // e.g. "KVM"; empty on bare metal
  std::string governor;           // cpufreq governor of CPU 0; empty if unreadable
};

HostInfo read_host_info();

// CPUs this process may run on (sched_getaffinity), ascending.
std::vector<int> allowed_cpus();

// Pins the calling thread to `cpu`; throws std::system_error on failure.
void pin_current_thread(int cpu);

// Lets the calling thread run on any of `cpus` (unpinned placement).
void set_thread_affinity(const std::vector<int>& cpus);

// CPU time (user + system, ns) and context switches (voluntary +
// involuntary) of this whole process so far: runner and peer report the same
// figure, since some mechanisms (ZeroMQ) work in library threads.
StatsPayload process_usage() noexcept;

// The CPU the calling thread runs on now (sched_getcpu), -1 if unknown.
int current_cpu() noexcept;

}  // namespace ipcbench
