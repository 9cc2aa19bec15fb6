// Owner records: what a run leaves behind when it is killed with SIGKILL.
//
// Each run keeps a record of its pid, its process start time (so a reused
// pid is not mistaken for a live owner) and every IPC object it created,
// SysV ids included (they have no names). The next run, and `ipcbench
// clean`, remove the objects of owners that are dead: never another
// program's objects, never a live run's.
#pragma once

#include <memory>
#include <string>

namespace ipcbench {

class OwnerRecord {
 public:
  // Sweeps the objects of dead owners, then starts this process's record
  // (the run directory `run_dir` is its first object) and has the
  // mechanisms report every object they create or remove into it.
  static std::unique_ptr<OwnerRecord> start(const std::string& run_dir);
  virtual ~OwnerRecord() = default;  // removes the record
};

// `ipcbench clean [--dry-run]`: removes (or only lists) the objects of dead
// owners. Returns the process exit status.
int run_clean(bool dry_run);

}  // namespace ipcbench
