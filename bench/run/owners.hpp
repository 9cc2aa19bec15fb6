// Owner records: what a run leaves behind when it is killed with SIGKILL.
//
// Each run keeps a record of its pid, its process start time (so a reused
// pid is not mistaken for a live owner) and every IPC object it created,
// SysV ids included (they have no names). The next run, and `ipcbench
// clean`, remove the objects of owners that are dead: never another
// program's objects, never a live run's.
//
// Where: $IPCBENCH_OWNER_DIR if set (tests), else /tmp/ipcbench-owners.<uid>
// (mode 0700, must belong to us and not be a symlink). One file per run,
// "<pid>-<start>.owner", mode 0600, appended one line per event with one
// write(2) each (O_APPEND), so a SIGKILL leaves whole lines:
//
//   ipcbench-owner 1 pid=<pid> start=<ticks> boot=<boot_id> uid=<euid> time=<unix s>
//   + dir /tmp/ipcbench.<pid>.XXXXXX
//   + posix-shm /ipcbench.<pid>.<tag>.spin     before shm_open(O_CREAT|O_EXCL)
//   - posix-shm /ipcbench.<pid>.<tag>.spin     after shm_unlink, or a failed create
//   + sysv-msg key=0x1a2b3c4d                  before msgget(key, IPC_CREAT|IPC_EXCL)
//   + sysv-msg key=0x1a2b3c4d id=5 ctime=1700000000   once it exists
//   - sysv-msg key=0x1a2b3c4d id=5 ctime=1700000000   after IPC_RMID
//
// An object is written down before the call that creates it, so no instant
// exists at which the object exists but the record does not name it
// (System V queues are created under a fresh random key for that reason).
// The owner holds an flock on its record for its lifetime, which a cleaner
// must be able to take too (a second guard beside pid + start time, e.g. for
// an owner in another pid namespace).
//
// Owner alive: /proc/<pid>/stat exists, is not a zombie, its field 22
// (start time in clock ticks since boot) equals `start`, and the boot id is
// this boot's. Cleaning a dead owner removes only what its record still
// lists, each checked first: POSIX names must be "/ipcbench.<pid>." of that
// pid and belong to this user, the directory "ipcbench.<pid>.*" a real
// directory of this user, a System V object must still carry the recorded
// key (and creation time) and this user as creator; nothing a live record
// lists is touched. Then the record goes.
#pragma once

#include <memory>
#include <string>

namespace ipcbench {

class OwnerRecord {
 public:
  // Sweeps the objects of dead owners (one line on stderr if it removed
  // any), then starts this process's record and has the mechanisms (and the
  // run directory) report every object they create or remove into it
  // (objects::set_observer). Started before anything creates an object,
  // capability probes included. Returns nullptr, after a warning on
  // stderr, when no record can be kept (the run then goes on unrecorded).
  static std::unique_ptr<OwnerRecord> start();
  // Stops recording and removes the record; a record that still lists
  // objects (the run directory aside) stays for the next sweep.
  virtual ~OwnerRecord() = default;
};

// `ipcbench clean [--dry-run]`: removes (or only lists) the objects of dead
// owners: one line per object ("removed ..." / "would remove ..." / "left
// ... (why)"), one per malformed record, then a summary. Returns the
// process exit status (0; 1 only when the owner directory is unusable).
int run_clean(bool dry_run);

}  // namespace ipcbench
