// The object log: forwards the mechanisms' reports to the harness's observer.
#include "mechanisms/posix/object_log.hpp"

#include <dirent.h>
#include <grp.h>
#include <sys/ipc.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace ipcbench::objects {
namespace {

std::atomic<Observer*> g_observer{nullptr};

constexpr std::array<std::pair<Kind, std::string_view>, 7> kNames{{
    {Kind::kPosixShm, "posix-shm"},
    {Kind::kPosixMq, "posix-mq"},
    {Kind::kSysvMsg, "sysv-msg"},
    {Kind::kSysvShm, "sysv-shm"},
    {Kind::kSysvSem, "sysv-sem"},
    {Kind::kDirectory, "dir"},
    {Kind::kIceoryx, "iceoryx"},
}};

}  // namespace

std::string_view to_string(Kind kind) noexcept {
  for (const auto& [k, name] : kNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

bool from_string(std::string_view text, Kind& kind) noexcept {
  for (const auto& [k, name] : kNames) {
    if (name == text) {
      kind = k;
      return true;
    }
  }
  return false;
}

void set_observer(Observer* observer) noexcept {
  g_observer.store(observer, std::memory_order_release);
}

void creating(const Object& object) {
  if (Observer* o = g_observer.load(std::memory_order_acquire)) o->creating(object);
}

void created(const Object& object) noexcept {
  if (Observer* o = g_observer.load(std::memory_order_acquire)) o->created(object);
}

void removed(const Object& object) noexcept {
  if (Observer* o = g_observer.load(std::memory_order_acquire)) o->removed(object);
}

std::vector<std::string> roudi_names() {
  std::vector<std::string> names = {"/tmp/roudi", "/tmp/roudi.lock", kRoudiUniqueLock,
                                    "/dev/shm/iceoryx_mgmt"};
  group g{};
  group* found = nullptr;
  std::array<char, 4096> buf{};
  if (::getgrgid_r(::getegid(), &g, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      std::strchr(g.gr_name, '/') == nullptr && g.gr_name[0] != '\0' && g.gr_name[0] != '.') {
    names.push_back(std::string("/dev/shm/") + g.gr_name);
  }
  return names;
}

std::string roudi_runtime_prefix(pid_t roudi) {
  return "/tmp/ipcbench-r" + std::to_string(roudi) + "-";
}

pid_t lock_holder(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  std::FILE* f = std::fopen("/proc/locks", "re");
  if (f == nullptr) return 0;
  pid_t holder = 0;
  char line[256];
  while (holder == 0 && std::fgets(line, sizeof line, f) != nullptr) {
    // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiter's line
    // has "->" after the number and holds nothing.
    char kind[16], mode[16], access[16];
    int pid = 0;
    unsigned major = 0, minor = 0;
    unsigned long inode = 0;
    if (std::strstr(line, "->") != nullptr) continue;
    if (std::sscanf(line, "%*d: %15s %15s %15s %d %x:%x:%lu", kind, mode, access, &pid, &major,
                    &minor, &inode) == 7 &&
        inode == st.st_ino && major == ::major(st.st_dev) && minor == ::minor(st.st_dev)) {
      holder = pid;
    }
  }
  std::fclose(f);
  return holder;
}

std::string running_roudi() {
  const pid_t holder = lock_holder(kRoudiUniqueLock);
  if (holder == 0) return "";
  return "a RouDi runs (process " + std::to_string(holder) + " holds " + kRoudiUniqueLock + ")";
}

std::string foreign_file(const std::string& path, bool* exists) {
  struct stat st {};
  const bool there = ::lstat(path.c_str(), &st) == 0;
  if (exists != nullptr) *exists = there;
  if (!there) return "";
  if (st.st_uid != ::geteuid()) return path + " belongs to uid " + std::to_string(st.st_uid);
  if (!S_ISREG(st.st_mode) && !S_ISSOCK(st.st_mode)) {
    return path + " is neither a file nor a socket";
  }
  return "";
}

bool is_iceoryx_name(const std::string& name) {
  for (const std::string& n : roudi_names()) {
    if (n == name) return true;
  }
  constexpr std::string_view kStem = "/tmp/ipcbench-r";
  if (!name.starts_with(kStem) || !name.ends_with("-*")) return false;
  const std::string_view pid(name.data() + kStem.size(), name.size() - kStem.size() - 2);
  return !pid.empty() && pid.size() <= 10 &&
         pid.find_first_not_of("0123456789") == std::string_view::npos;
}

namespace {

// Unlinks `path` when it is this user's file or socket; why not, else empty.
std::string unlink_ours(const std::string& path) {
  bool exists = false;
  if (std::string why = foreign_file(path, &exists); !why.empty() || !exists) return why;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return path + ": " + std::strerror(errno);
  }
  return "";
}

}  // namespace

std::string remove_iceoryx_name(const std::string& name) {
  if (!is_iceoryx_name(name)) return name + " is not a name of iceoryx's";
  if (std::string running = running_roudi(); !running.empty()) return running;
  if (!name.ends_with("*")) return unlink_ours(name);
  const std::string stem =
      name.substr(std::strlen("/tmp/"), name.size() - 1 - std::strlen("/tmp/"));
  std::string left;
  if (DIR* d = ::opendir("/tmp")) {
    while (const dirent* e = ::readdir(d)) {
      if (!std::string_view(e->d_name).starts_with(stem)) continue;
      const std::string why = unlink_ours(std::string("/tmp/") + e->d_name);
      if (!why.empty()) left += (left.empty() ? "" : "; ") + why;
    }
    ::closedir(d);
  }
  return left;
}

key_t make_sysv_key() noexcept {
  std::uint32_t bits = 0;
  if (::getrandom(&bits, sizeof bits, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof bits)) {
    // No entropy yet (early boot): mix the pid and the clock; IPC_EXCL
    // still refuses a key that is taken.
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    bits = static_cast<std::uint32_t>(ts.tv_nsec) ^ (static_cast<std::uint32_t>(::getpid()) << 16) ^
           static_cast<std::uint32_t>(ts.tv_sec);
  }
  // Positive and never IPC_PRIVATE (0).
  bits &= 0x7fffffffu;
  if (bits == 0) bits = 1;
  return static_cast<key_t>(bits);
}

}  // namespace ipcbench::objects
