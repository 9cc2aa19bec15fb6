#include "bench/core/sysinfo.hpp"

#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <system_error>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace ipcbench {
namespace {

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

std::string hypervisor() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid(1, a, b, c, d);
  if (!(c & (1u << 31))) return {};  // hypervisor-present bit
  __cpuid(0x40000000, a, b, c, d);
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &c, 4);
  std::memcpy(vendor + 8, &d, 4);
  const std::string v(vendor);
  if (v.rfind("KVMKVMKVM", 0) == 0) return "KVM";
  if (v == "Microsoft Hv") return "Hyper-V";
  if (v == "VMwareVMware") return "VMware";
  if (v == "XenVMMXenVMM") return "Xen";
  if (v == "TCGTCGTCGTCG") return "QEMU (TCG)";
  return v.empty() ? "unknown" : v;
#else
  const std::string t = read_first_line("/sys/hypervisor/type");
  return t;
#endif
}

}  // namespace

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int i = 0; i < CPU_SETSIZE; ++i) {
    if (CPU_ISSET(i, &set)) cpus.push_back(i);
  }
  return cpus;
}

void pin_current_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot pin to CPU " + std::to_string(cpu));
  }
}

void set_thread_affinity(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    throw std::system_error(errno, std::generic_category(), "cannot set the CPU affinity");
  }
}

int current_cpu() noexcept { return sched_getcpu(); }

StatsPayload process_usage() noexcept {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const auto ns = [](const timeval& tv) {
    return static_cast<std::uint64_t>(tv.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(tv.tv_usec) * 1000u;
  };
  return {ns(ru.ru_utime) + ns(ru.ru_stime),
          static_cast<std::uint64_t>(ru.ru_nvcsw + ru.ru_nivcsw)};
}

HostInfo read_host_info() {
  HostInfo h;
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) == 0) h.hostname = name;
  h.cpu_model = cpu_model();
  h.cpus_online = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  h.cpus_allowed = allowed_cpus();
  utsname u{};
  if (uname(&u) == 0) h.kernel = std::string(u.sysname) + " " + u.release;
  h.hypervisor = hypervisor();
  h.governor = read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
  return h;
}

}  // namespace ipcbench
