// Starting a peer process and telling how it ended: shared by the local
// runner (session.cpp) and `ipcbench serve` (serve.cpp), which start the
// same `ipcbench peer` the same way.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "mechanisms/posix/fd.hpp"

namespace ipcbench {

struct PeerProcess {
  pid_t pid = -1;
  posix::Fd pidfd;
  posix::Fd stdout_read;  // only if asked for
  posix::Fd stderr_read;  // non-blocking
};

// fork + exec of `args` (args[0] is the executable). The child dies with the
// calling thread (PR_SET_PDEATHSIG, and gives up at once if the parent is
// already gone), runs in its own process group (a terminal's Ctrl-C reaches
// only us, which then tear the case down in order), with no signal blocked,
// its stderr (and with `capture_stdout` its stdout) into a pipe, and keeps
// the descriptors in `inherited` across exec. Throws std::system_error if
// it cannot be started or watched (a started child is killed and reaped).
PeerProcess spawn_peer_process(std::vector<std::string> args, const std::vector<int>& inherited,
                               bool capture_stdout);

// "peer exited with status N", "peer was killed by signal N (Name)" or
// "peer ended", for a waitpid status.
std::string describe_exit(int wait_status);

// What the peer wrote to stderr (read from the non-blocking pipe, at most a
// few KiB), trailing newlines cut; with `one_line`, inner newlines become
// spaces (for a log line).
std::string read_stderr(int fd, bool one_line);

}  // namespace ipcbench
