// Exhausted limits: error texts that name the limit that was reached and
// what to do about it. Setup paths append them to their error messages;
// nothing here runs on a hot path.
//
// Which errno means which limit (open(2), mq_open(3), mq_overview(7),
// msgget(2), the kernel's ipc/mqueue.c):
//   EMFILE  any descriptor: RLIMIT_NOFILE; mq_open also for RLIMIT_MSGQUEUE
//           (bytes of queues per user), told apart by trying a descriptor
//   ENFILE  the system-wide file table (fs.file-max)
//   ENOSPC  /dev/shm (tmpfs) full; mq_open: fs.mqueue.queues_max;
//           msgget: kernel.msgmni
//   EINVAL  mq_open with O_CREAT: mq_maxmsg above fs.mqueue.msg_max or
//           mq_msgsize above fs.mqueue.msgsize_max (unprivileged)
#pragma once

#include <cstddef>
#include <string>

namespace ipcbench::posix {

// " (the open-file limit (RLIMIT_NOFILE, 64) is reached: raise it with
// `ulimit -n`)" for EMFILE, the fs.file-max text for ENFILE, "" otherwise.
// posix::throw_errno appends it by itself.
std::string fd_limit_hint(int err);

// "/dev/shm is full (size 1.0 MiB, free 12 KiB, 4.0 MiB needed): free space
// or mount it larger"; `needed` 0 leaves that part out.
std::string dev_shm_full(std::size_t needed);

// The hint for a failure to create or size a /dev/shm object of `bytes`:
// " (<dev_shm_full>)" for ENOSPC/ENOMEM/EFBIG, the descriptor hint for
// EMFILE/ENFILE, "" otherwise.
std::string shm_hint(int err, std::size_t bytes);

// Backs every byte of the shared memory file `fd` (size `size`) now, so
// that touching a page later can never raise SIGBUS on a full /dev/shm.
// Throws std::system_error naming `what` and the full /dev/shm; carries on
// (unreserved) on a file system without fallocate.
void reserve_shm(int fd, std::size_t size, const std::string& what);

// The hint for a failed mq_open(O_CREAT) of depth `maxmsg` x `msgsize`.
std::string mq_hint(int err, long maxmsg, long msgsize);

// The hint for a failed msgget(IPC_CREAT).
std::string sysv_msg_hint(int err);

}  // namespace ipcbench::posix
