// What the iceoryx mechanism stands on (issue 19): a RouDi of this run's
// own, kept where no other RouDi can meet it, and one iceoryx runtime per
// process registered with it.
//
// RouDi's names are fixed in iceoryx 2.0.3 (/tmp/roudi, /tmp/roudi.lock,
// /tmp/iox-unique-roudi.lock, /dev/shm/iceoryx_mgmt, a payload segment named
// after its group), so two cannot coexist on a machine. The listening side
// therefore starts RouDi in a private mount namespace with fresh tmpfs on
// /tmp and /dev/shm (root, CAP_SYS_ADMIN): it can meet no other RouDi, and
// whatever it creates vanishes with the namespace when RouDi and the
// processes in it are gone, a kill -9 included (RouDi has a parent-death
// signal). Only the thread that makes iceoryx calls that name a path
// (registering the runtime, creating ports) enters that namespace, for the
// call (MountNamespaceScope); the rest of the process never sees it, and the
// data path (loan, send, take) is shared memory, which needs no path. The
// peer, in another process, finds the namespace through RouDi's pid
// (/proc/<pid>/ns/mnt), checked against its start time.
//
// Without root (no private namespace), RouDi runs in the machine's
// namespace under its fixed names, which the run records (owner record,
// objects::roudi_names(), and its runtimes' "/tmp/ipcbench-r<pid>-*") so
// that `ipcbench clean` removes them after a kill -9; the run removes them
// itself when a RouDi of its own was killed. When another RouDi holds
// /tmp/iox-unique-roudi.lock, or another user's names are in the way, the
// mechanism is unavailable, naming it: a RouDi the run did not start is
// never touched. Entering a namespace one is in is then a no-op.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ipcbench::mech::iceoryx {

// Which RouDi: its pid and its start time (clock ticks after boot, field 22
// of /proc/<pid>/stat), so a reused pid is never taken for it.
struct RoudiRef {
  pid_t pid = 0;
  std::uint64_t start = 0;
  std::string text() const;                      // "<pid>:<start>"
  static RoudiRef parse(std::string_view text);  // throws std::invalid_argument
};

// Why iceoryx cannot run here, or empty: iox-roudi missing; or, without a
// private mount namespace (not root / CAP_SYS_ADMIN, or a seccomp policy;
// probed once per process, in a child), another RouDi running (named) or
// another user's RouDi names in the machine's /tmp or /dev/shm.
std::string unavailable_reason();

// The largest message RouDi's mempools hold (one pool per power of two from
// 64 B): its config cannot grow later, since the runtime registered with it
// lives as long as the process.
inline constexpr std::size_t kMaxMessage = 4u << 20;

// The TOML ensure_roudi() gives RouDi (`ipcbench iceoryx-config` prints it).
std::string roudi_config();

// How many chunks RouDi's config gives the pool a chunk payload of `payload`
// bytes (a channel's frame header included) is loaned from, at least: a
// channel keeps what it has in flight within it.
std::size_t pool_chunks(std::size_t payload);

// This process's RouDi, started on first use, pinned like the calling
// thread, stopped when the process exits (SIGTERM, then SIGKILL after 2 s;
// at once if a runtime is still held then) and killed with it (a
// parent-death signal, which fires when the calling *thread* ends: call it
// from the main thread); after retire_roudi(), a new one once the last hold
// is gone. Throws std::runtime_error with RouDi's last log lines if it does
// not become ready within 10 s, while a retired RouDi is still held, or
// when unavailable_reason() would say why not (in the machine's namespace:
// another RouDi came meanwhile), std::system_error if it cannot be started.
RoudiRef ensure_roudi();

// Kills `roudi` at once, when it is the RouDi this process started (a no-op
// otherwise): a process registered with it died without closing. It may
// have died holding one of iceoryx's inter-process locks, which are not
// robust in 2.0.3 (a server's response distributor, taken on every send);
// RouDi, cleaning up after it, then waits on that lock for good, perhaps
// holding a lock of ours meanwhile, and answers no request again, the
// runtime's goodbye included, which has no timeout. So the caller abandons
// its ports (their teardown takes locks RouDi may hold), the runtime's
// goodbye then fails at once when its last hold goes, and the next
// ensure_roudi() starts a new RouDi.
void retire_roudi(const RoudiRef& roudi) noexcept;
// Whether retire_roudi() killed `roudi` (its ports are to be abandoned).
bool roudi_retired(const RoudiRef& roudi) noexcept;

// A hold on this process's iceoryx runtime: the first hold registers one
// with `roudi` (as "ipcbench-<pid>-<n>"), the last one to go unregisters it,
// so no descriptor, mapping or thread of iceoryx outlives the channels that
// used it (iceoryx's own runtime lives as long as the process). Every port
// and WaitSet must be destroyed (or abandoned, on a retired RouDi) before
// the hold it was made under. A child
// forked (without exec) from a process holding one starts afresh: the copy
// it inherited belongs to its parent (its name, its sockets) and is left
// alone, so such a child must end with _exit, as the conformance suites'
// peers do. Throws std::runtime_error if `roudi` is gone, or if the
// process's runtime is registered with another RouDi.
class RuntimeHold {
 public:
  explicit RuntimeHold(const RoudiRef& roudi);
  ~RuntimeHold();
  RuntimeHold(const RuntimeHold&) = delete;
  RuntimeHold& operator=(const RuntimeHold&) = delete;
};

// For the duration of a scope, the calling thread is in `roudi`'s mount
// namespace (its /tmp and /dev/shm), then back where it was, with its
// working directory; nothing at all when it is there already (RouDi in the
// machine's namespace). Throws std::system_error if it cannot enter.
class MountNamespaceScope {
 public:
  explicit MountNamespaceScope(const RoudiRef& roudi);
  // The namespace an open /proc/<pid>/ns/mnt names (it outlives RouDi).
  explicit MountNamespaceScope(int namespace_fd);
  ~MountNamespaceScope();
  MountNamespaceScope(const MountNamespaceScope&) = delete;
  MountNamespaceScope& operator=(const MountNamespaceScope&) = delete;

 private:
  void enter(int target, const std::string& what);
  int home_ = -1;  // the namespace the thread came from
  int cwd_ = -1;
};

}  // namespace ipcbench::mech::iceoryx
