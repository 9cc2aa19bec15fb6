#include "mechanisms/iceoryx/roudi.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iceoryx_hoofs/internal/relocatable_pointer/base_relative_pointer.hpp>
#include <iceoryx_hoofs/log/logmanager.hpp>
#include <iceoryx_posh/internal/runtime/posh_runtime_impl.hpp>
#include <iceoryx_posh/runtime/posh_runtime.hpp>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/object_log.hpp"
#include "mechanisms/posix/retry.hpp"

namespace ipcbench::mech::iceoryx {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kRoudiPath = "/usr/bin/iox-roudi";
// RouDi prints this once it takes registrations (at log level info).
constexpr std::string_view kReadyLine = "RouDi is ready for clients";
constexpr auto kReadyTimeout = 10s;
constexpr auto kStopGrace = 2s;
// The private /tmp and /dev/shm: RouDi's management segment alone is ~66 MB
// whatever the config, then the mempools (kPools).
constexpr const char* kTmpfsOptions = "mode=1777,size=1g";
// Each mempool's chunks hold a payload of up to 2^k bytes plus this much
// for the request/response header iceoryx puts in the payload (<= 256 B)
// and the channel's own header.
constexpr std::size_t kHeaderRoom = 512;
// Chunks per pool: up to 8 MiB a pool, at least 8 and at most 256 chunks.
constexpr std::size_t kPoolBytes = 8u << 20;
constexpr std::size_t kMinChunks = 8;
constexpr std::size_t kMaxChunks = 256;

// Exit codes of the child before exec: which step of the namespace failed.
constexpr int kExitUnshare = 120;
constexpr int kExitPrivate = 121;
constexpr int kExitTmp = 122;
constexpr int kExitShm = 123;
constexpr int kExitExec = 126;

std::uint64_t start_time_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  // Field 3 is the state; the start time is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return 0;
  }
  std::uint64_t start = 0;
  std::from_chars(field.data(), field.data() + field.size(), start);
  return start;
}

// The chunks of the mempool for payloads of up to `payload` bytes.
std::size_t chunks_of_pool(std::size_t payload) {
  return std::clamp(kPoolBytes / (payload + kHeaderRoom), kMinChunks, kMaxChunks);
}

posix::Fd memfd_with(const char* name, const std::string& text) {
  posix::Fd fd(::memfd_create(name, MFD_CLOEXEC));
  if (!static_cast<bool>(fd)) posix::throw_errno(std::string("memfd_create ") + name);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      posix::throw_errno(std::string("write ") + name);
    }
    done += static_cast<std::size_t>(n);
  }
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  off_t at = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    at += n;
  }
  return out;
}

std::string last_lines(const std::string& log) {
  constexpr std::size_t kTail = 600;
  std::string tail = log.size() > kTail ? log.substr(log.size() - kTail) : log;
  for (char& c : tail) {
    if (c == '\n') c = ' ';
  }
  return tail;
}

// Writes "iceoryx: <what> failed: errno N" to fd and exits with code:
// async-signal-safe, for the child between fork and exec.
[[noreturn]] void child_fail(int fd, const char* what, int code) {
  const int err = errno;
  char msg[128];
  std::size_t n = 0;
  for (const char* p = "ipcbench: "; *p != 0 && n < sizeof msg; ++p) msg[n++] = *p;
  for (const char* p = what; *p != 0 && n < sizeof msg - 16; ++p) msg[n++] = *p;
  for (const char* p = " failed: errno "; *p != 0 && n < sizeof msg - 8; ++p) msg[n++] = *p;
  char digits[8];
  int d = 0;
  for (int v = err; d == 0 || v > 0; v /= 10) digits[d++] = static_cast<char>('0' + v % 10);
  while (d > 0 && n < sizeof msg - 1) msg[n++] = digits[--d];
  msg[n++] = '\n';
  (void)!::write(fd, msg, n);
  ::_exit(code);
}

// In a child between fork and exec (async-signal-safe): a private mount
// namespace with fresh tmpfs on /tmp and /dev/shm. 0, or the exit code of
// the step that failed (errno says why).
int make_private_ground(const char* tmpfs_options) {
  if (::unshare(CLONE_NEWNS) != 0) return kExitUnshare;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return kExitPrivate;
  if (::mount("ipcbench-iceoryx", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_options) != 0) {
    return kExitTmp;
  }
  if (::mount("ipcbench-iceoryx", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_options) != 0) {
    return kExitShm;
  }
  return 0;
}

// What make_private_ground's exit code says failed.
const char* private_ground_step(int code) {
  switch (code) {
    case kExitUnshare:
      return "unshare(CLONE_NEWNS)";
    case kExitPrivate:
      return "making / private";
    case kExitTmp:
      return "mounting a tmpfs on /tmp";
    default:
      return "mounting a tmpfs on /dev/shm";
  }
}

// Whether this process may give RouDi a private mount namespace (unshare
// and mount: root), probed in a child so this process is left as is; once
// per process (a forked child probes afresh: it may have dropped rights).
bool private_namespace_possible() {
  static std::mutex m;
  static pid_t probed_by = 0;
  static bool possible = false;
  const std::lock_guard lock(m);
  if (probed_by == ::getpid()) return possible;
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) ::_exit(make_private_ground("size=1m"));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  probed_by = ::getpid();
  possible = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return possible;
}

// Without a private namespace, RouDi runs in the machine's, under its fixed
// names: why one of ours cannot start there now, or empty.
std::string machine_refusal() {
  if (const pid_t holder = objects::lock_holder(objects::kRoudiUniqueLock); holder != 0) {
    std::string comm;
    std::ifstream in("/proc/" + std::to_string(holder) + "/comm");
    std::getline(in, comm);
    return "another RouDi runs on this machine (process " + std::to_string(holder) +
           (comm.empty() ? "" : " " + comm) + " holds " + objects::kRoudiUniqueLock +
           "), and iceoryx 2.0.3's names are fixed: a run starts its own RouDi beside another "
           "only in a private mount namespace, which needs root (CAP_SYS_ADMIN); ipcbench never "
           "touches a RouDi it did not start";
  }
  for (const std::string& name : objects::roudi_names()) {
    if (std::string why = objects::foreign_file(name); !why.empty()) {
      return why +
             ", so not a RouDi of this user's: without a private mount namespace (root) a "
             "run's RouDi needs that name; remove it";
    }
  }
  return {};
}

objects::Object iceoryx_object(std::string name) {
  return objects::named(objects::Kind::kIceoryx, std::move(name));
}

// The RouDi this process started, stopped when the process exits. A child
// forked from the owner inherits a copy and leaves it alone.
class Daemon {
 public:
  ~Daemon() { stop(); }

  RoudiRef ensure() {
    if (owner_ == ::getpid() && retired_) {
      throw std::runtime_error(
          "iceoryx: this process's RouDi was retired (a peer died without closing) and a channel "
          "on it is still open: close it first");
    }
    if (owner_ == ::getpid() && ref_.pid > 0) return ref_;
    // A forked child's copy names its parent's RouDi: forget it, never stop it.
    owner_ = ::getpid();
    pid_ = 0;
    ref_ = {};
    namespace_.reset();
    retired_ = false;
    machine_ = false;
    runtimes_.clear();
    start();
    return ref_;
  }

  // Kills RouDi at once and reaps it (no SIGTERM: a RouDi stuck on a dead
  // process's lock would not finish its shutdown), when it is this
  // process's; its mount namespace stays open (namespace_fd()), and its
  // tmpfs with it, for the runtime's goodbye, until forget().
  void retire(const RoudiRef& r) noexcept {
    if (owner_ != ::getpid() || pid_ <= 0 || r.pid != ref_.pid || r.start != ref_.start) return;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/ns/mnt", static_cast<int>(pid_));
    namespace_ = posix::Fd(::open(path, O_RDONLY | O_CLOEXEC));
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = 0;
    retired_ = true;
  }
  bool retired(const RoudiRef& r) const {
    return retired_ && owner_ == ::getpid() && r.pid == ref_.pid && r.start == ref_.start;
  }
  int namespace_fd() const { return namespace_.get(); }
  // After the runtime's goodbye: the next ensure() starts a new RouDi.
  void forget() noexcept {
    namespace_.reset();
    pid_ = 0;
    ref_ = {};
    retired_ = false;
    release_names();
  }

 private:
  void start() {
    // Without root, in the machine's namespace: RouDi's names are recorded
    // before it makes them, its runtimes' once it is known (none registers
    // before it is ready).
    const bool machine = !private_namespace_possible();
    if (machine) {
      if (std::string why = machine_refusal(); !why.empty()) {
        throw std::runtime_error("iceoryx: " + why);
      }
      machine_ = true;
      try {
        for (const std::string& name : objects::roudi_names()) {
          objects::creating(iceoryx_object(name));
        }
      } catch (...) {
        release_names();
        throw;
      }
    }
    posix::Fd config = memfd_with("ipcbench-roudi.toml", roudi_config());
    posix::Fd log = memfd_with("ipcbench-roudi.log", "");
    posix::Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null) posix::throw_errno("open /dev/null");
    const int config_fd = config.get();
    const int log_fd = log.get();
    const int null_fd = null.get();
    const pid_t parent = ::getpid();
    sigset_t none;
    sigemptyset(&none);
    const pid_t pid = ::fork();
    if (pid < 0) posix::throw_errno("fork for iox-roudi");
    if (pid == 0) {
      // Only async-signal-safe calls from here to exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(kExitExec);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (!machine) {
        if (const int code = make_private_ground(kTmpfsOptions); code != 0) {
          child_fail(log_fd, private_ground_step(code), code);
        }
      }
      // The log first: the config may already be descriptor 3, which dup2
      // then leaves close-on-exec.
      if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0 ||
          ::dup2(config_fd, 3) < 0 || ::fcntl(3, F_SETFD, 0) < 0) {
        child_fail(log_fd, "dup2", kExitExec);
      }
      // Nothing else of the owner's lives on in the daemon.
      (void)::close_range(4, ~0U, 0);
      ::execl(kRoudiPath, "iox-roudi", "-c", "/proc/self/fd/3", "-l", "info",
              static_cast<char*>(nullptr));
      child_fail(log_fd, "exec /usr/bin/iox-roudi", kExitExec);
    }
    pid_ = pid;
    if (machine_) {
      try {
        runtimes_ = objects::roudi_runtime_prefix(pid) + "*";
        objects::creating(iceoryx_object(runtimes_));
      } catch (...) {
        stop();
        throw;
      }
    }
    const auto deadline = Clock::now() + kReadyTimeout;
    for (;;) {
      const std::string text = read_all(log_fd);
      if (text.find(kReadyLine) != std::string::npos) break;
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid_ = 0;
        release_names();
        throw std::runtime_error(
            "iox-roudi exited before it was ready (" +
            std::string(WIFEXITED(status) ? "exit " : "signal ") +
            std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)) +
            "): " + last_lines(text));
      }
      if (Clock::now() > deadline) {
        stop();
        throw std::runtime_error("iox-roudi was not ready within 10 s: " + last_lines(text));
      }
      std::this_thread::sleep_for(1ms);
    }
    ref_ = {.pid = pid, .start = start_time_of(pid)};
    if (ref_.start == 0) {
      stop();
      throw std::runtime_error("iox-roudi vanished right after it was ready");
    }
  }

  void stop() noexcept {
    if (pid_ <= 0 || owner_ != ::getpid()) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + kStopGrace;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
    pid_ = 0;
    ref_ = {};
    release_names();
  }

  // Machine namespace: once our RouDi is dead, what it (or a runtime of it)
  // left under its names goes (a RouDi stopped in time removes its own;
  // one killed does not), unless another RouDi holds them now; then the
  // record forgets them.
  void release_names() noexcept {
    if (!machine_) return;
    try {
      for (const std::string& name : objects::roudi_names()) {
        (void)objects::remove_iceoryx_name(name);
        objects::removed(iceoryx_object(name));
      }
      if (!runtimes_.empty()) {
        (void)objects::remove_iceoryx_name(runtimes_);
        objects::removed(iceoryx_object(runtimes_));
      }
    } catch (const std::exception&) {
      // Left for `ipcbench clean`: the record still names them.
    }
    runtimes_.clear();
    machine_ = false;
  }

  pid_t owner_ = 0;
  pid_t pid_ = 0;
  RoudiRef ref_;
  posix::Fd namespace_;   // a retired RouDi's, for the runtime's goodbye
  bool retired_ = false;  // retire_roudi(): killed before the runtime's goodbye
  bool machine_ = false;  // RouDi runs in the machine's namespace (not root)
  std::string runtimes_;  // its runtimes' names, as recorded ("<prefix>*")
};

Daemon* g_daemon = nullptr;  // once daemon() made it: exit paths must not make one

Daemon& daemon() {
  static Daemon d;
  g_daemon = &d;
  return d;
}

// The runtime iceoryx's PoshRuntime::getInstance() returns (through the
// runtime factory), made and deleted by RuntimeHold.
class OwnRuntime : public ::iox::runtime::PoshRuntimeImpl {
 public:
  explicit OwnRuntime(const ::iox::RuntimeName_t* name)
      : PoshRuntimeImpl(::iox::cxx::make_optional<const ::iox::RuntimeName_t*>(name)) {}
  // By value: the signature iceoryx's factory_t demands.
  static ::iox::runtime::PoshRuntime& factory(
      ::iox::cxx::optional<
          const ::iox::RuntimeName_t*> /*name*/) {  // NOLINT(performance-unnecessary-value-param)
    return *current;
  }
  static void install() { setRuntimeFactory(&factory); }
  static inline OwnRuntime* current = nullptr;
};

pid_t g_runtime_pid = 0;  // the process that made OwnRuntime::current
int g_holds = 0;
unsigned g_runtimes = 0;  // made by this process, for unique names
RoudiRef g_runtime_roudi;

// Unregisters the runtime, in RouDi's namespace (its destructor talks to
// RouDi through /tmp/roudi); if RouDi is gone, there is no one to tell. A
// retired RouDi (retire_roudi) is dead already: the goodbye, which waits for
// an answer without a timeout, then fails at once (quietly: iceoryx would
// log the failure), in the namespace the daemon kept open, and the runtime
// still unmaps its segments and closes its sockets.
void drop_runtime() noexcept {
  const bool retired = g_daemon != nullptr && g_daemon->retired(g_runtime_roudi);
  const std::ios_base::iostate cerr_state = std::cerr.rdstate();
  if (retired) {
    // iceoryx logs the goodbye's failure (its logger), and its failed
    // sendto on std::cerr whatever the log level.
    ::iox::log::LogManager::GetLogManager().SetDefaultLogLevel(
        ::iox::log::LogLevel::kOff, ::iox::log::LogLevelOutput::kHideLogLevel);
    std::cerr.setstate(std::ios_base::badbit);
  }
  try {
    std::optional<MountNamespaceScope> in;
    if (retired) {
      in.emplace(g_daemon->namespace_fd());
    } else {
      in.emplace(g_runtime_roudi);
    }
    delete OwnRuntime::current;
  } catch (const std::exception&) {
  }
  OwnRuntime::current = nullptr;
  if (retired) {
    std::cerr.clear(cerr_state);
    g_daemon->forget();
    ::iox::log::LogManager::GetLogManager().SetDefaultLogLevel(
        ::iox::log::LogLevel::kWarn, ::iox::log::LogLevelOutput::kHideLogLevel);
  }
}

// At exit, a runtime still held (a run stopped mid-case) is unregistered too;
// the RouDi this process started is retired first, since whatever used it
// may have stopped anywhere (and it goes with the process anyway).
void drop_runtime_at_exit() {
  if (g_runtime_pid != ::getpid() || OwnRuntime::current == nullptr) return;
  if (g_daemon != nullptr) g_daemon->retire(g_runtime_roudi);
  drop_runtime();
}

}  // namespace

std::string RoudiRef::text() const { return std::to_string(pid) + ":" + std::to_string(start); }

RoudiRef RoudiRef::parse(std::string_view text) {
  const auto colon = text.find(':');
  RoudiRef r;
  const auto bad = [&] {
    return std::invalid_argument("iceoryx: bad RouDi reference '" + std::string(text) +
                                 "' (want <pid>:<start>)");
  };
  if (colon == std::string_view::npos) throw bad();
  const auto p = std::from_chars(text.data(), text.data() + colon, r.pid);
  const auto s = std::from_chars(text.data() + colon + 1, text.data() + text.size(), r.start);
  if (p.ec != std::errc{} || p.ptr != text.data() + colon || s.ec != std::errc{} ||
      s.ptr != text.data() + text.size() || r.pid <= 0) {
    throw bad();
  }
  return r;
}

std::string unavailable_reason() {
  if (::access(kRoudiPath, X_OK) != 0) {
    return "iox-roudi is not installed (/usr/bin/iox-roudi; Debian package iceoryx)";
  }
  if (private_namespace_possible()) return {};
  return machine_refusal();
}

RoudiRef ensure_roudi() { return daemon().ensure(); }

void retire_roudi(const RoudiRef& roudi) noexcept {
  if (g_daemon != nullptr) g_daemon->retire(roudi);
}

bool roudi_retired(const RoudiRef& roudi) noexcept {
  return g_daemon != nullptr && g_daemon->retired(roudi);
}

// iceoryx takes the smallest pool that fits, which has at least as many
// chunks as the power-of-two pool at or above `payload` (fewer chunks as
// they grow); beyond the largest, the largest.
std::size_t pool_chunks(std::size_t payload) {
  return chunks_of_pool(std::min(std::bit_ceil(std::max<std::size_t>(payload, 64)), kMaxMessage));
}

// RouDi's config: one mempool per power of two from 64 B to kMaxMessage.
std::string roudi_config() {
  std::string toml = "[general]\nversion = 1\n\n[[segment]]\n";
  for (std::size_t payload = 64; payload <= kMaxMessage; payload *= 2) {
    const std::size_t size = payload + kHeaderRoom;
    const std::size_t count = chunks_of_pool(payload);
    toml += "\n[[segment.mempool]]\nsize = " + std::to_string(size) +
            "\ncount = " + std::to_string(count) + "\n";
  }
  return toml;
}

RuntimeHold::RuntimeHold(const RoudiRef& roudi) {
  if (g_runtime_pid != ::getpid()) {  // a new process, or a forked child
    OwnRuntime::current = nullptr;    // a parent's copy is left alone
    g_holds = 0;
  }
  if (g_holds > 0) {
    if (g_runtime_roudi.pid != roudi.pid || g_runtime_roudi.start != roudi.start) {
      throw std::runtime_error("iceoryx: this process is registered with RouDi " +
                               g_runtime_roudi.text() + ", not " + roudi.text() +
                               " (one runtime per process)");
    }
    ++g_holds;
    return;
  }
  if (start_time_of(roudi.pid) != roudi.start) {
    throw std::runtime_error("iceoryx: RouDi " + roudi.text() + " is gone");
  }
  // The Debian build logs at debug level: registrations and segments.
  ::iox::log::LogManager::GetLogManager().SetDefaultLogLevel(
      ::iox::log::LogLevel::kWarn, ::iox::log::LogLevelOutput::kHideLogLevel);
  // Named after RouDi too: in the machine's namespace the run's record
  // names every runtime of its RouDi by that prefix (roudi_runtime_prefix).
  const std::string text = "ipcbench-r" + std::to_string(roudi.pid) + "-" +
                           std::to_string(::getpid()) + "-" + std::to_string(++g_runtimes);
  const ::iox::RuntimeName_t name(::iox::cxx::TruncateToCapacity, text.c_str());
  MountNamespaceScope in(roudi);
  // The segments' ids of an earlier runtime (ours, or a parent's copy)
  // would clash with the new mappings'.
  ::iox::rp::BaseRelativePointer::unregisterAll();
  OwnRuntime::current = new OwnRuntime(&name);
  OwnRuntime::install();
  if (g_runtime_pid != ::getpid()) std::atexit(drop_runtime_at_exit);  // once per process
  g_runtime_pid = ::getpid();
  g_runtime_roudi = roudi;
  g_holds = 1;
}

RuntimeHold::~RuntimeHold() {
  if (g_runtime_pid != ::getpid() || g_holds <= 0) return;
  if (--g_holds == 0) drop_runtime();
}

MountNamespaceScope::MountNamespaceScope(const RoudiRef& roudi) {
  const std::string path = "/proc/" + std::to_string(roudi.pid) + "/ns/mnt";
  posix::Fd target(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!static_cast<bool>(target)) posix::throw_errno("iceoryx: open " + path);
  if (start_time_of(roudi.pid) != roudi.start) {
    throw std::runtime_error("iceoryx: RouDi " + roudi.text() + " is gone");
  }
  enter(target.get(), path);
}

MountNamespaceScope::MountNamespaceScope(int namespace_fd) {
  enter(namespace_fd, "RouDi's namespace");
}

namespace {
// Whether the namespace `target` names is the calling thread's already.
bool in_namespace(int target) {
  struct stat there {};
  struct stat here {};
  return ::fstat(target, &there) == 0 && ::stat("/proc/thread-self/ns/mnt", &here) == 0 &&
         there.st_ino == here.st_ino && there.st_dev == here.st_dev;
}
}  // namespace

void MountNamespaceScope::enter(int target, const std::string& what) {
  // RouDi in the machine's namespace (no root): nothing to enter, and
  // setns would need CAP_SYS_ADMIN even into one's own.
  if (in_namespace(target)) return;
  // setns needs a thread whose file-system attributes are its own (threads
  // share them with their creator, e.g. iceoryx's keep-alive thread).
  if (::unshare(CLONE_FS) != 0) posix::throw_errno("iceoryx: unshare(CLONE_FS)");
  posix::Fd home(::open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (!static_cast<bool>(home)) posix::throw_errno("iceoryx: open /proc/thread-self/ns/mnt");
  posix::Fd cwd(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!static_cast<bool>(cwd)) posix::throw_errno("iceoryx: open the working directory");
  if (::setns(target, CLONE_NEWNS) != 0) {
    posix::throw_errno("iceoryx: entering RouDi's mount namespace (" + what + ")");
  }
  home_ = home.release();
  cwd_ = cwd.release();
}

MountNamespaceScope::~MountNamespaceScope() {
  if (home_ < 0) return;  // never left
  // Going back cannot fail where coming in worked, short of the kernel
  // refusing its own namespace; staying would move every later path of the
  // process into RouDi's /tmp, so that is fatal.
  if (::unshare(CLONE_FS) != 0 || ::setns(home_, CLONE_NEWNS) != 0 || ::fchdir(cwd_) != 0) {
    std::fprintf(stderr, "ipcbench: cannot leave RouDi's mount namespace: %s\n",
                 std::strerror(errno));
    std::abort();
  }
  ::close(home_);
  ::close(cwd_);
}

}  // namespace ipcbench::mech::iceoryx
