// The object log: mechanisms report every kernel object they create outside
// the run directory, so the harness can keep an owner record that survives a
// SIGKILL (bench/run/owners.cpp) and a later run can remove what a dead run left.
//
// The mechanisms library knows nothing of records: the harness installs an
// Observer, and with none installed (tests, the peer process, `list`) every
// call below is a no-op. Calls happen only where objects are created or
// removed, never on a hot path.
//
// Order, so that a SIGKILL at any instant leaves no object the record does
// not name: creating() before the creating system call (names are known in
// advance; System V objects are created with a fresh random key for the same
// reason, see make_sysv_key()), created() once it exists (adds the System V
// id), removed() after it is gone or after its creation failed.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace ipcbench::objects {

// Every name ipcbench gives an object (POSIX shm and mq names, Boost's
// segments and queues, the run directory) starts "ipcbench.<pid>.": the
// owner's pid lets a later `clean` tell whose it is. POSIX names add a '/'.
inline constexpr std::string_view kNamePrefix = "ipcbench.";

// "ipcbench.<pid>."
inline std::string name_stem(pid_t pid) {
  return std::string(kNamePrefix) + std::to_string(pid) + ".";
}

// "ipcbench.<this process's pid>.<tag>", then ".<suffix>" unless empty.
inline std::string object_name(std::string_view tag, std::string_view suffix = {}) {
  std::string name = name_stem(::getpid());
  name.append(tag);
  if (!suffix.empty()) name.append(".").append(suffix);
  return name;
}

// "/ipcbench.<pid>.<tag>[.<suffix>]": a POSIX shm or mq name. (Built with
// append: GCC 12 warns falsely on "/" + std::string.)
inline std::string posix_name(std::string_view tag, std::string_view suffix = {}) {
  std::string name("/");
  name.append(object_name(tag, suffix));
  return name;
}

enum class Kind {
  kPosixShm,   // shm_open name, "/ipcbench.<pid>...." (Boost's segments too)
  kPosixMq,    // mq_open name, "/ipcbench.<pid>...."
  kSysvMsg,    // msgget queue
  kSysvShm,    // shmget segment
  kSysvSem,    // semget set
  kDirectory,  // a private directory removed as a whole (the run directory)
  kIceoryx,    // a name of iceoryx's RouDi in the machine's /tmp or /dev/shm (below)
};

// "posix-shm", "posix-mq", "sysv-msg", "sysv-shm", "sysv-sem", "dir", "iceoryx": the
// spelling of owner records and of `ipcbench clean`.
std::string_view to_string(Kind kind) noexcept;
// The inverse; false for an unknown spelling.
bool from_string(std::string_view text, Kind& kind) noexcept;

// One object. POSIX objects and directories are named; System V objects are
// identified by the key they were created with (and, once known, their id
// and creation time, to tell a reused id from ours).
struct Object {
  Kind kind = Kind::kPosixShm;
  std::string name;       // POSIX name with its leading '/', or a directory's path
  key_t key = 0;          // System V: the creating key (never IPC_PRIVATE)
  int id = -1;            // System V: the id, -1 until created()
  std::time_t ctime = 0;  // System V: msg_ctime / shm_ctime / sem_ctime, 0 until created()

  bool is_sysv() const noexcept {
    return kind == Kind::kSysvMsg || kind == Kind::kSysvShm || kind == Kind::kSysvSem;
  }
};

// What the harness implements. creating() may throw (the object is then not
// created and the caller's setup fails with that error: an object that
// cannot be recorded is not made); created() and removed() never throw.
// Called from whichever thread creates the object.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void creating(const Object& object) = 0;
  virtual void created(const Object& object) noexcept = 0;
  virtual void removed(const Object& object) noexcept = 0;
};

// Installs `observer` (nullptr: none); the caller keeps it alive until it
// installs nullptr again. Not synchronised with calls in flight: install
// before any mechanism runs, remove after the last is gone.
void set_observer(Observer* observer) noexcept;

// The mechanisms' side: forward to the observer, if any.
void creating(const Object& object);
void created(const Object& object) noexcept;
void removed(const Object& object) noexcept;

// Shorthands for named POSIX objects.
inline Object named(Kind kind, std::string name) {
  Object object;
  object.kind = kind;
  object.name = std::move(name);
  return object;
}
inline Object posix_shm(std::string name) { return named(Kind::kPosixShm, std::move(name)); }
inline Object posix_mq(std::string name) { return named(Kind::kPosixMq, std::move(name)); }

// iceoryx's RouDi where a run starts it in the machine's mount namespace
// (no private one without root): the names RouDi gives itself, fixed in
// iceoryx 2.0.3 (its socket and the socket's lock, its unique lock, its
// management segment, its payload segment named after its group: this
// process's group); and the prefix of the names of the runtimes registered
// with the RouDi of pid `roudi` (a socket and a lock each, in /tmp). A run
// records them (Kind::kIceoryx; the runtimes as the prefix and "*"), so
// `ipcbench clean` removes them after a kill -9, while no RouDi runs.
inline constexpr const char* kRoudiUniqueLock = "/tmp/iox-unique-roudi.lock";
std::vector<std::string> roudi_names();
std::string roudi_runtime_prefix(pid_t roudi);  // "/tmp/ipcbench-r<pid>-"
// The process holding a lock on the file at `path` (per /proc/locks, by
// device and inode, so nothing is taken to find out); 0 when none does or
// there is no such file.
pid_t lock_holder(const std::string& path);
// "a RouDi runs (process N holds /tmp/iox-unique-roudi.lock)" while one
// does, else empty: its names are then that RouDi's.
std::string running_roudi();
// Why the file at `path` cannot be one that a RouDi of this user's made
// (another user's; or neither a file nor a socket: a symlink, directory,
// device), else empty; `exists` says whether there is a file at all.
std::string foreign_file(const std::string& path, bool* exists = nullptr);
// Whether `name` is one of those: a roudi_names() entry, or a runtime
// prefix and "*".
bool is_iceoryx_name(const std::string& name);
// Removes what such a name names, where it is this user's file or socket
// (never a symlink, directory or device), unless a RouDi runs now (someone
// holds kRoudiUniqueLock: the names are then that RouDi's). Returns why
// something was left, empty when nothing of it is left.
std::string remove_iceoryx_name(const std::string& name);

// A fresh System V key: random, positive, never IPC_PRIVATE. Create with
// IPC_CREAT | IPC_EXCL and take another key on EEXIST (someone else's).
key_t make_sysv_key() noexcept;

}  // namespace ipcbench::objects
