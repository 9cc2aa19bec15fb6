#include "bench/peer/peer_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bench/peer/peer.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench {

PeerProcess spawn_peer_process(std::vector<std::string> args, const std::vector<int>& inherited,
                               bool capture_stdout) {
  // Everything the child needs is prepared before fork: after fork only
  // async-signal-safe calls are allowed (we may have other threads).
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2] = {-1, -1};
  if (capture_stdout && ::pipe2(out, O_CLOEXEC) != 0) {
    posix::throw_errno("cannot create a pipe for the peer's stdout");
  }
  posix::Fd out_read(out[0]), out_write(out[1]);
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0)
    posix::throw_errno("cannot create a pipe for the peer's stderr");
  posix::Fd err_read(err[0]), err_write(err[1]);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) posix::throw_errno("cannot fork the peer process");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(kPeerExitRunnerLost);
    ::setpgid(0, 0);
    if (out_write) ::dup2(out_write.get(), STDOUT_FILENO);
    ::dup2(err_write.get(), STDERR_FILENO);
    for (int fd : inherited) ::fcntl(fd, F_SETFD, 0);  // keep across exec
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  PeerProcess p;
  p.pid = pid;
  p.pidfd = posix::pidfd_open(pid);
  if (!p.pidfd) {
    const int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);  // SIGKILL cannot be ignored
    posix::throw_errno(e, "pidfd_open failed for the peer");
  }
  ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);
  p.stdout_read = std::move(out_read);
  p.stderr_read = std::move(err_read);
  return p;
}

std::string describe_exit(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return "peer exited with status " + std::to_string(WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    return "peer was killed by signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
  }
  return "peer ended";
}

std::string read_stderr(int fd, bool one_line) {
  std::string text;
  if (fd < 0) return text;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0 || text.size() > 4096) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (one_line) {
    for (char& c : text) {
      if (c == '\n') c = ' ';
    }
  }
  return text;
}

}  // namespace ipcbench
